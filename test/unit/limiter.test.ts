// The brute-force limiter (src/policy/limiter.ts) on a fake clock: how it delays and
// rejects, and when its windows forget. Dovecot asking the running daemon through it:
// test/interop/policy.test.ts.

import { describe, expect, it } from 'vitest';
import { createLimiter, testing, type LimiterSettings } from '../../src/policy/limiter.js';

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

  it("forgets a refused address exactly when its window ends (the Dovecot test's settings)", () => {
    let t = 5_000_000;
    const l = createLimiter({ ...base, windowMs: 8000, delayAfter: 3, rejectAfter: 3, loginRejectAfter: 6 }, undefined, () => t);
    const started = t;
    for (const guess of ['w1', 'w2', 'w3']) {
      l.report('alice@example.org', { remoteIp: '192.0.2.7' }, false, guess);
      t += 10;
    }
    expect(l.decide('alice@example.org', '192.0.2.7')).toMatchObject({ action: 'reject', reason: 'address' });
    expect(l.decide('alice@example.org', '203.0.113.8')).toEqual({ action: 'allow' });
    t = started + 7999; // all three failures still inside the window
    expect(l.decide('alice@example.org', '192.0.2.7')).toMatchObject({ action: 'reject' });
    t = started + 8001; // the first one has left it: below the bound, the address is allowed again
    expect(l.decide('alice@example.org', '192.0.2.7')).toEqual({ action: 'allow' });
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
