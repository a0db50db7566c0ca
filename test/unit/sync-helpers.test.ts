// The small parts the sync shares with the snapshot keeper and its gate: the backoff
// between tries, the deferred first load, and the "in sync" rule /readyz reports.

import { describe, expect, it } from 'vitest';
import { createBackoff } from '../../src/backoff.js';
import { deferred } from '../../src/deferred.js';
import { initialStatus, isInSync } from '../../src/sync/status.js';

describe('backoff', () => {
  it('doubles from 100 ms up to the maximum, with up to 30 % added at random', () => {
    const none = createBackoff(1000, () => 0);
    expect([none.next(), none.next(), none.next(), none.next(), none.next(), none.next()]).toEqual([100, 200, 400, 800, 1000, 1000]);
    const most = createBackoff(1000, () => 0.999);
    expect([most.next(), most.next(), most.next()]).toEqual([129, 259, 519]);
  });

  it('says the delay without its random part, and starts over after reset()', () => {
    const b = createBackoff(10_000, () => 0.5);
    expect(b.delay).toBe(100);
    b.next();
    b.next();
    expect(b.delay).toBe(400);
    b.reset();
    expect(b.delay).toBe(100);
    expect(b.next()).toBe(115);
  });
});

describe('deferred', () => {
  it('settles from outside, once', async () => {
    const d = deferred<number>();
    d.resolve(1);
    d.resolve(2);
    expect(await d.promise).toBe(1);
  });

  it('a rejection nobody waits for is not an unhandled one', async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (e: unknown) => unhandled.push(e);
    process.on('unhandledRejection', onUnhandled);
    try {
      deferred().reject(new Error('stopped before the first load'));
      await new Promise((r) => setImmediate(r));
      await new Promise((r) => setImmediate(r));
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });
});

describe('in sync', () => {
  const now = 1_000_000;
  const good = { ...initialStatus(), loaded: true, connected: true, lastSuccess: now - 1000 };
  it('is loaded, connected, recently successful and not lagging past the bound', () => {
    expect(isInSync(good, now, 1000, 30_000)).toBe(true);
    expect(isInSync(initialStatus(), now, 1000, 30_000)).toBe(false);
    expect(isInSync({ ...good, loaded: false }, now, 1000, 30_000)).toBe(false);
    expect(isInSync({ ...good, connected: false }, now, 1000, 30_000)).toBe(false);
  });

  it('recent means within three poll intervals, and never less than 5 s', () => {
    expect(isInSync({ ...good, lastSuccess: now - 4999 }, now, 1000, 30_000)).toBe(true);
    expect(isInSync({ ...good, lastSuccess: now - 5000 }, now, 1000, 30_000)).toBe(false);
    expect(isInSync({ ...good, lastSuccess: now - 14_999 }, now, 5000, 30_000)).toBe(true);
    expect(isInSync({ ...good, lastSuccess: now - 15_000 }, now, 5000, 30_000)).toBe(false);
  });

  it('a standby lagging past replica_max_lag is not in sync', () => {
    expect(isInSync({ ...good, lagSeconds: 30 }, now, 1000, 30_000)).toBe(true);
    expect(isInSync({ ...good, lagSeconds: 30.001 }, now, 1000, 30_000)).toBe(false);
  });
});
