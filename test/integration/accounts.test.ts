// Accounts end to end through the real daemon on a real database: rows written with the
// CLI (or plain SQL, as a panel would), answered by the real postmap, the auth socket
// (SMTP AUTH) and the Dovecot Lua endpoint. Per-service access, app passwords, master
// users and maintenance take effect at the next lookup or login, and a wrong password
// never learns anything about the account's state.

import { execFile, spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, waitFor, type TestDatabase } from '../helpers/db.js';
import { cliPath, startDaemon, type Daemon } from '../helpers/daemon.js';
import { smtpAuthLine } from '../helpers/logins.js';

/** SMTP AUTH as Postfix asks it on the auth socket: OK, FAIL or FAIL…temp. */
async function smtpAuth(port: number, user: string, pass: string): Promise<string> {
  const line = await smtpAuthLine(port, user, pass);
  return line.includes('temp') ? 'TEMP' : line.split('\t')[0]!;
}

function postmap(port: number, map: string, key: string): { code: number | null; out: string } {
  const r = spawnSync('/usr/sbin/postmap', ['-q', key, `socketmap:inet:127.0.0.1:${port}:${map}`], { encoding: 'utf8' });
  if (r.error) throw r.error;
  return { code: r.status, out: (r.stdout + r.stderr).trim() };
}

function cli(url: string, args: string[], stdin = ''): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      [cliPath, ...args],
      { env: { ...process.env, MAILMAPD_CONFIG: '/dev/null', MAILMAPD_DATABASE_URL: url } },
      (err, stdout, stderr) => {
        resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, out: stdout.trim(), err: stderr.trim() });
      },
    );
    child.stdin!.end(stdin);
  });
}

describe('accounts through the daemon', () => {
  let db: TestDatabase;
  let daemon: Daemon;
  let phonePassword = '';

  const passdb = async (fields: Record<string, string>) => {
    const r = await daemon.http('/dovecot/passdb', {
      method: 'POST',
      body: new URLSearchParams(fields).toString(),
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    const q = new URLSearchParams(await r.text());
    return { status: r.status, result: q.get('result'), user: q.get('user') };
  };
  const imap = (user: string, password: string) => passdb({ user, password, service: 'imap', rip: '192.0.2.7' });

  beforeAll(async () => {
    db = await createTestDatabase();
    for (const [args, stdin] of [
      [['domain', 'add', 'example.org'], ''],
      [['mailbox', 'add', 'alice@example.org'], 'alice-pw\n'],
      [['mailbox', 'add', 'bob@example.org'], 'bob-pw\n'],
      [['mailbox', 'add', 'carol@example.org'], 'carol-pw\n'],
      [['alias', 'add', '@example.org', 'carol@example.org'], ''],
      [['master', 'add', 'support'], 'master-pw\n'],
    ] as Array<[string[], string]>) {
      const r = await cli(db.url, args, stdin);
      expect(r, args.join(' ')).toMatchObject({ code: 0 });
    }
    daemon = await startDaemon({ databaseUrl: db.url });
  }, 60000);
  afterAll(async () => {
    await daemon?.stop();
    await db?.drop();
  });

  it('imap disabled: IMAP refused and POP3 allowed; a wrong password is told nothing', async () => {
    expect((await cli(db.url, ['mailbox', 'set', 'alice@example.org', '--disable', 'imap'])).code).toBe(0);
    await waitFor(async () => (await imap('alice@example.org', 'alice-pw')).result === 'disabled', 5000, 'imap disabled');
    expect(await passdb({ user: 'alice@example.org', password: 'alice-pw', service: 'pop3' })).toMatchObject({ status: 200, result: 'ok' });
    // The same answer as for any wrong password: the state is told only after the password.
    expect(await imap('alice@example.org', 'wrong')).toMatchObject({ result: 'mismatch' });
    expect((await cli(db.url, ['mailbox', 'set', 'alice@example.org', '--enable', 'imap'])).code).toBe(0);
    await waitFor(async () => (await imap('alice@example.org', 'alice-pw')).result === 'ok', 5000, 'imap enabled again');
  });

  it('an inactive mailbox answers a wrong password like any other', async () => {
    await db.sql.query(`UPDATE mailmapd.mailboxes SET active = false WHERE address = 'bob@example.org'`);
    await waitFor(async () => (await imap('bob@example.org', 'bob-pw')).result === 'disabled', 5000, 'bob inactive');
    expect(await imap('bob@example.org', 'not-bobs')).toMatchObject({ result: 'mismatch' });
    expect(await smtpAuth(daemon.ports.auth, 'bob@example.org', 'bob-pw')).toBe('FAIL');
    await db.sql.query(`UPDATE mailmapd.mailboxes SET active = true WHERE address = 'bob@example.org'`);
    await waitFor(async () => (await imap('bob@example.org', 'bob-pw')).result === 'ok', 5000, 'bob active');
  });

  it('an IMAP-only app password: refused for SMTP AUTH, accepted for IMAP, refused once deactivated', async () => {
    const add = await cli(db.url, ['app-password', 'add', 'alice@example.org', '--name', 'phone', '--services', 'imap']);
    expect(add.code).toBe(0);
    phonePassword = add.out;
    expect(phonePassword).toMatch(/^[a-z2-9]{4}(-[a-z2-9]{4}){5}$/);
    // Printed once, stored only as a salted hash.
    const stored = await db.sql.query(`SELECT password FROM mailmapd.app_passwords WHERE name = 'phone'`);
    expect(stored.rows[0].password).toMatch(/^\{SSHA256\}/);
    expect(JSON.stringify(stored.rows)).not.toContain(phonePassword);
    await waitFor(async () => (await imap('alice@example.org', phonePassword)).result === 'ok', 5000, 'app password for imap');
    expect(await smtpAuth(daemon.ports.auth, 'alice@example.org', phonePassword)).toBe('FAIL');
    expect(await passdb({ user: 'alice@example.org', password: phonePassword, service: 'pop3' })).toMatchObject({ result: 'mismatch' });
    // The mailbox password still works everywhere.
    expect(await smtpAuth(daemon.ports.auth, 'alice@example.org', 'alice-pw')).toBe('OK');
    expect((await cli(db.url, ['app-password', 'list', 'alice@example.org'])).out).toMatch(/^phone services=imap created=/);

    // A panel deactivates it in SQL: the very next attempt fails (the cache forgot it).
    await db.sql.query(`UPDATE mailmapd.app_passwords SET active = false WHERE name = 'phone'`);
    await waitFor(async () => (await imap('alice@example.org', phonePassword)).result === 'mismatch', 3000, 'app password deactivated');
    expect(await imap('alice@example.org', 'alice-pw')).toMatchObject({ result: 'ok' });
    expect((await cli(db.url, ['app-password', 'rm', 'alice@example.org', 'phone'])).code).toBe(0);
    expect((await cli(db.url, ['app-password', 'list', 'alice@example.org'])).out).toBe('');
  });

  it('unknown service names are usage errors and write nothing', async () => {
    const before = await db.sql.query(`SELECT count(*)::int AS n FROM mailmapd.changes`);
    expect(await cli(db.url, ['mailbox', 'set', 'alice@example.org', '--disable', 'imap,ftp'])).toMatchObject({ code: 2 });
    expect(await cli(db.url, ['app-password', 'add', 'alice@example.org', '--name', 'x', '--services', 'receive'])).toMatchObject({ code: 2 });
    expect(await cli(db.url, ['app-password', 'add', 'alice@example.org', '--services', 'imap'])).toMatchObject({ code: 2 });
    const after = await db.sql.query(`SELECT count(*)::int AS n FROM mailmapd.changes`);
    expect(after.rows[0].n).toBe(before.rows[0].n);
    const row = await db.sql.query(`SELECT disabled_services FROM mailmapd.mailboxes WHERE address = 'alice@example.org'`);
    expect(row.rows[0].disabled_services).toEqual([]);
  });

  it('a master user logs in as the mailbox through Dovecot, never over the auth socket', async () => {
    const master = await passdb({ user: 'alice@example.org', master: 'support', password: 'master-pw', service: 'imap' });
    expect(master).toMatchObject({ status: 200, result: 'ok', user: 'alice@example.org' });
    expect(daemon.logs()).toMatch(/master login.*"user":"alice@example.org".*"master":"support"|master login.*master.*support/);
    expect(await passdb({ user: 'alice@example.org', master: 'support', password: 'alice-pw', service: 'imap' })).toMatchObject({ result: 'mismatch' });
    expect(await smtpAuth(daemon.ports.auth, 'alice@example.org*support', 'master-pw')).toBe('FAIL');
    expect(await smtpAuth(daemon.ports.auth, 'support', 'master-pw')).toBe('FAIL');
    // Deactivated: refused at once.
    await db.sql.query(`UPDATE mailmapd.master_users SET active = false`);
    await waitFor(
      async () => (await passdb({ user: 'alice@example.org', master: 'support', password: 'master-pw', service: 'imap' })).result !== 'ok',
      3000,
      'master deactivated',
    );
    await db.sql.query(`UPDATE mailmapd.master_users SET active = true`);
  });

  it('receive disabled: no recipient in mailboxes or aliases, not even through the catch-all; logins still work', async () => {
    const port = daemon.ports.socketmap;
    expect(postmap(port, 'aliases', 'bob@example.org').out).toBe('bob@example.org');
    expect((await cli(db.url, ['mailbox', 'set', 'bob@example.org', '--disable', 'receive'])).code).toBe(0);
    await waitFor(() => postmap(port, 'mailboxes', 'bob@example.org').code === 1, 5000, 'receive disabled');
    expect(postmap(port, 'aliases', 'bob@example.org').code).toBe(1);
    expect(postmap(port, 'aliases', 'bob+tag@example.org').code).toBe(1);
    expect(postmap(port, 'mailboxes', 'bob+tag@example.org').code).toBe(1);
    expect(postmap(port, 'aliases', 'nobody@example.org').out).toBe('carol@example.org'); // the catch-all still serves others
    expect(await imap('bob@example.org', 'bob-pw')).toMatchObject({ result: 'ok' });
    expect(await smtpAuth(daemon.ports.auth, 'bob@example.org', 'bob-pw')).toBe('OK');
    expect((await cli(db.url, ['mailbox', 'set', 'bob@example.org', '--enable', 'receive'])).code).toBe(0);
    await waitFor(() => postmap(port, 'mailboxes', 'bob@example.org').out === 'example.org/bob/', 5000, 'receive enabled');
  });

  it('maintenance: TEMP to Postfix, temporary login failures, then back to normal', async () => {
    const port = daemon.ports.socketmap;
    expect((await cli(db.url, ['mailbox', 'set', 'carol@example.org', '--maintenance', 'on'])).code).toBe(0);
    // postmap reports a TEMP answer as a lookup error (a fatal, not "not found").
    const deferred = (r: { code: number | null; out: string }) => r.code !== 0 && /fatal|error|temporar/i.test(r.out);
    await waitFor(() => deferred(postmap(port, 'mailboxes', 'carol@example.org')), 5000, 'maintenance TEMP');
    expect(postmap(port, 'aliases', 'carol@example.org')).toSatisfy(deferred);
    // The catch-all delivers to carol: it defers too, never bounces.
    expect(postmap(port, 'aliases', 'someone@example.org').out).toBe('carol@example.org');
    expect(await imap('carol@example.org', 'carol-pw')).toMatchObject({ status: 503, result: 'temp' });
    expect(await smtpAuth(daemon.ports.auth, 'carol@example.org', 'carol-pw')).toBe('TEMP');
    expect(await imap('carol@example.org', 'wrong')).toMatchObject({ status: 200, result: 'mismatch' });
    expect((await cli(db.url, ['mailbox', 'set', 'carol@example.org', '--maintenance', 'off'])).code).toBe(0);
    await waitFor(() => postmap(port, 'mailboxes', 'carol@example.org').out === 'example.org/carol/', 5000, 'maintenance over');
    expect(await imap('carol@example.org', 'carol-pw')).toMatchObject({ result: 'ok' });
  });

  it('counts logins by a bounded service label', async () => {
    await passdb({ user: 'alice@example.org', password: 'alice-pw', service: 'x-made-up' });
    const metrics = await (await daemon.http('/metrics')).text();
    expect(metrics).toMatch(/mailmapd_logins_total\{service="other",result="ok"\} \d+/);
    expect(metrics).toMatch(/mailmapd_logins_total\{service="smtp",result="ok"\} \d+/);
    expect(metrics).not.toContain('x-made-up');
  });
});
