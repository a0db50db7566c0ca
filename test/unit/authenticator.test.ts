// The shared login decision on a real in-memory directory and a real hash pool: answers
// for every kind of user, the verified-credential cache (a hit hashes nothing; a password
// change, deactivation or domain change drops it at once), overload as a temporary
// failure, the limiter hooks, and logs that name the user but never the hash.

import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createAuthenticator, type AuthenticatorHandle, type LoginLimiter } from '../../src/auth/authenticator.js';
import type { AuthContext } from '../../src/auth/types.js';
import { createDirectory, emptyData, type Directory } from '../../src/directory/directory.js';
import { createLogger } from '../../src/log.js';
import { createMetrics, type Metrics } from '../../src/metrics.js';
import { createHashPool, type HashPool } from '../../src/password/pool.js';

const sha512 = '{SHA512-CRYPT}$6$lXRp1ig.4KPF2O5i$8hULb3sBLbI1Eo5rjuOrw262V.pizuOv3igQTRCz/cfOctXAnCnIVo7857/Esw/QbDljhogP5FOeQDddoyfos0';
const bcrypt = '$2y$10$b/e1k4qmm32/1Q6ZbLkO8uMwv.G7iggLa53r7W0zV3GKmdBSERzsq'; // "secret", Laravel style
const userdb = { mailHome: '/var/vmail/%d/%n', mailUid: 5000, mailGid: 5001 };
const ctx: AuthContext = { service: 'imap', remoteIp: '192.0.2.1' };

let pool: HashPool;
beforeAll(() => {
  pool = createHashPool({ workers: 2, queueLimit: 100, defaultScheme: 'CRYPT', metrics: createMetrics(false), logger: createLogger('error', () => {}) });
});
afterAll(() => pool.close());

let directory: Directory;
let metrics: Metrics;
let logs: string[];
let auth: AuthenticatorHandle;

function load(d: Directory) {
  const data = emptyData();
  data.domains.set('example.org', true).set('other.org', true).set('off.org', false);
  data.aliasDomains.set('alias.org', { target: 'example.org', active: true });
  data.mailboxes
    .set('user@example.org', { password: sha512, quotaBytes: 1024, active: true })
    .set('laravel@example.org', { password: bcrypt, quotaBytes: 0, active: true })
    .set('other@other.org', { password: '{PLAIN}secret', quotaBytes: 0, active: true })
    .set('nopw@example.org', { password: null, quotaBytes: 0, active: true })
    .set('broken@example.org', { password: '{ROT13}frperg-not-a-hash', quotaBytes: 0, active: true })
    .set('off@example.org', { password: sha512, quotaBytes: 0, active: false })
    .set('x@off.org', { password: sha512, quotaBytes: 0, active: true });
  d.replaceAll(data);
}

function make(extra: { limiter?: LoginLimiter; pool?: HashPool; cacheSize?: number } = {}) {
  metrics = createMetrics(false);
  logs = [];
  return createAuthenticator({
    directory,
    pool: extra.pool ?? pool,
    logger: createLogger('debug', (l) => logs.push(l)),
    metrics,
    userdb,
    cacheSize: extra.cacheSize ?? 1000,
    ...(extra.limiter ? { limiter: extra.limiter } : {}),
  });
}

beforeEach(() => {
  directory = createDirectory({ recipientDelimiter: '+' });
  load(directory);
  auth = make();
});

async function value(name: string) {
  return (await metrics.registry.getMetricsAsJSON()).find((m) => m.name === name)?.values[0]?.value ?? 0;
}

describe('authenticate', () => {
  it('accepts the right password with the userdb fields, folding the login', async () => {
    expect(await auth.authenticate('User@Example.ORG', 'secret', ctx)).toEqual({
      result: 'ok',
      fields: { user: 'user@example.org', home: '/var/vmail/example.org/user', uid: 5000, gid: 5001, quotaRule: '*:bytes=1024' },
    });
    expect(await auth.authenticate('laravel@example.org', 'secret', ctx)).toMatchObject({ result: 'ok' });
  });

  it('resolves a login in an alias domain to the mailbox of the target domain', async () => {
    expect(await auth.authenticate('user@alias.org', 'secret', ctx)).toMatchObject({ result: 'ok', fields: { user: 'user@example.org' } });
  });

  it('fails a wrong password, an unknown user and a mailbox without password; disabled is its own answer', async () => {
    expect(await auth.authenticate('user@example.org', 'Secret', ctx)).toEqual({ result: 'fail', why: 'mismatch' });
    expect(await auth.authenticate('nobody@example.org', 'secret', ctx)).toEqual({ result: 'fail', why: 'unknown' });
    expect(await auth.authenticate('not-an-address', 'secret', ctx)).toEqual({ result: 'fail', why: 'unknown' });
    expect(await auth.authenticate('nopw@example.org', '', ctx)).toEqual({ result: 'fail', why: 'no_password' });
    expect(await auth.authenticate('off@example.org', 'secret', ctx)).toEqual({ result: 'disabled', address: 'off@example.org' });
    expect(await auth.authenticate('x@off.org', 'secret', ctx)).toEqual({ result: 'disabled', address: 'x@off.org' });
  });

  it('checks an unknown login against the decoy hash, so that it costs what a known one does', async () => {
    const asked: string[][] = [];
    const counting: HashPool = {
      ...pool,
      checkAny: (pw, stored) => {
        asked.push(stored);
        return pool.checkAny(pw, stored);
      },
    };
    const decoy = sha512;
    const a = createAuthenticator({
      directory,
      pool: counting,
      logger: createLogger('error', () => {}),
      metrics: createMetrics(false),
      userdb,
      cacheSize: 0,
      decoy,
    });
    expect(await a.authenticate('nobody@example.org', 'secret', ctx)).toEqual({ result: 'fail', why: 'unknown' });
    expect(await a.authenticate('nobody@nowhere.test', 'secret', ctx)).toEqual({ result: 'fail', why: 'unknown' });
    expect(asked).toEqual([[decoy], [decoy]]);
    // The decoy's own password changes nothing: still unknown.
    expect((await a.authenticate('nobody@example.org', 'password', ctx)).result).toBe('fail');
    a.close();
  });

  it('answers temp before the directory is loaded', async () => {
    directory = createDirectory({ recipientDelimiter: '+' });
    auth = make();
    expect(await auth.authenticate('user@example.org', 'secret', ctx)).toMatchObject({ result: 'temp' });
    expect(auth.lookup('user@example.org')).toMatchObject({ result: 'temp' });
  });

  it('auth_max_staleness: the copy decides logins up to the bound; past it a login is a temporary failure, userdb still answers', async () => {
    let now = 100_000;
    const lastRefresh = 90_000;
    const a = createAuthenticator({
      directory,
      pool,
      logger: createLogger('debug', (l) => logs.push(l)),
      metrics,
      userdb,
      cacheSize: 0,
      maxStalenessMs: 10_000,
      lastRefresh: () => lastRefresh,
      now: () => now,
    });
    expect(await a.authenticate('user@example.org', 'secret', ctx)).toMatchObject({ result: 'ok' });
    now += 1;
    expect(await a.authenticate('user@example.org', 'secret', ctx)).toMatchObject({ result: 'temp' });
    expect(await a.authenticate('user@example.org', 'wrong', ctx)).toMatchObject({ result: 'temp' });
    expect(a.lookup('user@example.org')).toMatchObject({ result: 'ok' });
    expect(await value('mailmapd_auth_stale_total')).toBe(2);
    expect(logs.join('')).toMatch(/older than auth_max_staleness/);
    a.close();
  });

  it('an unusable stored hash is bad_hash, logged with the user and scheme but never the hash', async () => {
    expect(await auth.authenticate('broken@example.org', 'secret', ctx)).toEqual({ result: 'fail', why: 'bad_hash' });
    const line = logs.find((l) => l.includes('cannot be checked'));
    expect(line).toBeDefined();
    expect(line).toContain('user=broken@example.org');
    expect(line).toContain('ROT13');
    expect(line).not.toContain('frperg');
    expect(logs.join('')).not.toContain('secret');
  });
});

describe('verified-credential cache', () => {
  it('a second login with the same password is a cache hit that hashes nothing', async () => {
    await auth.authenticate('user@example.org', 'secret', ctx);
    const hashed = pool.completed;
    for (let i = 0; i < 5; i++) expect(await auth.authenticate('USER@example.org', 'secret', ctx)).toMatchObject({ result: 'ok' });
    expect(await auth.authenticate('user@alias.org', 'secret', ctx)).toMatchObject({ result: 'ok' });
    expect(pool.completed).toBe(hashed);
    expect(await value('mailmapd_auth_cache_hits_total')).toBe(6);
    expect(await value('mailmapd_auth_cache_misses_total')).toBe(1);
  });

  it('a wrong password is never answered from the cache', async () => {
    await auth.authenticate('user@example.org', 'secret', ctx);
    const hashed = pool.completed;
    expect(await auth.authenticate('user@example.org', 'secret2', ctx)).toMatchObject({ result: 'fail' });
    expect(pool.completed).toBe(hashed + 1);
  });

  it('a password change drops the entry at once: the old password fails, the new one works', async () => {
    await auth.authenticate('user@example.org', 'secret', ctx);
    expect(auth.cacheSize).toBe(1);
    directory.setMailbox('user@example.org', { password: '{PLAIN}new', quotaBytes: 0, active: true });
    expect(auth.cacheSize).toBe(0);
    expect(await auth.authenticate('user@example.org', 'secret', ctx)).toEqual({ result: 'fail', why: 'mismatch' });
    expect(await auth.authenticate('user@example.org', 'new', ctx)).toMatchObject({ result: 'ok' });
  });

  it('deactivation drops the entry; reactivation needs a real verification again', async () => {
    await auth.authenticate('user@example.org', 'secret', ctx);
    directory.setMailbox('user@example.org', { password: sha512, quotaBytes: 0, active: false });
    expect(auth.cacheSize).toBe(0);
    expect(await auth.authenticate('user@example.org', 'secret', ctx)).toMatchObject({ result: 'disabled' });
    directory.setMailbox('user@example.org', { password: sha512, quotaBytes: 0, active: true });
    const hashed = pool.completed;
    expect(await auth.authenticate('user@example.org', 'secret', ctx)).toMatchObject({ result: 'ok' });
    expect(pool.completed).toBe(hashed + 1);
  });

  it('a domain change drops every user of that domain and only them', async () => {
    await auth.authenticate('user@example.org', 'secret', ctx);
    await auth.authenticate('laravel@example.org', 'secret', ctx);
    await auth.authenticate('other@other.org', 'secret', ctx);
    expect(auth.cacheSize).toBe(3);
    directory.setDomain('example.org', false);
    expect(auth.cacheSize).toBe(1);
    expect(await auth.authenticate('user@example.org', 'secret', ctx)).toMatchObject({ result: 'disabled' });
  });

  it('an alias-domain change or a full reload drops the cache', async () => {
    await auth.authenticate('user@alias.org', 'secret', ctx);
    directory.setAliasDomain('alias.org', { target: 'example.org', active: false });
    expect(auth.cacheSize).toBe(0);
    expect(await auth.authenticate('user@alias.org', 'secret', ctx)).toMatchObject({ result: 'disabled' });
    await auth.authenticate('user@example.org', 'secret', ctx);
    load(directory);
    expect(auth.cacheSize).toBe(0);
  });

  it('alias changes leave the cache alone', async () => {
    await auth.authenticate('user@example.org', 'secret', ctx);
    directory.setAlias('info@example.org', 'user@example.org');
    expect(auth.cacheSize).toBe(1);
  });

  it('a password changed while the worker hashed is judged against the new one', async () => {
    const pending = auth.authenticate('user@example.org', 'secret', ctx);
    directory.setMailbox('user@example.org', { password: '{PLAIN}other', quotaBytes: 0, active: true });
    expect(await pending).toEqual({ result: 'fail', why: 'mismatch' });
    expect(auth.cacheSize).toBe(0);
  });

  it('stays within its size, evicting the least recently used', async () => {
    auth = make({ cacheSize: 2 });
    await auth.authenticate('user@example.org', 'secret', ctx);
    await auth.authenticate('laravel@example.org', 'secret', ctx);
    await auth.authenticate('user@example.org', 'secret', ctx); // refreshes user
    await auth.authenticate('other@other.org', 'secret', ctx); // evicts laravel
    expect(auth.cacheSize).toBe(2);
    const hashed = pool.completed;
    await auth.authenticate('user@example.org', 'secret', ctx);
    expect(pool.completed).toBe(hashed);
    await auth.authenticate('laravel@example.org', 'secret', ctx);
    expect(pool.completed).toBe(hashed + 1);
  });

  // How fast a hit is belongs to the benchmarks (bench/logins.mjs); what makes it fast is
  // that a hit never waits for a hash worker.
  it('answers hits without the hash workers', async () => {
    await auth.authenticate('user@example.org', 'secret', ctx);
    const hashed = pool.completed;
    for (let i = 0; i < 2000; i++) expect((await auth.authenticate('user@example.org', 'secret', ctx)).result).toBe('ok');
    expect(pool.completed).toBe(hashed);
  });
});

describe('overload and the limiter', () => {
  it('busy hash workers give a temporary failure, not a wrong-password answer', async () => {
    const tiny = createHashPool({ workers: 1, queueLimit: 1, defaultScheme: 'CRYPT', metrics: createMetrics(false), logger: createLogger('error', () => {}) });
    try {
      auth = make({ pool: tiny, cacheSize: 0 });
      const argon = '{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$p0mpeMcwnWXYidM9ojQ5Lg$N5YjHg6qTNx7znGUV+wqtSzv7mMMoRayqY5xEsG2OHs';
      directory.setMailbox('user@example.org', { password: argon, quotaBytes: 0, active: true });
      const results = await Promise.all([1, 2, 3, 4].map(() => auth.authenticate('user@example.org', 'secret', ctx)));
      expect(results.filter((r) => r.result === 'ok').length).toBe(2);
      expect(results.filter((r) => r.result === 'temp').length).toBe(2);
    } finally {
      await tiny.close();
    }
  });

  it('a refusing limiter stops the login before any hashing; outcomes are reported with a password tag', async () => {
    const reports: { login: string; success: boolean; tag: string }[] = [];
    let refuse = false;
    auth = make({
      limiter: {
        reserve: (login, _ctx, tag) =>
          refuse
            ? { refused: { retryAfterSeconds: 7 } }
            : { attempt: { settle: (result) => void reports.push({ login, success: result === 'success', tag }) } },
      },
    });
    await auth.authenticate('user@example.org', 'wrong', ctx);
    await auth.authenticate('user@example.org', 'wrong', ctx);
    await auth.authenticate('user@example.org', 'secret', ctx);
    expect(reports.map((r) => r.success)).toEqual([false, false, true]);
    expect(reports[0]!.tag).toBe(reports[1]!.tag); // same wrong password, same tag
    expect(reports[0]!.tag).not.toBe(reports[2]!.tag);
    expect(reports[0]!.tag).not.toContain('wrong');
    refuse = true;
    const hashed = pool.completed;
    expect(await auth.authenticate('user@example.org', 'other', ctx)).toEqual({ result: 'refused', retryAfterSeconds: 7 });
    expect(pool.completed).toBe(hashed);
  });
});

describe('lookup', () => {
  it('answers the userdb side from memory', () => {
    expect(auth.lookup('User@Alias.org')).toEqual({
      result: 'ok',
      fields: { user: 'user@example.org', home: '/var/vmail/example.org/user', uid: 5000, gid: 5001, quotaRule: '*:bytes=1024' },
    });
    expect(auth.lookup('nobody@example.org')).toEqual({ result: 'unknown' });
    expect(auth.lookup('off@example.org')).toEqual({ result: 'disabled', address: 'off@example.org' });
  });
});
