// The limiter's counts shared by every host (src/policy/shared-state.ts and the buckets of
// src/shared-counts/buckets.ts), on a fake clock and with a map standing in for the table:
// what two daemons write and read back adds up to one bound, a daemon never counts its own
// failures twice, and nothing derived from a password is handed to the write-back. The
// same over real PostgreSQL, a primary and a standby: test/integration/shared-counts.test.ts.

import { describe, expect, it } from 'vitest';
import { createLimiter, type LimiterSettings } from '../../src/policy/limiter.js';
import { createSharedState, splitKey, type SharedState } from '../../src/policy/shared-state.js';
import { createBucketCounts } from '../../src/shared-counts/buckets.js';

const settings: LimiterSettings = {
  windowMs: 600_000,
  delayAfter: 5,
  rejectAfter: 20,
  prefixRejectAfter: 100,
  loginRejectAfter: 10,
  maxDelayMs: 5000,
  allowList: [],
  maxEntries: 6000,
  knownSourceMs: 30 * 86_400_000,
  maxBytes: 64 * 1024 * 1024,
};

/** The login_failures and login_sources tables, as a map: what every host's write-back adds. */
function fakeTable() {
  const failures = new Map<string, number>();
  const sources = new Map<string, number>();
  return {
    failures,
    /** One flush of a daemon's write-back, then its read-back of everything. */
    sync(s: SharedState) {
      const rows = s.failures.take();
      const totals = rows.map((r) => {
        const k = `${r.key}|${r.bucket}`;
        failures.set(k, (failures.get(k) ?? 0) + r.count);
        return { ...r, count: failures.get(k)! };
      });
      s.failures.written(rows, totals);
      for (const r of s.sources.take()) sources.set(r.key, Math.max(sources.get(r.key) ?? 0, r.seen));
      for (const [k, n] of failures) {
        const i = k.lastIndexOf('|');
        s.failures.stored(k.slice(0, i), Number(k.slice(i + 1)), n);
      }
      for (const [k, seen] of sources) s.sources.stored(k, seen);
    },
  };
}

describe('limiter counts shared by every host', () => {
  it('guesses split over two daemons meet one per-login bound; each counts its own once', () => {
    let t = 1_700_000_000_000;
    const db = fakeTable();
    const sa = createSharedState({ maxKeys: 1000, knownSourceMs: settings.knownSourceMs });
    const sb = createSharedState({ maxKeys: 1000, knownSourceMs: settings.knownSourceMs });
    const a = createLimiter(settings, undefined, () => t, undefined, sa);
    const b = createLimiter(settings, undefined, () => t, undefined, sb);
    // Five guesses on each, from different addresses: none reaches 10 alone.
    for (let i = 0; i < 5; i++) {
      a.report('victim@x', { remoteIp: `192.0.2.${i}` }, false, `a${i}`);
      b.report('victim@x', { remoteIp: `198.51.100.${i}` }, false, `b${i}`);
      t += 1000;
    }
    expect(a.decide('victim@x', '203.0.113.1')).toEqual({ action: 'allow' });
    db.sync(sa);
    db.sync(sb);
    db.sync(sa);
    // Together they are at the bound, on both daemons, whichever wrote first.
    expect(a.decide('victim@x', '203.0.113.1')).toMatchObject({ action: 'reject', reason: 'login' });
    expect(b.decide('victim@x', '203.0.113.1')).toMatchObject({ action: 'reject', reason: 'login' });

    // One daemon alone with its own five, written and read back again and again: still five, never ten.
    const solo = createSharedState({ maxKeys: 1000, knownSourceMs: settings.knownSourceMs });
    const s = createLimiter(settings, undefined, () => t, undefined, solo);
    const own = fakeTable();
    for (let i = 0; i < 9; i++) s.report('other@x', { remoteIp: `192.0.2.${i}` }, false, `g${i}`);
    own.sync(solo);
    own.sync(solo);
    expect(s.decide('other@x', '203.0.113.1')).toEqual({ action: 'allow' });
    s.report('other@x', { remoteIp: '192.0.2.99' }, false, 'g99');
    expect(s.decide('other@x', '203.0.113.1')).toMatchObject({ action: 'reject', reason: 'login' });

    // A restart: nothing in memory, the table read back: the count holds.
    const restarted = createSharedState({ maxKeys: 1000, knownSourceMs: settings.knownSourceMs });
    const r = createLimiter(settings, undefined, () => t, undefined, restarted);
    db.sync(restarted);
    expect(r.decide('victim@x', '203.0.113.1')).toMatchObject({ action: 'reject', reason: 'login' });
    // And the window forgets shared counts as it forgets local ones.
    t += settings.windowMs + 20_000;
    expect(r.decide('victim@x', '203.0.113.1')).toEqual({ action: 'allow' });
  });

  it('a source known on one daemon lets the owner in on the other; the password tag is never shared', () => {
    let t = 1_700_000_000_000;
    const db = fakeTable();
    const sa = createSharedState({ maxKeys: 1000, knownSourceMs: settings.knownSourceMs });
    const sb = createSharedState({ maxKeys: 1000, knownSourceMs: settings.knownSourceMs });
    const a = createLimiter(settings, undefined, () => t, undefined, sa);
    const b = createLimiter(settings, undefined, () => t, undefined, sb);
    a.report('owner@x', { remoteIp: '192.0.2.50' }, true, '');
    for (let i = 0; i < 12; i++) a.report('owner@x', { remoteIp: `203.0.113.${i}` }, false, `secret-tag-${i}`);
    t += 1000;
    db.sync(sa);
    db.sync(sb);
    // On b the owner's address is known (learnt from a): the guesses elsewhere do not lock it out.
    expect(b.decide('owner@x', '203.0.113.200')).toMatchObject({ action: 'reject', reason: 'login' });
    expect(b.decide('owner@x', '192.0.2.50')).toEqual({ action: 'allow' });
    // What the table holds: logins and addresses, never a password tag.
    for (const k of db.failures.keys()) expect(k).not.toContain('secret-tag');
    expect([...db.failures.keys()].map((k) => splitKey(k.slice(0, k.lastIndexOf('|'))))).toEqual([['l:owner@x', '']]);
  });

  it('buckets: the other hosts share is what the table holds less what this daemon wrote; a failed write is retried, not lost', () => {
    const c = createBucketCounts({ stored: 'max' });
    c.add('k', 10, 3);
    const rows = c.take();
    c.failed(rows, true); // the primary away: pending again
    expect(c.pending()).toBe(1);
    const again = c.take();
    c.written(again, [{ key: 'k', bucket: 10, count: 7 }]); // 4 from other hosts meanwhile
    expect(c.othersByBucket('k', 0)).toEqual([[10, 4]]);
    expect(c.sum('k', 10, 1)).toBe(7);
    c.stored('k', 10, 5); // a standby behind: never takes back what the primary said
    expect(c.sum('k', 10, 1)).toBe(7);
    const bounded = createBucketCounts({ stored: 'max', maxKeys: 1 });
    expect(bounded.add('a', 1, 1)).toBe(true);
    expect(bounded.add('b', 1, 1)).toBe(false);
  });
});

describe('buckets to write', () => {
  it('take() hands each pending bucket once; reset and pruned ones not at all', () => {
    const c = createBucketCounts({ stored: 'replace' });
    c.add('a', 1, 1);
    c.add('a', 1, 2);
    c.add('b', 1, 1);
    c.add('c', 0, 5);
    c.reset('b');
    c.prune(1);
    expect(c.take()).toEqual([{ key: 'a', bucket: 1, count: 3 }]);
    expect(c.take()).toEqual([]);
    expect(c.pending()).toBe(0);
  });
});
