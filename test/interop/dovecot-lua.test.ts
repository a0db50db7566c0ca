// The Dovecot Lua door: the HTTP lookup endpoint on its own (answers, shared secret,
// metrics, no password in a log), the printed conf.d snippets, and the interop with real,
// throwaway Dovecots running config/dovecot/auth-mailmapd.lua with the snippet that
// `mailmapd dovecot-config --lua` prints for their version, against a directory fed from
// PostgreSQL by the sync: Debian 12's Dovecot 2.3 (dovecot-core, dovecot-auth-lua) and
// Debian 13's 2.4 in the chroot scripts/dovecot24-root.sh makes. Fails without either.

import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAuthenticator, type AuthenticatorHandle } from '../../src/auth/authenticator.js';
import { defaultLuaFile, dovecotLuaConfig, dovecotLuaConfig23, dovecotLuaConfig24 } from '../../src/cli/dovecot-lua-config.js';
import { parseConfigText, type Config } from '../../src/config.js';
import { createDirectory, emptyData, type Directory } from '../../src/directory/directory.js';
import { createDovecotRoutes } from '../../src/dovecot/route.js';
import { serveHttp, type HttpServer } from '../../src/http/server.js';
import { createLogger } from '../../src/log.js';
import { createMetrics, type Metrics } from '../../src/metrics.js';
import { hashPassword } from '../../src/password/hash.js';
import { createHashPool, type HashPool } from '../../src/password/pool.js';
import { nativeProfile } from '../../src/sync/profile.js';
import { createSync, type Sync } from '../../src/sync/sync.js';
import { freePort } from '../helpers/daemon.js';
import { createTestDatabase, waitFor, type TestDatabase } from '../helpers/db.js';
import { dovecot23Target, dovecot24Target, dovecotInstance, type DovecotInstance, type DovecotTarget } from '../helpers/dovecot.js';

const sha512 = '{SHA512-CRYPT}$6$lXRp1ig.4KPF2O5i$8hULb3sBLbI1Eo5rjuOrw262V.pizuOv3igQTRCz/cfOctXAnCnIVo7857/Esw/QbDljhogP5FOeQDddoyfos0'; // "secret"
const odd = 'p@ss w&rd=+%é'; // every character the form encoding must carry

interface Stack {
  directory: Directory;
  metrics: Metrics;
  logs: string[];
  auth: AuthenticatorHandle;
  http: HttpServer;
  base: string;
  config: Config;
}

async function startStack(directory: Directory, pool: HashPool, extra: string[] = []): Promise<Stack> {
  const port = await freePort();
  const config = parseConfigText([`http_listen = 127.0.0.1:${port}`, 'mail_gid = 5001', ...extra].join('\n'), 'test');
  const metrics = createMetrics(true);
  const logs: string[] = [];
  const logger = createLogger('debug', (l) => logs.push(l));
  const auth = createAuthenticator({
    directory,
    pool,
    logger,
    metrics,
    userdb: { mailHome: config.mail_home, mailUid: config.mail_uid, mailGid: config.mail_gid },
    cacheSize: 1000,
  });
  const routes = createDovecotRoutes({ authenticator: auth, directory, config, logger, metrics });
  const http = await serveHttp(
    config.http_listen[0]!,
    routes,
    { maxConnections: 100, maxBodyBytes: 65536, idleTimeoutMs: 5000, requestTimeoutMs: 10_000 },
    { mode: 0o660, group: '' },
    logger,
    metrics,
  );
  return { directory, metrics, logs, auth, http, base: `http://127.0.0.1:${port}`, config };
}

async function histogramCount(m: Metrics, labels: Record<string, string>): Promise<number> {
  const json = await m.registry.getMetricsAsJSON();
  const h = json.find((x) => x.name === 'mailmapd_lookup_duration_seconds');
  return (h?.values ?? [])
    .filter(
      (v) =>
        (v as { metricName?: string }).metricName === 'mailmapd_lookup_duration_seconds_count' && Object.entries(labels).every(([k, x]) => v.labels[k] === x),
    )
    .reduce((a, v) => a + v.value, 0);
}

let pool: HashPool;
beforeAll(() => {
  pool = createHashPool({ workers: 2, queueLimit: 100, defaultScheme: 'CRYPT', metrics: createMetrics(false), logger: createLogger('error', () => {}) });
});
afterAll(() => pool.close());

describe('the lookup endpoint', () => {
  let s: Stack;
  const secret = 'tok-3n';
  const pw = 'Tr0ub4dor-x';
  const post = (path: string, fields: Record<string, string>, token: string | null = secret) =>
    fetch(s.base + path, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...(token !== null ? { authorization: `Bearer ${token}` } : {}) },
      body: new URLSearchParams(fields).toString(),
    });
  const answer = async (r: Response) => Object.fromEntries(new URLSearchParams(await r.text()));

  beforeAll(async () => {
    const directory = createDirectory({ recipientDelimiter: '+' });
    const data = emptyData();
    data.domains.set('example.org', true).set('off.org', false);
    data.aliasDomains.set('alias.org', { target: 'example.org', active: true });
    data.mailboxes
      .set('user@example.org', { password: `{PLAIN}${pw}`, quotaBytes: 2048, active: true })
      .set('odd@example.org', { password: `{PLAIN}${odd}`, quotaBytes: 0, active: true })
      .set('off@example.org', { password: sha512, quotaBytes: 0, active: false })
      .set('x@off.org', { password: sha512, quotaBytes: 0, active: true });
    directory.replaceAll(data);
    s = await startStack(directory, pool, [`http_secret = ${secret}`]);
  });
  afterAll(async () => {
    s.auth.close();
    await s.http.close(0);
  });

  it('verifies a password and answers the canonical user with the userdb fields', async () => {
    const r = await post('/dovecot/passdb', { user: 'User@Alias.ORG', password: pw, service: 'imap', rip: '192.0.2.9' });
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toBe('application/x-www-form-urlencoded');
    expect(await answer(r)).toEqual({
      result: 'ok',
      user: 'user@example.org',
      home: '/var/vmail/example.org/user',
      uid: '5000',
      gid: '5001',
      quota_rule: '*:bytes=2048',
    });
    expect(await answer(await post('/dovecot/passdb', { user: 'odd@example.org', password: odd }))).toMatchObject({ result: 'ok' });
  });

  it('tells mismatch, unknown and disabled apart', async () => {
    expect(await answer(await post('/dovecot/passdb', { user: 'user@example.org', password: pw.toUpperCase() }))).toEqual({ result: 'mismatch' });
    expect(await answer(await post('/dovecot/passdb', { user: 'nobody@example.org', password: pw }))).toEqual({ result: 'unknown' });
    // Disabled is told only to the right password: a wrong one gets the plain mismatch.
    expect(await answer(await post('/dovecot/passdb', { user: 'off@example.org', password: 'secret' }))).toEqual({
      result: 'disabled',
      user: 'off@example.org',
    });
    expect(await answer(await post('/dovecot/passdb', { user: 'x@off.org', password: 'secret' }))).toEqual({ result: 'disabled', user: 'x@off.org' });
    expect(await answer(await post('/dovecot/passdb', { user: 'off@example.org', password: pw }))).toEqual({ result: 'mismatch' });
    expect(await answer(await post('/dovecot/passdb', { user: 'x@off.org', password: pw }))).toEqual({ result: 'mismatch' });
    expect(await answer(await post('/dovecot/passdb', { user: 'bad\nname@example.org', password: pw }))).toEqual({ result: 'unknown' });
  });

  it('a passdb request without a password is refused, never treated as a lookup', async () => {
    const r = await post('/dovecot/passdb', { user: 'user@example.org' });
    expect(r.status).toBe(400);
    expect((await answer(r)).result).not.toBe('ok');
  });

  it('userdb: fields for an active mailbox, unknown and disabled otherwise', async () => {
    expect(await answer(await post('/dovecot/userdb', { user: 'USER@example.org' }))).toEqual({
      result: 'ok',
      user: 'user@example.org',
      home: '/var/vmail/example.org/user',
      uid: '5000',
      gid: '5001',
      quota_rule: '*:bytes=2048',
    });
    expect(await answer(await post('/dovecot/userdb', { user: 'odd@example.org' }))).not.toHaveProperty('quota_rule');
    expect(await answer(await post('/dovecot/userdb', { user: 'nobody@example.org' }))).toEqual({ result: 'unknown' });
    expect(await answer(await post('/dovecot/userdb', { user: 'off@example.org' }))).toEqual({ result: 'disabled', user: 'off@example.org' });
  });

  it('iterate lists the active mailboxes only', async () => {
    const r = await fetch(`${s.base}/dovecot/users`, { headers: { authorization: `Bearer ${secret}` } });
    expect(r.status).toBe(200);
    expect((await r.text()).split('\n').filter(Boolean).sort()).toEqual(['odd@example.org', 'user@example.org']);
  });

  it('refuses a missing or wrong shared secret with 401, before any lookup', async () => {
    const before = await histogramCount(s.metrics, { protocol: 'dovecot' });
    expect((await post('/dovecot/passdb', { user: 'user@example.org', password: pw }, null)).status).toBe(401);
    expect((await post('/dovecot/passdb', { user: 'user@example.org', password: pw }, 'tok-3N')).status).toBe(401);
    expect((await post('/dovecot/userdb', { user: 'user@example.org' }, '')).status).toBe(401);
    expect((await fetch(`${s.base}/dovecot/users`)).status).toBe(401);
    expect(await histogramCount(s.metrics, { protocol: 'dovecot' })).toBe(before);
  });

  it('records every answer in the lookup histogram by map and result', async () => {
    expect(await histogramCount(s.metrics, { protocol: 'dovecot', map: 'passdb', result: 'ok' })).toBeGreaterThanOrEqual(2);
    expect(await histogramCount(s.metrics, { protocol: 'dovecot', map: 'passdb', result: 'fail' })).toBeGreaterThanOrEqual(3);
    expect(await histogramCount(s.metrics, { protocol: 'dovecot', map: 'passdb', result: 'notfound' })).toBeGreaterThanOrEqual(2);
    expect(await histogramCount(s.metrics, { protocol: 'dovecot', map: 'userdb', result: 'ok' })).toBeGreaterThanOrEqual(2);
    expect(await histogramCount(s.metrics, { protocol: 'dovecot', map: 'userdb', result: 'notfound' })).toBeGreaterThanOrEqual(1);
    expect(await histogramCount(s.metrics, { protocol: 'dovecot', map: 'iterate', result: 'ok' })).toBe(1);
  });

  it('never logs a password or a hash', () => {
    const all = s.logs.join('');
    expect(all).toContain('dovecot passdb');
    for (const secretText of [pw, pw.toUpperCase(), odd, encodeURIComponent(odd), '$6$', 'lXRp1ig']) expect(all).not.toContain(secretText);
  });

  it('answers 503 temp before the directory is loaded', async () => {
    const cold = await startStack(createDirectory({ recipientDelimiter: '+' }), pool, [`http_secret = ${secret}`]);
    const headers = { authorization: `Bearer ${secret}` };
    try {
      const p = await fetch(`${cold.base}/dovecot/passdb`, { method: 'POST', headers, body: `user=user%40example.org&password=${pw}` });
      expect(p.status).toBe(503);
      expect(await answer(p)).toMatchObject({ result: 'temp' });
      expect((await fetch(`${cold.base}/dovecot/userdb`, { method: 'POST', headers, body: 'user=user%40example.org' })).status).toBe(503);
      expect((await fetch(`${cold.base}/dovecot/users`, { headers })).status).toBe(503);
      expect(await histogramCount(cold.metrics, { protocol: 'dovecot', result: 'temp' })).toBe(3);
    } finally {
      cold.auth.close();
      await cold.http.close(0);
    }
  });
});

describe('dovecot-config --lua', () => {
  const cfg = (extra = '') => parseConfigText(`http_listen = unix:/run/mailmapd/http, 127.0.0.1:9999\n${extra}`, 'test');

  it('prints the 2.3 and the 2.4 syntax with the daemon URL and the shipped script', () => {
    const out = dovecotLuaConfig(cfg());
    expect(existsSync(defaultLuaFile)).toBe(true);
    expect(out).toContain('Dovecot 2.3');
    expect(out).toContain('Dovecot 2.4');
    expect(out).toMatch(/passdb \{\n {2}driver = lua\n {2}args = file=\S+auth-mailmapd\.lua blocking=yes\n\}/);
    expect(out).toMatch(/userdb \{\n {2}driver = lua\n/);
    expect(out).toContain('MAILMAPD_URL=http://127.0.0.1:9999');
    expect(out).toMatch(/passdb lua \{\n {2}lua_file = \S+auth-mailmapd\.lua\n/);
    expect(out).toMatch(/userdb lua \{/);
    expect(out).toMatch(/lua_settings \{\n {4}url = http:\/\/127\.0\.0\.1:9999\n/);
    expect(out).toContain('    quota_field = quota_storage_size\n'); // 2.4 ignores quota_rule
    expect(out).toContain('auth_cache_size = 0');
    // No secret configured: none is printed, and the note says what needs one.
    expect(out).not.toMatch(/MAILMAPD_HTTP_SECRET=|http_secret = /);
    expect(out).toContain('http_secret is not set');
  });

  it('passes the shared secret when one is configured', () => {
    expect(dovecotLuaConfig23(cfg('http_secret = s3cr3t'))).toContain('MAILMAPD_HTTP_SECRET=s3cr3t');
    expect(dovecotLuaConfig24(cfg('http_secret = s3cr3t'))).toContain('http_secret = s3cr3t');
  });

  it('says so when the daemon has no TCP HTTP listener for Dovecot to reach', () => {
    expect(dovecotLuaConfig(parseConfigText('http_listen = unix:/run/mailmapd/http', 'test'))).toContain('cannot use a UNIX socket');
  });
});

/** A Dovecot to run the interop suite against: the host's, or one in a chroot. */
interface DovecotUnderTest extends DovecotTarget {
  /** The conf.d lines `mailmapd dovecot-config --lua` prints for this version. */
  snippet(config: Config, luaFile: string): string;
  /** How `doveadm user` shows a quota of `bytes`, and the field's name. */
  quota: { field: string; shown: (bytes: number) => RegExp };
  /** Maildir under the user's home and a count quota root, in this version's syntax. */
  mailAndQuota: string[];
  /** `doveadm auth test`'s exit code for a temporary failure (2.3: 77 as for a refusal; 2.4: 75, EX_TEMPFAIL). */
  authTestTempFailExit: number;
  /** Matches the auth worker's log line of a lookup for `user` (escaped), capturing its request number. */
  workerRequest(user: string): RegExp;
}

/** The passdb result code the auth worker logged for its last lookup of `user`, if any. */
function workerResult(d: DovecotUnderTest, log: string, user: string): string | undefined {
  const id = [...log.matchAll(d.workerRequest(user.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))].at(-1)?.[1];
  if (id === undefined) return undefined;
  const finished = [...log.matchAll(new RegExp(`auth-worker<${id}>: Finished(?:: (\\w+))?$`, 'gm'))].at(-1);
  return finished === undefined ? undefined : (finished[1] ?? 'ok');
}

// Debian 12's own Dovecot.
const dovecot23: DovecotUnderTest = {
  ...dovecot23Target,
  // What `mailmapd dovecot-config --lua` prints for 2.3, verbatim, with the shipped script.
  snippet: (config) => dovecotLuaConfig23(config),
  quota: { field: 'quota_rule', shown: (bytes) => new RegExp(`^quota_rule\\s+\\*:bytes=${bytes}$`, 'm') },
  authTestTempFailExit: 77,
  mailAndQuota: ['mail_location = maildir:~/Maildir', 'mail_plugins = $mail_plugins quota', 'plugin {\n  quota = count:User quota\n  quota_vsizes = yes\n}'],
  // "auth-worker(pid): … auth-worker<N>: lua(user): …"
  workerRequest: (user) => new RegExp(`auth-worker<(\\d+)>: lua\\(${user}\\)`, 'g'),
};

// Debian 13's Dovecot 2.4, in the root scripts/dovecot24-root.sh makes (`.ci/run` makes it).
const dovecot24: DovecotUnderTest = {
  ...dovecot24Target,
  snippet: (config, luaFile) => dovecotLuaConfig24(config, { luaFile }),
  quota: { field: 'quota_storage_size', shown: (bytes) => new RegExp(`^quota_storage_size\\s+${bytes}$`, 'm') },
  authTestTempFailExit: 75,
  mailAndQuota: ['mail_driver = maildir', 'mail_path = ~/Maildir', 'mail_plugins {\n  quota = yes\n}', 'quota "User quota" {\n  driver = count\n}'],
  // "auth-worker(user)<pid>: request [N]: …"
  workerRequest: (user) => new RegExp(`auth-worker\\(${user}\\)<\\d+>: request \\[(\\d+)\\]`, 'g'),
};

for (const target of [dovecot23, dovecot24]) describeInterop(target);

function describeInterop(d: DovecotUnderTest): void {
  describe(`interop: Dovecot ${d.version} with the Lua passdb and userdb`, { timeout: 30_000 }, () => {
    let db: TestDatabase;
    let sync: Sync;
    let s: Stack;
    let dc: DovecotInstance;
    const directory = createDirectory({ recipientDelimiter: '+' });
    const command = (bin: string, args: string[]): [string, string[]] => (d.root === '' ? [bin, args] : ['chroot', [d.root, bin, ...args]]);
    const doveadm = (...args: string[]) => dc.doveadm(args);
    const authTest = (user: string, password: string) => doveadm('auth', 'test', user, password);
    const dovecotLog = () => dc.log();
    const httpConnections = async () =>
      (await s.metrics.registry.getMetricsAsJSON()).find((m) => m.name === 'mailmapd_connections_total')?.values.find((v) => v.labels.listener === 'http')
        ?.value ?? 0;

    beforeAll(async () => {
      d.requireInstalled();

      db = await createTestDatabase();
      const crypt = spawnSync(...command('doveadm', ['pw', '-s', 'SHA512-CRYPT', '-p', 'alice-pw']), { encoding: 'utf8' }).stdout.trim();
      expect(crypt).toMatch(/^\{SHA512-CRYPT\}\$6\$/);
      await db.sql.query(`INSERT INTO mailmapd.domains (name, active) VALUES ('example.org', true), ('off.test', false)`);
      await db.sql.query(`INSERT INTO mailmapd.alias_domains (name, target) VALUES ('alias.test', 'example.org')`);
      await db.sql.query(
        `INSERT INTO mailmapd.mailboxes (address, password, quota_bytes, active) VALUES
          ('alice@example.org', $1, 1073741824, true),
          ('bob@example.org', $2, 0, true),
          ('carol@example.org', '{PLAIN}carol-pw', 0, false),
          ('dave@off.test', '{PLAIN}dave-pw', 0, true)`,
        [crypt, `{PLAIN}${odd}`],
      );
      sync = createSync({
        databaseUrl: db.url,
        profile: nativeProfile,
        directory,
        logger: createLogger('error', () => {}),
        metrics: createMetrics(false),
        pollIntervalMs: 5000,
        retentionMs: 86_400_000,
        reconnectMaxDelayMs: 500,
      });
      sync.start();
      await sync.firstLoad();
      dc = dovecotInstance(d, 'mailmapd-dovecot-lua-');
      s = await startStack(directory, pool, ['http_secret = interop-t0ken', `mail_home = ${dc.inside(dc.dir)}/vmail/%d/%n`]);
      dc.writeConfig([
        'protocols =',
        'auth_verbose = yes',
        // The auth-worker logs "Finished: user_unknown" etc. only at debug level: the
        // test reads the exact passdb result codes from there.
        'auth_debug = yes',
        // No failure delay and no anvil penalty, or every failed doveadm run waits seconds.
        'auth_failure_delay = 0',
        'service anvil {\n  unix_listener anvil-auth-penalty {\n    mode = 0\n  }\n}',
        ...d.mailAndQuota,
        d.snippet(s.config, dc.luaFile),
      ]);
      await dc.start(['auth-client', 'auth-userdb']);
    }, 60_000);

    afterAll(async () => {
      await dc?.stop();
      s?.auth.close();
      await s?.http.close(0);
      await sync?.stop();
      await db?.drop();
    }, 30_000);

    it('doveadm auth test: a good password logs in with the canonical user name', async () => {
      const good = await authTest('alice@example.org', 'alice-pw');
      expect(good.code, good.out).toBe(0);
      expect(good.out).toContain('auth succeeded');
      const folded = await authTest('Alice@Alias.TEST', 'alice-pw');
      expect(folded.code, folded.out).toBe(0);
      expect(folded.out).toMatch(/^\s*user=alice@example\.org$/m);
      const odd1 = await authTest('bob@example.org', odd);
      expect(odd1.code, odd1.out).toBe(0);
      // The client's address reaches the daemon, whose brute-force limiter counts by it.
      const fromIp = await doveadm('auth', 'test', '-x', 'rip=192.0.2.7', 'alice@example.org', 'alice-pw');
      expect(fromIp.code, fromIp.out).toBe(0);
      expect(s.logs.filter((l) => l.includes('"dovecot passdb"')).at(-1)).toMatch(/ service=doveadm rip=192\.0\.2\.7 result=ok/);
    });

    it('doveadm auth test: bad password, unknown user and inactive users fail, each with its own passdb result', async () => {
      const cases: [string, string, string][] = [
        ['alice@example.org', 'wrong-pw', 'password_mismatch'],
        ['nobody@example.org', 'alice-pw', 'user_unknown'],
        ['carol@example.org', 'carol-pw', 'user_disabled'],
        ['dave@off.test', 'dave-pw', 'user_disabled'],
      ];
      for (const [user, pw, code] of cases) {
        const r = await authTest(user, pw);
        expect(r.code, r.out).toBe(77);
        expect(r.out).toContain('auth failed');
        if (code === 'user_disabled') expect(r.out).toContain('code=user_disabled');
        else expect(r.out).not.toContain('code=');
        // The auth worker's own record of the result code the script returned.
        const log = dovecotLog();
        expect(workerResult(d, log, user), log).toBe(code);
      }
    });

    it('doveadm user shows home, uid, gid and the quota', async () => {
      const r = await doveadm('user', 'Alice@example.org');
      expect(r.code, r.out).toBe(0);
      expect(r.out).toMatch(new RegExp(`^home\\s+${dc.inside(dc.dir)}/vmail/example\\.org/alice$`, 'm'));
      expect(r.out).toMatch(/^uid\s+5000$/m);
      expect(r.out).toMatch(/^gid\s+5001$/m);
      expect(r.out).toMatch(d.quota.shown(1073741824));
      expect((await doveadm('user', 'bob@example.org')).out).not.toContain(d.quota.field);
      expect((await doveadm('user', 'nobody@example.org')).code).toBe(67);
      expect((await doveadm('user', 'carol@example.org')).code).toBe(67);
    });

    it("the quota is the limit Dovecot's quota plugin enforces, not just a field", async () => {
      // 1 GiB, shown in KiB; a field Dovecot does not know would leave the limit at "-".
      const alice = await doveadm('quota', 'get', '-u', 'alice@example.org');
      expect(alice.code, alice.out).toBe(0);
      expect(alice.out).toMatch(/^User quota\s+STORAGE\s+\d+\s+1048576\s/m);
      const bob = await doveadm('quota', 'get', '-u', 'bob@example.org');
      expect(bob.code, bob.out).toBe(0);
      expect(bob.out).toMatch(/^User quota\s+STORAGE\s+\d+\s+-\s/m);
    });

    it("doveadm user '*' lists the active users", async () => {
      const r = await doveadm('user', '*');
      expect(r.code, r.out).toBe(0);
      expect(r.out.split('\n').filter(Boolean).sort()).toEqual(['alice@example.org', 'bob@example.org']);
    });

    it('keeps its HTTP connection open between logins', async () => {
      const before = await httpConnections();
      for (let i = 0; i < 10; i++) expect((await authTest('alice@example.org', 'alice-pw')).code).toBe(0);
      // One connection per auth-worker process at most, not one per login.
      expect((await httpConnections()) - before).toBeLessThanOrEqual(2);
    });

    it('a password change in SQL stops the old password on the next attempt, though it was cached', async () => {
      expect((await authTest('bob@example.org', odd)).code).toBe(0);
      const hits = (await s.metrics.registry.getSingleMetric('mailmapd_auth_cache_hits_total')!.get()).values[0]?.value ?? 0;
      expect((await authTest('bob@example.org', odd)).code).toBe(0);
      expect((await s.metrics.registry.getSingleMetric('mailmapd_auth_cache_hits_total')!.get()).values[0]?.value).toBe(hits + 1);

      await db.sql.query(`UPDATE mailmapd.mailboxes SET password = '{PLAIN}bob-new' WHERE address = 'bob@example.org'`);
      // Eventually (how soon is bench/'s to measure: `npm run bench -- sync`).
      await waitFor(
        () => {
          const u = directory.user('bob@example.org');
          return u.status === 'ok' && u.password === '{PLAIN}bob-new';
        },
        10_000,
        'the change to reach the directory',
      );
      const old = await authTest('bob@example.org', odd);
      expect(old.code, old.out).toBe(77);
      expect((await authTest('bob@example.org', 'bob-new')).code).toBe(0);

      await db.sql.query(`UPDATE mailmapd.mailboxes SET active = false WHERE address = 'bob@example.org'`);
      await waitFor(() => directory.user('bob@example.org').status === 'disabled', 10_000, 'deactivation');
      expect((await authTest('bob@example.org', 'bob-new')).out).toContain('code=user_disabled');
    });

    it('no password reaches the daemon log or the Dovecot log', async () => {
      const logs = s.logs.join('') + dovecotLog();
      for (const pw of ['alice-pw', 'wrong-pw', 'bob-new', odd, encodeURIComponent(odd), 'carol-pw', 'interop-t0ken']) expect(logs).not.toContain(pw);
    });

    it('imap disabled: IMAP refused and POP3 allowed, a wrong password told nothing', async () => {
      await db.sql.query(`UPDATE mailmapd.mailboxes SET active = true, disabled_services = '{imap}' WHERE address = 'bob@example.org'`);
      await waitFor(
        () => {
          const u = directory.user('bob@example.org');
          return u.status === 'ok' && u.disabledServices.includes('imap');
        },
        10_000,
        'imap disabled',
      );
      const imapLogin = await doveadm('auth', 'test', '-x', 'service=imap', 'bob@example.org', 'bob-new');
      expect(imapLogin.code, imapLogin.out).toBe(77);
      expect(imapLogin.out).toContain('code=user_disabled');
      const wrong = await doveadm('auth', 'test', '-x', 'service=imap', 'bob@example.org', 'not-bobs');
      expect(wrong.code, wrong.out).toBe(77);
      expect(wrong.out).not.toContain('code=');
      const pop3 = await doveadm('auth', 'test', '-x', 'service=pop3', 'bob@example.org', 'bob-new');
      expect(pop3.code, pop3.out).toBe(0);
    });

    it('an IMAP-only app password logs in to IMAP, not to POP3, and not once deactivated', async () => {
      const stored = await hashPassword('app-pw-0123456789abcdef', 'SSHA256');
      await db.sql.query(`INSERT INTO mailmapd.app_passwords (mailbox, name, password, services) VALUES ('alice@example.org', 'phone', $1, '{imap}')`, [
        stored,
      ]);
      await waitFor(
        () => {
          const u = directory.user('alice@example.org');
          return u.status === 'ok' && u.appPasswords.length === 1;
        },
        10_000,
        'app password',
      );
      const imapLogin = await doveadm('auth', 'test', '-x', 'service=imap', 'alice@example.org', 'app-pw-0123456789abcdef');
      expect(imapLogin.code, imapLogin.out).toBe(0);
      expect((await doveadm('auth', 'test', '-x', 'service=pop3', 'alice@example.org', 'app-pw-0123456789abcdef')).code).toBe(77);
      await db.sql.query(`UPDATE mailmapd.app_passwords SET active = false WHERE mailbox = 'alice@example.org'`);
      await waitFor(
        () => {
          const u = directory.user('alice@example.org');
          return u.status === 'ok' && u.appPasswords.length === 0;
        },
        10_000,
        'app password deactivated',
      );
      expect((await doveadm('auth', 'test', '-x', 'service=imap', 'alice@example.org', 'app-pw-0123456789abcdef')).code).toBe(77);
      expect((await doveadm('auth', 'test', '-x', 'service=imap', 'alice@example.org', 'alice-pw')).code).toBe(0);
    });

    it('a master user logs in as the mailbox with its own password', async () => {
      await db.sql.query(`INSERT INTO mailmapd.master_users (name, password) VALUES ('support', '{PLAIN}master-pw')`);
      await waitFor(() => directory.masterUser('support') !== undefined, 10_000, 'master user');
      const r = await doveadm('auth', 'test', '-x', 'service=imap', 'alice@example.org*support', 'master-pw');
      expect(r.code, r.out).toBe(0);
      expect(r.out).toMatch(/user=alice@example\.org/);
      expect(s.logs.some((l) => l.includes('master login') && l.includes('alice@example.org') && l.includes('support'))).toBe(true);
      expect((await doveadm('auth', 'test', '-x', 'service=imap', 'alice@example.org*support', 'alice-pw')).code).toBe(77);
      expect((await doveadm('auth', 'test', '-x', 'service=imap', 'nobody@example.org*support', 'master-pw')).code).toBe(77);
    });

    it('a mailbox in maintenance fails temporarily, and logs in again once it ends', async () => {
      await db.sql.query(`UPDATE mailmapd.mailboxes SET maintenance = true WHERE address = 'alice@example.org'`);
      await waitFor(
        () => {
          const u = directory.user('alice@example.org');
          return u.status === 'ok' && u.maintenance;
        },
        10_000,
        'maintenance',
      );
      const r = await authTest('alice@example.org', 'alice-pw');
      expect(r.code, r.out).toBe(d.authTestTempFailExit);
      expect(r.out).toContain('code=temp_fail');
      await db.sql.query(`UPDATE mailmapd.mailboxes SET maintenance = false WHERE address = 'alice@example.org'`);
      await waitFor(
        () => {
          const u = directory.user('alice@example.org');
          return u.status === 'ok' && !u.maintenance;
        },
        10_000,
        'maintenance over',
      );
      expect((await authTest('alice@example.org', 'alice-pw')).code).toBe(0);
    });

    it('the daemon being unreachable is a temporary failure, never a wrong password', async () => {
      await s.http.close(0);
      const r = await authTest('alice@example.org', 'alice-pw');
      expect(r.code, r.out).toBe(d.authTestTempFailExit);
      expect(r.out).toContain('code=temp_fail');
      const u = await doveadm('user', 'alice@example.org');
      expect(u.code, u.out).toBe(75);
    });
  });
}
