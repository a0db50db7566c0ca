// The brute-force limiter and Dovecot's auth policy hook. Unit tests with a fake clock for
// the windows, then a throwaway real Dovecot 2.3 asking the running daemon before and after
// every login (auth_policy_server_url), with its own passwd-file passdb.

import { execFile, execFileSync } from 'node:child_process';
import { chmodSync, closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLimiter, testing, type LimiterSettings } from '../src/policy/limiter.js';
import { createTestDatabase, waitFor, type TestDatabase } from './helpers/db.js';
import { startDaemon, type Daemon } from './helpers/daemon.js';

const base: LimiterSettings = {
  windowMs: 60_000,
  delayAfter: 3,
  rejectAfter: 5,
  prefixRejectAfter: 12,
  loginRejectAfter: 8,
  maxDelayMs: 5000,
  allowList: ['127.0.0.1', '::1', '198.51.100.0/24'],
  maxEntries: 400,
  knownSourceMs: 30 * 86_400_000,
  maxBytes: 64 * 1024 * 1024,
};

describe('limiter', () => {
  it('delays, then rejects an address; other addresses go on; the window forgets', () => {
    let t = 1_000_000;
    const l = createLimiter(base, undefined, () => t);
    for (let i = 0; i < 3; i++) l.report('a@x', { remoteIp: '192.0.2.7' }, false, `guess${i}`);
    expect(l.decide('a@x', '192.0.2.7')).toEqual({ action: 'delay', seconds: 1, reason: 'address' });
    l.report('a@x', { remoteIp: '192.0.2.7' }, false, 'guess3');
    expect(l.decide('a@x', '192.0.2.7')).toMatchObject({ action: 'delay', seconds: 2 });
    l.report('b@x', { remoteIp: '192.0.2.7' }, false, 'guess4');
    expect(l.decide('anyone@x', '192.0.2.7')).toMatchObject({ action: 'reject', reason: 'address' });
    expect(l.check('a@x', { remoteIp: '192.0.2.7' })?.retryAfterSeconds).toBeGreaterThan(0);
    expect(l.decide('a@x', '192.0.2.99')).toEqual({ action: 'allow' });
    t += 61_000;
    expect(l.decide('a@x', '192.0.2.7')).toEqual({ action: 'allow' });
  });

  it('the same wrong password from the same place counts once (a stale phone)', () => {
    const l = createLimiter(base, undefined, () => 5);
    for (let i = 0; i < 50; i++) l.report('owner@x', { remoteIp: '203.0.113.5' }, false, 'oldpw');
    expect(l.decide('owner@x', '203.0.113.5')).toEqual({ action: 'allow' });
    expect(l.decide('owner@x', '192.0.2.1')).toEqual({ action: 'allow' });
  });

  it('counts per /24 and /64 prefix and per login across addresses', () => {
    const l = createLimiter(base, undefined, () => 5);
    for (let i = 0; i < 12; i++) l.report(`u${i}@x`, { remoteIp: `192.0.2.${i + 1}` }, false, 'p');
    expect(l.decide('new@x', '192.0.2.200')).toMatchObject({ action: 'reject', reason: 'prefix' });
    expect(l.decide('new@x', '192.0.3.1')).toEqual({ action: 'allow' });
    for (let i = 0; i < 12; i++) l.report(`v${i}@x`, { remoteIp: `2001:db8:0:1:${i}::1` }, false, 'p');
    expect(l.decide('new@x', '2001:db8:0:1:ffff::9')).toMatchObject({ action: 'reject', reason: 'prefix' });
    expect(l.decide('new@x', '2001:db8:0:2::9')).toEqual({ action: 'allow' });
    for (let i = 0; i < 8; i++) l.report('victim@x', { remoteIp: `10.${i}.0.1` }, false, `g${i}`);
    expect(l.decide('Victim@X', '10.99.0.1')).toMatchObject({ action: 'reject', reason: 'login' });
    expect(testing.prefixOf('2001:db8::1', 6)).toBe('2001:db8:0:0::/64');
    expect(testing.normalise('::ffff:192.0.2.1')).toEqual({ ip: '192.0.2.1', family: 4 });
  });

  it('never limits the allow list', () => {
    const l = createLimiter(base, undefined, () => 5);
    for (let i = 0; i < 30; i++) l.report('a@x', { remoteIp: '198.51.100.20' }, false, `g${i}`);
    expect(l.decide('b@x', '198.51.100.20')).toEqual({ action: 'allow' });
  });

  it('memory stays bounded under a flood of distinct addresses', () => {
    const l = createLimiter(base, undefined, () => 5);
    for (let i = 0; i < 100_000; i++) l.report(`u${i}@x`, { remoteIp: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}` }, false, `g${i}`);
    const s = l.size();
    for (const n of Object.values(s)) expect(n).toBeLessThanOrEqual(100);
  });
});

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

  it('a burst of failures refuses that address even with the right password; others log in; the window forgets', async () => {
    expect((await login('alice@example.org', 'right', '192.0.2.7')).code).toBe(0);
    for (const guess of ['w1', 'w2', 'w3']) expect((await login('alice@example.org', guess, '192.0.2.7')).code).toBe(77);
    const refused = await login('alice@example.org', 'right', '192.0.2.7');
    expect(refused.code, refused.out).toBe(77);
    expect((await login('alice@example.org', 'right', '203.0.113.8')).code).toBe(0);
    const metrics = await (await daemon.http('/metrics')).text();
    expect(metrics).toMatch(/mailmapd_policy_decisions_total\{command="allow",decision="rejected",reason="address"\} [1-9]/);
    expect(metrics).toMatch(/mailmapd_policy_decisions_total\{command="report",decision="reported",reason="failure"\} [1-9]/);
    await new Promise((r) => setTimeout(r, 8500));
    expect((await login('alice@example.org', 'right', '192.0.2.7')).code).toBe(0);
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
