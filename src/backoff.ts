// How long to wait before trying the database again: 100 ms, doubling up to a maximum, each
// wait with up to 30 % more at random so that many daemons restarted together do not all
// knock at once. Every retry against the database uses it: the sync's reconnects, the
// snapshot keeper's identity check, the write-back, the policy follower and the DKIM keeper.

export interface Backoff {
  /** The next wait without its random part, in ms: what a log line says. */
  readonly delay: number;
  /** The wait to sleep now (the delay plus its random part); the delay then doubles. */
  next(): number;
  /** After a success: the next failure starts from 100 ms again. */
  reset(): void;
}

const FIRST_MS = 100;
const JITTER = 0.3;

export function createBackoff(maxMs: number, random: () => number = Math.random, firstMs = FIRST_MS): Backoff {
  let delay = Math.min(firstMs, maxMs);
  return {
    get delay() {
      return delay;
    },
    next() {
      const wait = delay + Math.floor(random() * delay * JITTER);
      delay = Math.min(delay * 2, maxMs);
      return wait;
    },
    reset() {
      delay = Math.min(firstMs, maxMs);
    },
  };
}
