// Dovecot's auth policy hook: a throwaway real Dovecot 2.3 asking the running daemon before
// and after every login (auth_policy_server_url), with its own passwd-file passdb. The
// limiter's own rules, with a fake clock for the windows: test/unit/limiter.test.ts.

import { execFile, execFileSync } from 'node:child_process';
import { chmodSync, closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, waitFor, type TestDatabase } from '../helpers/db.js';
import { startDaemon, type Daemon } from '../helpers/daemon.js';

function doveadm(conf: string, args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile('doveadm', ['-c', conf, ...args], { timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1) : 0;
      resolve({ code, out: stdout + stderr });
    });
  });
}

describe('real Dovecot 2.3 asking the daemon (auth_policy_server_url)', () => {
  let db: TestDatabase;
  let daemon: Daemon;
  let dir: string;
  let conf: string;
  const secret = 'policy-secret-1234';
  const login = (user: string, pass: string, rip: string) => doveadm(conf, ['auth', 'test', '-x', `rip=${rip}`, '-x', 'no-penalty', user, pass]);
  // no-penalty: Dovecot's own per-IP penalty (doubling up to 15 s) would slow the test, not change it.

  beforeAll(async () => {
    db = await createTestDatabase();
    daemon = await startDaemon({
      databaseUrl: db.url,
      config: {
        policy_window: '8s',
        policy_delay_after: '3',
        policy_reject_after: '3',
        policy_prefix_reject_after: '100',
        policy_login_reject_after: '6',
        http_secret: secret,
      },
    });
    dir = mkdtempSync(join(tmpdir(), 'mailmapd-policy-'));
    chmodSync(dir, 0o755);
    const users = join(dir, 'users');
    writeFileSync(users, ['alice', 'bob', 'dave'].map((u) => `${u}@example.org:{PLAIN}right::::::\n`).join(''));
    conf = join(dir, 'dovecot.conf');
    writeFileSync(
      conf,
      [
        `base_dir = ${join(dir, 'run')}`,
        `state_dir = ${join(dir, 'state')}`,
        `log_path = ${join(dir, 'dovecot.log')}`,
        'protocols =',
        'ssl = no',
        'default_internal_user = dovecot',
        'default_login_user = dovenull',
        'auth_failure_delay = 0',
        `auth_policy_server_url = http://127.0.0.1:${daemon.ports.http}/`,
        'auth_policy_hash_nonce = test-nonce',
        `auth_policy_server_api_header = Authorization: Bearer ${secret}`,
        'auth_policy_reject_on_fail = yes',
        `passdb {\n  driver = passwd-file\n  args = ${users}\n}`,
        'userdb {\n  driver = static\n  args = uid=5000 gid=5000 home=/tmp/%u\n}',
        '',
      ].join('\n'),
    );
    const errors = join(dir, 'start.err');
    const fd = openSync(errors, 'w');
    try {
      execFileSync('dovecot', ['-c', conf], { stdio: ['ignore', fd, fd] });
    } catch (err) {
      throw new Error(`dovecot did not start: ${readFileSync(errors, 'utf8')}`, { cause: err });
    } finally {
      closeSync(fd);
    }
    await waitFor(() => existsSync(join(dir, 'run', 'auth-client')), 10_000, 'dovecot auth socket');
  });

  afterAll(async () => {
    try {
      execFileSync('doveadm', ['-c', conf, 'stop'], { stdio: 'ignore' });
    } catch {
      /* not running */
    }
    await daemon?.stop();
    await db?.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  // That the window then forgets is the limiter's, asserted above with a fake clock (the
  // 8 s window of this daemon's config included) rather than by waiting it out here.
  it('a burst of failures refuses that address even with the right password; others log in', async () => {
    expect((await login('alice@example.org', 'right', '192.0.2.7')).code).toBe(0);
    for (const guess of ['w1', 'w2', 'w3']) expect((await login('alice@example.org', guess, '192.0.2.7')).code).toBe(77);
    const refused = await login('alice@example.org', 'right', '192.0.2.7');
    expect(refused.code, refused.out).toBe(77);
    expect((await login('alice@example.org', 'right', '203.0.113.8')).code).toBe(0);
    const metrics = await (await daemon.http('/metrics')).text();
    expect(metrics).toMatch(/mailmapd_policy_decisions_total\{command="allow",decision="rejected",reason="address"\} [1-9]/);
    expect(metrics).toMatch(/mailmapd_policy_decisions_total\{command="report",decision="reported",reason="failure"\} [1-9]/);
  });

  it('a device retrying one stale password does not lock its owner out', async () => {
    for (let i = 0; i < 6; i++) expect((await login('alice@example.org', 'old-password', '192.0.2.50')).code).toBe(77);
    expect((await login('alice@example.org', 'right', '192.0.2.50')).code).toBe(0);
  });

  it('guessing from an allow-listed address (a webmail) is bounded per login', async () => {
    // At once: the 8 s window must still hold every failure when the right password comes.
    const guesses = await Promise.all(Array.from({ length: 10 }, (_, i) => login('bob@example.org', `guess${i}`, '127.0.0.1')));
    expect(guesses.every((g) => g.code === 77)).toBe(true);
    const refused = await login('bob@example.org', 'right', '127.0.0.1');
    expect(refused.code, refused.out).toBe(77);
    expect((await login('alice@example.org', 'right', '127.0.0.1')).code).toBe(0);
  });

  it('failures from many addresses do not lock the owner out where the login succeeded before', async () => {
    expect((await login('dave@example.org', 'right', '203.0.113.9')).code).toBe(0);
    const guesses = await Promise.all(Array.from({ length: 10 }, (_, i) => login('dave@example.org', `guess${i}`, `198.18.0.${i + 1}`)));
    expect(guesses.every((g) => g.code === 77)).toBe(true);
    expect((await login('dave@example.org', 'right', '198.18.0.200')).code).toBe(77);
    const owner = await login('dave@example.org', 'right', '203.0.113.9');
    expect(owner.code, owner.out).toBe(0);
  });

  it('refuses requests without the shared secret', async () => {
    const r = await daemon.http('/?command=allow', {
      method: 'POST',
      body: '{"login":"a","remote":"192.0.2.1"}',
      headers: { 'content-type': 'application/json' },
    });
    expect(r.status).toBe(401);
    const ok = await daemon.http('/?command=allow', {
      method: 'POST',
      body: '{"login":"a","remote":"192.0.2.1"}',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${secret}` },
    });
    expect(await ok.json()).toEqual({ status: 0, msg: 'ok' });
    // The scheme name is case-insensitive, as for the Dovecot lookup routes; the token is not.
    const asked = (authorization: string) =>
      daemon.http('/?command=allow', {
        method: 'POST',
        body: '{"login":"a","remote":"192.0.2.1"}',
        headers: { 'content-type': 'application/json', authorization },
      });
    expect((await asked(`bearer ${secret}`)).status).toBe(200);
    expect((await asked(`Bearer ${secret.toUpperCase()}x`)).status).toBe(401);
  });
});
