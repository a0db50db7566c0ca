// The per-login guessing bound, against the three ways round it the second audit found
// (issue 29, item 4), on the real authenticator, a real hash pool and a real limiter:
// guesses in flight at once, the same mailbox through its alias domains, and a master
// user's name used as a plain login. Plus: a master login never over SMTP AUTH, whichever
// door asks. Counted in password verifications (the hash pool's completed jobs).

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAuthenticator, type AuthenticatorHandle } from '../../src/auth/authenticator.js';
import { createDirectory, emptyData, type Directory } from '../../src/directory/directory.js';
import { createDovecotRoutes } from '../../src/dovecot/route.js';
import { parseConfigText } from '../../src/config.js';
import { createLogger } from '../../src/log.js';
import { createMetrics } from '../../src/metrics.js';
import { createHashPool, type HashPool } from '../../src/password/pool.js';
import { createLimiter, type Limiter, type LimiterSettings } from '../../src/policy/limiter.js';

const settings: LimiterSettings = {
  windowMs: 600_000,
  delayAfter: 5,
  rejectAfter: 20,
  prefixRejectAfter: 100,
  loginRejectAfter: 50,
  maxDelayMs: 5000,
  allowList: ['127.0.0.1', '::1'],
  maxEntries: 200_000,
  knownSourceMs: 30 * 86_400_000,
  maxBytes: 64 * 1024 * 1024,
};
// A hash that costs a worker real time, so that guesses overlap.
const sha512 = '{SHA512-CRYPT}$6$lXRp1ig.4KPF2O5i$8hULb3sBLbI1Eo5rjuOrw262V.pizuOv3igQTRCz/cfOctXAnCnIVo7857/Esw/QbDljhogP5FOeQDddoyfos0'; // "secret"

let pool: HashPool;
let directory: Directory;
beforeAll(() => {
  pool = createHashPool({ workers: 2, queueLimit: 10_000, defaultScheme: 'CRYPT', metrics: createMetrics(false), logger: createLogger('error', () => {}) });
  directory = createDirectory({ recipientDelimiter: '+' });
  const data = emptyData();
  data.domains.set('example.org', true);
  for (const alias of ['example.net', 'third.org', 'fourth.org']) data.aliasDomains.set(alias, { target: 'example.org', active: true });
  data.mailboxes
    .set('u@example.org', { password: sha512, quotaBytes: 0, active: true })
    .set('v@example.org', { password: sha512, quotaBytes: 0, active: true });
  data.masterUsers.set('support', { password: '{PLAIN}master-pw', active: true });
  directory.replaceAll(data);
});
afterAll(() => pool.close());

function stack(): { auth: AuthenticatorHandle; limiter: Limiter } {
  const canonical = (login: string) => {
    const u = directory.user(login);
    return u.status === 'unknown' ? login : u.address;
  };
  const limiter = createLimiter(settings, undefined, () => 1000, canonical);
  const userdb = { mailHome: '/var/vmail/%d/%n', mailUid: 5000, mailGid: 5001 };
  const auth = createAuthenticator({ directory, pool, limiter, logger: createLogger('error', () => {}), metrics: createMetrics(false), userdb, cacheSize: 0 });
  return { auth, limiter };
}

describe('the per-login bound', () => {
  it('holds for guesses in flight at once: 300 parallel wrong passwords, at most the bound verified', async () => {
    const { auth } = stack();
    const before = pool.completed;
    const out = await Promise.all(
      Array.from({ length: 300 }, (_, i) => auth.authenticate('u@example.org', `guess${i}`, { service: 'imap', remoteIp: `10.0.${i >> 8}.${i & 255}` })),
    );
    const verified = pool.completed - before;
    console.log(`300 parallel guesses: ${verified} verified, ${out.filter((o) => o.result === 'refused').length} refused`);
    expect(verified).toBeLessThanOrEqual(settings.loginRejectAfter);
    expect(out.filter((o) => o.result === 'refused').length).toBe(300 - verified);
    auth.close();
  });

  it('a settled success or an uncounted attempt frees its place; reserved ones count until settled', () => {
    const l = createLimiter(settings, undefined, () => 1000);
    const held = [];
    for (let i = 0; i < 60; i++) {
      const r = l.reserve('alice@x', { remoteIp: '127.0.0.1' }, `g${i}`);
      if ('attempt' in r) held.push(r.attempt);
    }
    expect(held.length).toBe(settings.loginRejectAfter);
    held.pop()!.settle('uncounted');
    expect(l.decide('alice@x', '127.0.0.1')).toEqual({ action: 'allow' });
    for (const a of held) a.settle('failure');
    const last = l.reserve('alice@x', { remoteIp: '127.0.0.1' }, 'last');
    expect('attempt' in last).toBe(true);
    if ('attempt' in last) last.attempt.settle('failure');
    expect(l.decide('alice@x', '127.0.0.1')).toMatchObject({ action: 'reject', reason: 'login' });
  });

  it('counts every alias domain of a mailbox as the mailbox: 4 × 50 guesses, at most 50 verified', async () => {
    const { auth } = stack();
    const before = pool.completed;
    for (const domain of ['example.org', 'example.net', 'third.org', 'fourth.org']) {
      for (let i = 0; i < 50; i++) await auth.authenticate(`v@${domain}`, `guess-${domain}-${i}`, { service: 'imap', remoteIp: `10.1.${i}.1` });
    }
    expect(pool.completed - before).toBeLessThanOrEqual(settings.loginRejectAfter);
    // The right password through an alias domain is refused too, once the bound is reached.
    expect((await auth.authenticate('v@third.org', 'secret', { service: 'imap', remoteIp: '10.2.0.1' })).result).toBe('refused');
    auth.close();
  });

  it('a plain login named like a master user does not lock the master user out', async () => {
    const { auth, limiter } = stack();
    for (let i = 0; i < 300; i++) await auth.authenticate('support', `bogus${i}`, { service: 'imap', remoteIp: `10.3.${i >> 8}.${i & 255}` });
    expect(limiter.decide('support', '10.4.0.1')).toMatchObject({ action: 'reject', reason: 'login' });
    const master = await auth.authenticate('u@example.org', 'master-pw', { service: 'imap', remoteIp: '10.4.0.1', master: 'support' });
    expect(master.result).toBe('ok');
    auth.close();
  });
});

describe('a master login over SMTP AUTH', () => {
  it('is refused by the authenticator for smtp and submission, and allowed for imap', async () => {
    const { auth } = stack();
    for (const service of ['smtp', 'submission']) {
      expect((await auth.authenticate('u@example.org', 'master-pw', { service, master: 'support' })).result).toBe('fail');
    }
    expect((await auth.authenticate('u@example.org', 'master-pw', { service: 'imap', master: 'support' })).result).toBe('ok');
    auth.close();
  });

  it('is refused through the Lua door with service=smtp', async () => {
    const { auth } = stack();
    const config = parseConfigText('http_listen = 127.0.0.1:9465', 'test');
    const routes = createDovecotRoutes({ authenticator: auth, directory, config, logger: createLogger('error', () => {}), metrics: createMetrics(false) });
    const passdb = routes.get('POST /dovecot/passdb')!;
    const ask = async (service: string) => {
      const body = Buffer.from(new URLSearchParams({ user: 'u@example.org', password: 'master-pw', master: 'support', service }).toString());
      const r = await passdb({ method: 'POST', path: '/dovecot/passdb', query: new URLSearchParams(), headers: {}, body });
      return String(r.body);
    };
    expect(await ask('smtp')).not.toMatch(/result=ok|"ok"/);
    expect(await ask('imap')).toMatch(/ok/);
    auth.close();
  });
});
