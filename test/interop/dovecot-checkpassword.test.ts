// A throwaway real Dovecot 2.3 (its own base_dir, state_dir and log under a temp dir, no
// /etc config) whose passdb and userdb are exactly what `mailmapd dovecot-config` prints:
// checkpassword with bin/mailmapd-checkpassword -s <socket>. Its auth process runs as the
// unprivileged `dovecot` user with the default vsz_limit. `doveadm -c CONF auth test` and
// `doveadm -c CONF user` must show the right answers and fields, see a password change at
// once, and report a temporary failure when mailmapd is down.

import { execFile, execFileSync } from 'node:child_process';
import { chmodSync, closeSync, existsSync, openSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dovecotConfig } from '../../src/cli/dovecot-config.js';
import { parseConfigText } from '../../src/config.js';
import { checkpasswordBinary, closePool, failingLogins, standardData, startDoors, type Doors } from '../helpers/logins.js';

/** Dovecot's own IP penalty doubles the delay after every failure (up to 15 s): not what is tested here. */
const noPenalty = ['-x', 'no-penalty'];

function doveadm(conf: string, args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile('doveadm', ['-c', conf, ...args], { timeout: 20_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1) : 0;
      resolve({ code, out: stdout + stderr });
    });
  });
}

/** The passdb/userdb blocks of the generated snippet, without comments. */
function generatedAuthBlocks(socket: string): string {
  const config = parseConfigText(`checkpassword_listen = unix:${socket}\nauth_listen = unix:${socket}-auth\n`, 'test.conf');
  const text = dovecotConfig(config, []);
  const blocks = text.match(/^(passdb|userdb) \{\n[^}]*\}$/gm);
  expect(blocks).toHaveLength(3); // passdb, master passdb, userdb
  const separator = /^auth_master_user_separator = .*$/m.exec(text);
  expect(separator).not.toBeNull();
  return [separator![0], ...blocks!].join('\n');
}

async function waitForFile(path: string, ms: number): Promise<void> {
  const t0 = Date.now();
  while (!existsSync(path)) {
    if (Date.now() - t0 > ms) throw new Error(`${path} did not appear within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

let doors: Doors;
let conf: string;
let run: string;
let dir: string;

beforeAll(async () => {
  expect(existsSync(checkpasswordBinary), 'bin/mailmapd-checkpassword must be built').toBe(true);
  doors = await startDoors();
  dir = mkdtempSync(join(tmpdir(), 'mailmapd-dovecot-'));
  chmodSync(dir, 0o755);
  run = join(dir, 'run');
  conf = join(dir, 'dovecot.conf');
  const auth = generatedAuthBlocks(doors.checkpasswordSocket);
  expect(auth).toContain(`args = ${checkpasswordBinary} -s unix:${doors.checkpasswordSocket}`);
  writeFileSync(
    conf,
    [
      `base_dir = ${run}`,
      `state_dir = ${join(dir, 'state')}`,
      `log_path = ${join(dir, 'dovecot.log')}`,
      `info_log_path = ${join(dir, 'dovecot.log')}`,
      'protocols =',
      'listen = 127.0.0.1',
      'ssl = no',
      'default_internal_user = dovecot',
      'default_login_user = dovenull',
      'auth_failure_delay = 0',
      auth,
      '',
    ].join('\n'),
  );
  // The master daemonizes: a stdout/stderr pipe would stay open in it and hang execFileSync.
  const errors = join(dir, 'start.err');
  const errFd = openSync(errors, 'w');
  try {
    execFileSync('dovecot', ['-c', conf], { stdio: ['ignore', errFd, errFd] });
  } catch (err) {
    throw new Error(`dovecot did not start: ${readFileSync(errors, 'utf8')}`, { cause: err });
  } finally {
    closeSync(errFd);
  }
  await waitForFile(join(run, 'auth-userdb'), 10_000);
});

afterAll(async () => {
  try {
    execFileSync('doveadm', ['-c', conf, 'stop'], { stdio: 'ignore' });
  } catch {
    const pid = Number(readFileSync(join(run, 'master.pid'), 'utf8'));
    if (pid > 0) process.kill(pid, 'SIGTERM');
  }
  await doors.close();
  await closePool();
  rmSync(dir, { recursive: true, force: true });
});

describe('real Dovecot 2.3 with the checkpassword passdb and userdb', () => {
  it('auth test: the right password logs in (case-folded login, canonical user)', async () => {
    const r = await doveadm(conf, ['auth', 'test', 'User@Example.ORG', 'secret']);
    expect(r.code, r.out).toBe(0);
    expect(r.out).toContain('auth succeeded');
    expect(r.out).toContain('user=user@example.org');
  });

  it('auth test: wrong password, unknown user, inactive mailbox, inactive domain fail', async () => {
    for (const [u, p] of failingLogins) {
      const r = await doveadm(conf, ['auth', 'test', ...noPenalty, u, p]);
      expect(r.code, `${u}: ${r.out}`).toBe(77);
      expect(r.out).toContain('auth failed');
      expect(r.out).not.toContain('temp_fail');
    }
  });

  it('user: home, uid, gid and quota_rule from the userdb', async () => {
    const r = await doveadm(conf, ['user', 'user@example.org']);
    expect(r.code, r.out).toBe(0);
    expect(r.out).toMatch(/^uid\s+5000$/m);
    expect(r.out).toMatch(/^gid\s+5001$/m);
    expect(r.out).toMatch(/^home\s+\/var\/vmail\/example\.org\/user$/m);
    expect(r.out).toMatch(/^quota_rule\s+\*:bytes=1048576$/m);
  });

  it('user: unknown and inactive users do not exist', async () => {
    for (const u of ['nobody@example.org', 'inactive@example.org', 'x@off.org']) {
      const r = await doveadm(conf, ['user', u]);
      expect(r.code, `${u}: ${r.out}`).toBe(67);
      expect(r.out).toContain("doesn't exist");
    }
  });

  it('a password change or deactivation counts on the very next login', async () => {
    expect((await doveadm(conf, ['auth', 'test', 'crypt@example.org', 'secret'])).code).toBe(0);
    const data = standardData();
    data.mailboxes.set('crypt@example.org', { password: '{PLAIN}changed', quotaBytes: 0, active: true });
    doors.directory.replaceAll(data);
    expect((await doveadm(conf, ['auth', 'test', ...noPenalty, 'crypt@example.org', 'secret'])).code).toBe(77);
    expect((await doveadm(conf, ['auth', 'test', 'crypt@example.org', 'changed'])).code).toBe(0);
    data.mailboxes.set('crypt@example.org', { password: '{PLAIN}changed', quotaBytes: 0, active: false });
    doors.directory.replaceAll(data);
    expect((await doveadm(conf, ['auth', 'test', ...noPenalty, 'crypt@example.org', 'changed'])).code).toBe(77);
    expect((await doveadm(conf, ['user', 'crypt@example.org'])).code).toBe(67);
  });

  it("imap disabled: IMAP refused and POP3 allowed (Dovecot's SERVICE reaches the daemon)", async () => {
    const data = standardData();
    data.mailboxes.set('user@example.org', { password: '{PLAIN}secret', quotaBytes: 1048576, active: true, disabledServices: ['imap'] });
    doors.directory.replaceAll(data);
    const imap = await doveadm(conf, ['auth', 'test', ...noPenalty, '-x', 'service=imap', 'user@example.org', 'secret']);
    expect(imap.code, imap.out).toBe(77);
    const pop3 = await doveadm(conf, ['auth', 'test', '-x', 'service=pop3', 'user@example.org', 'secret']);
    expect(pop3.code, pop3.out).toBe(0);
    doors.directory.replaceAll(standardData());
  });

  it('a master user logs in as the mailbox; a wrong master password or an inactive master does not', async () => {
    const data = standardData();
    data.masterUsers.set('support', { password: '{PLAIN}master-pw', active: true });
    doors.directory.replaceAll(data);
    const r = await doveadm(conf, ['auth', 'test', '-x', 'service=imap', 'user@example.org*support', 'master-pw']);
    expect(r.code, r.out).toBe(0);
    expect(r.out).toContain('user=user@example.org');
    expect(doors.logs.some((l) => l.includes('master login') && l.includes('support'))).toBe(true);
    expect((await doveadm(conf, ['auth', 'test', ...noPenalty, '-x', 'service=imap', 'user@example.org*support', 'secret'])).code).toBe(77);
    doors.directory.setMasterUser('support', { password: '{PLAIN}master-pw', active: false });
    expect((await doveadm(conf, ['auth', 'test', ...noPenalty, '-x', 'service=imap', 'user@example.org*support', 'master-pw'])).code).toBe(77);
    doors.directory.replaceAll(standardData());
  });

  it('mailmapd down: a temporary failure, never "no such user"', async () => {
    await doors.close();
    const a = await doveadm(conf, ['auth', 'test', ...noPenalty, 'user@example.org', 'secret']);
    expect(a.code).toBe(77);
    expect(a.out).toContain('code=temp_fail');
    const u = await doveadm(conf, ['user', 'user@example.org']);
    expect(u.code, u.out).toBe(75);
    const log = readFileSync(join(dir, 'dovecot.log'), 'utf8');
    expect(log).toContain('cannot connect to mailmapd');
  });
});
