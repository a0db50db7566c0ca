// Time for the connection clocks (idle, request deadline, eviction order): the real one in
// the daemon, a fake one in tests, which then advance time instead of waiting for it.

import { performance } from 'node:perf_hooks';

export interface Clock {
  /** Milliseconds, monotonic. */
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(timer: unknown): void;
}

export const systemClock: Clock = {
  now: () => performance.now(),
  setTimeout(fn, ms) {
    // unref: a connection's clock never keeps the process alive.
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  },
  clearTimeout: (t) => clearTimeout(t as NodeJS.Timeout),
};
