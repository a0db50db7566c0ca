// Password guessing against the limiter, whatever the client claims. The remote address
// comes from the client (rip= on the auth socket, Dovecot's policy request), and the
// allow list holds the webmail on localhost: guesses per login are bounded all the same.
// Failures from many addresses must not lock the owner out: an address where the login
// succeeded recently keeps getting in, and is bounded by its own failures only. Memory is
// bounded in bytes, logins of 16 KB included.

import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLimiter, type LimiterSettings } from '../../src/policy/limiter.js';
import { startDaemon, type Daemon } from '../helpers/daemon.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { smtpAuth } from '../helpers/logins.js';

const base: LimiterSettings = {
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

describe('limiter', () => {
  it('bounds guesses per login from an allow-listed address', () => {
    const l = createLimiter(base, undefined, () => 1000);
    let allowed = 0;
    for (let i = 0; i < 2000; i++) {
      if (l.check('alice@x', { remoteIp: '127.0.0.1' }) !== undefined) continue;
      allowed++;
      l.report('alice@x', { remoteIp: '127.0.0.1' }, false, `guess${i}`);
    }
    expect(allowed).toBe(base.loginRejectAfter);
    // Other logins through the same webmail are not affected.
    expect(l.decide('bob@x', '127.0.0.1')).toEqual({ action: 'allow' });
  });

  it('bounds guesses per login whatever address each guess claims', () => {
    const l = createLimiter(base, undefined, () => 1000);
    let allowed = 0;
    for (let i = 0; i < 2000; i++) {
      const rip = `10.${(i >> 8) & 255}.${i & 255}.1`;
      if (l.check('alice@x', { remoteIp: rip }) !== undefined) continue;
      allowed++;
      l.report('alice@x', { remoteIp: rip }, false, `guess${i}`);
    }
    expect(allowed).toBe(base.loginRejectAfter);
  });

  it('failures from many addresses do not lock the owner out of an address where the login succeeded', () => {
    let t = 1000;
    const l = createLimiter(base, undefined, () => t);
    l.report('alice@x', { remoteIp: '203.0.113.5' }, true, 'right');
    l.report('alice@x', { remoteIp: '127.0.0.1' }, true, 'right'); // via the webmail
    t += 3_600_000;
    for (let i = 0; i < 500; i++) l.report('alice@x', { remoteIp: `198.18.${i >> 8}.${i & 255}` }, false, `g${i}`);
    expect(l.decide('alice@x', '203.0.113.5')).toEqual({ action: 'allow' });
    expect(l.decide('alice@x', '127.0.0.1')).toEqual({ action: 'allow' });
    expect(l.decide('alice@x', '198.19.0.1')).toMatchObject({ action: 'reject', reason: 'login' });
    // Guessing from a known address is bounded by that address's own failures.
    let allowed = 0;
    for (let i = 0; i < 200; i++) {
      if (l.check('alice@x', { remoteIp: '127.0.0.1' }) !== undefined) continue;
      allowed++;
      l.report('alice@x', { remoteIp: '127.0.0.1' }, false, `w${i}`);
    }
    expect(allowed).toBe(base.rejectAfter);
    expect(l.decide('alice@x', '203.0.113.5')).toEqual({ action: 'allow' });
    // Known for a while, not for ever.
    t += base.knownSourceMs + 1;
    for (let i = 0; i < 60; i++) l.report('alice@x', { remoteIp: `198.18.9.${i}` }, false, `h${i}`);
    expect(l.decide('alice@x', '203.0.113.5')).toMatchObject({ action: 'reject' });
  });

  it('a flood of fresh junk logins does not push a guessed login out of memory', () => {
    const l = createLimiter({ ...base, maxEntries: 600 }, undefined, () => 1000);
    for (let i = 0; i < base.loginRejectAfter; i++) l.report('alice@x', { remoteIp: '127.0.0.1' }, false, `g${i}`);
    for (let i = 0; i < 5000; i++) l.report(`junk${i}@x`, { remoteIp: '127.0.0.1' }, false, 'p');
    expect(l.decide('alice@x', '127.0.0.1')).toMatchObject({ action: 'reject', reason: 'login' });
  });

  it('holds 20,000 failures with 16 KB logins in bounded bytes', () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const l = createLimiter({ ...base, maxBytes: 8 * 1024 * 1024 }, undefined, () => 1000);
    gc();
    const before = process.memoryUsage().heapUsed;
    const pad = 'x'.repeat(16 * 1024);
    for (let i = 0; i < 20_000; i++) {
      // A fresh string per login, as a parsed request gives.
      l.report(`${i}${pad}`.slice(0, 16 * 1024) + '@x', { remoteIp: `10.1.${i >> 8}.${i & 255}` }, false, `g${i}`);
    }
    gc();
    const grown = process.memoryUsage().heapUsed - before;
    expect(grown).toBeLessThan(32 * 1024 * 1024);
    expect(l.bytes()).toBeLessThanOrEqual(8 * 1024 * 1024);
  });
});

describe('through the auth socket', () => {
  let db: TestDatabase;
  let daemon: Daemon;
  beforeAll(async () => {
    db = await createTestDatabase();
    await db.sql.query(`INSERT INTO mailmapd.domains (name) VALUES ('example.org');
      INSERT INTO mailmapd.mailboxes (address, password) VALUES ('alice@example.org', '{PLAIN}right'), ('bob@example.org', '{PLAIN}right')`);
    daemon = await startDaemon({
      databaseUrl: db.url,
      config: { auth_failure_delay: '0', policy_login_reject_after: '10', policy_reject_after: '5', policy_delay_after: '5', policy_window: '10m' },
    });
  });
  afterAll(async () => {
    await daemon?.stop();
    await db?.drop();
  });

  it('guessing from a claimed allow-listed address is bounded: the right password is refused after the bound', async () => {
    const port = daemon.ports.auth;
    for (let i = 0; i < 30; i++) expect(await smtpAuth(port, 'bob@example.org', `guess${i}`, '127.0.0.1')).toBe('FAIL');
    expect(await smtpAuth(port, 'bob@example.org', 'right', '127.0.0.1')).toBe('FAIL');
    for (let i = 0; i < 5; i++) expect(await smtpAuth(port, 'bob@example.org', 'right', `10.9.0.${i}`)).toBe('FAIL');
  });

  it('the owner still gets in from where the login succeeded before', async () => {
    const port = daemon.ports.auth;
    expect(await smtpAuth(port, 'alice@example.org', 'right', '203.0.113.5')).toBe('OK');
    for (let i = 0; i < 40; i++) expect(await smtpAuth(port, 'alice@example.org', `guess${i}`, `198.18.0.${i}`)).toBe('FAIL');
    expect(await smtpAuth(port, 'alice@example.org', 'right', '198.18.0.200')).toBe('FAIL');
    expect(await smtpAuth(port, 'alice@example.org', 'right', '203.0.113.5')).toBe('OK');
  });
});
