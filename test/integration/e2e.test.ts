// End to end through the real daemon: rows written in SQL, answered to the real postmap,
// to SMTP AUTH on the auth socket and to Dovecot's checkpassword program; a password
// changed in SQL stops working on the very next login at every door.

import { spawn, spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashPassword } from '../../src/password/hash.js';
import { createTestDatabase, waitFor, type TestDatabase } from '../helpers/db.js';
import { cliPath, root, startDaemon, type Daemon } from '../helpers/daemon.js';
import { smtpAuth } from '../helpers/logins.js';

const checkpassword = `${root}bin/mailmapd-checkpassword`;

function postmap(port: number, map: string, key: string): { code: number | null; out: string } {
  const r = spawnSync('/usr/sbin/postmap', ['-q', key, `socketmap:inet:127.0.0.1:${port}:${map}`], { encoding: 'utf8' });
  if (r.error) throw r.error; // postmap missing is a failure, not a skip
  return { code: r.status, out: r.stdout.trim() };
}

/** Runs mailmapd-checkpassword as Dovecot does: user\0password\0 on fd 3, fields on fd 4. */
function checkpasswordLogin(port: number, user: string, pass: string, lookup = false): Promise<{ code: number | null; fields: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(checkpassword, ['-s', `inet:127.0.0.1:${port}`], {
      stdio: ['ignore', 'ignore', 'ignore', 'pipe', 'pipe'],
      env: { SERVICE: 'imap', TCPREMOTEIP: '192.0.2.1', ...(lookup ? { AUTHORIZED: '1' } : {}) },
    });
    let fields = '';
    (child.stdio[4] as NodeJS.ReadableStream).on('data', (d) => (fields += d));
    (child.stdio[3] as NodeJS.WritableStream).end(Buffer.from(`${user}\0${lookup ? '' : pass}\0\0`));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, fields }));
  });
}

describe('end to end through the daemon', () => {
  let db: TestDatabase;
  let daemon: Daemon;
  beforeAll(async () => {
    db = await createTestDatabase();
    await db.sql.query(`
      INSERT INTO mailmapd.domains (name) VALUES ('example.org');
      INSERT INTO mailmapd.alias_domains (name, target) VALUES ('example.net', 'example.org');
      INSERT INTO mailmapd.aliases (address, destination) VALUES ('info@example.org', 'alice@example.org'), ('@example.org', 'catch@elsewhere.test');`);
    await db.sql.query(`INSERT INTO mailmapd.mailboxes (address, password, quota_bytes) VALUES ('alice@example.org', $1, 2048)`, [
      await hashPassword('first-password', 'SHA512-CRYPT'),
    ]);
    daemon = await startDaemon({ databaseUrl: db.url, config: { policy_delay_after: '3', policy_reject_after: '3' } });
  });
  afterAll(async () => {
    await daemon?.stop();
    await db?.drop();
  });

  it('postmap gets the contract answers from the running daemon', () => {
    const p = daemon.ports.socketmap;
    expect(postmap(p, 'domains', 'Example.NET')).toEqual({ code: 0, out: 'example.net' });
    expect(postmap(p, 'mailboxes', 'alice+tag@example.org')).toEqual({ code: 0, out: 'example.org/alice/' });
    expect(postmap(p, 'aliases', 'info+x@example.org')).toEqual({ code: 0, out: 'alice+x@example.org' });
    expect(postmap(p, 'aliases', 'alice@example.org')).toEqual({ code: 0, out: 'alice@example.org' });
    expect(postmap(p, 'aliases', 'stranger@example.org')).toEqual({ code: 0, out: 'catch@elsewhere.test' });
    expect(postmap(p, 'aliases', 'example.org').code).toBe(1);
    expect(postmap(p, 'senders', 'info@example.org')).toEqual({ code: 0, out: 'alice@example.org' });
    const lookup = spawnSync(process.execPath, [cliPath, '-c', daemon.configPath, 'lookup', 'mailboxes', 'alice@example.net'], { encoding: 'utf8' });
    expect(lookup.status).toBe(1);
  });

  it('a password changed in SQL fails on the very next login, at every door', async () => {
    const auth = daemon.ports.auth;
    const cp = daemon.ports.checkpassword;
    expect(await smtpAuth(auth, 'alice@example.org', 'first-password')).toBe('OK');
    expect((await checkpasswordLogin(cp, 'Alice@Example.NET', 'first-password')).code).toBe(0);
    const looked = await checkpasswordLogin(cp, 'alice@example.org', '', true);
    expect(looked.code).toBe(2);
    expect(looked.fields).toContain('userdb_quota_rule=*:bytes=2048');

    await db.sql.query(`UPDATE mailmapd.mailboxes SET password = $1 WHERE address = 'alice@example.org'`, [await hashPassword('second-password', 'ARGON2ID')]);
    // Visible within a second; then the old password is refused everywhere, the new one accepted.
    await waitFor(async () => (await smtpAuth(auth, 'alice@example.org', 'second-password')) === 'OK', 10_000, 'new password');
    expect(await smtpAuth(auth, 'alice@example.org', 'first-password')).toBe('FAIL');
    expect((await checkpasswordLogin(cp, 'alice@example.org', 'first-password')).code).toBe(1);
    expect((await checkpasswordLogin(cp, 'alice@example.org', 'second-password')).code).toBe(0);

    await db.sql.query(`UPDATE mailmapd.mailboxes SET active = false WHERE address = 'alice@example.org'`);
    await waitFor(async () => (await smtpAuth(auth, 'alice@example.org', 'second-password')) === 'FAIL', 10_000, 'deactivation');
    expect((await checkpasswordLogin(cp, 'alice@example.org', 'second-password')).code).toBe(1);
    expect(postmap(daemon.ports.socketmap, 'mailboxes', 'alice@example.org').code).toBe(1);
    expect(daemon.logs()).not.toMatch(/first-password|second-password|\$6\$|argon2id\$/);
  });

  it('the brute-force limiter guards SMTP AUTH too: a guessing address is refused, others are not', async () => {
    await db.sql.query(`INSERT INTO mailmapd.mailboxes (address, password) VALUES ('bob@example.org', '{PLAIN}bobs-password')`);
    // Wait on the socketmap, not on logins: failed probes would count against 192.0.2.1.
    await waitFor(() => postmap(daemon.ports.socketmap, 'mailboxes', 'bob@example.org').code === 0, 10_000, 'bob');
    expect(await smtpAuth(daemon.ports.auth, 'bob@example.org', 'bobs-password', '192.0.2.1')).toBe('OK');
    for (const guess of ['a', 'b', 'c']) expect(await smtpAuth(daemon.ports.auth, 'bob@example.org', guess, '198.18.0.9')).toBe('FAIL');
    expect(await smtpAuth(daemon.ports.auth, 'bob@example.org', 'bobs-password', '198.18.0.9')).toBe('FAIL');
    expect(await smtpAuth(daemon.ports.auth, 'bob@example.org', 'bobs-password', '192.0.2.1')).toBe('OK');
  });
});
