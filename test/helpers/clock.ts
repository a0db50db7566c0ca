// A clock for the connection layer that moves only when a test tells it to: time is
// advanced, never waited for, so clocks are asserted to the millisecond on a busy machine.

import type { Clock } from '../../src/net/clock.js';

export interface FakeClock {
  clock: Clock;
  /** Moves time on by `ms`, running every timer that falls due, in order. */
  advance(ms: number): void;
}

export function fakeClock(): FakeClock {
  let t = 1000;
  let timers: { at: number; fn: () => void; id: number }[] = [];
  let next = 1;
  const clock: Clock = {
    now: () => t,
    setTimeout(fn, ms) {
      const id = next++;
      timers.push({ at: t + ms, fn, id });
      return id;
    },
    clearTimeout(id) {
      timers = timers.filter((x) => x.id !== id);
    },
  };
  const advance = (ms: number) => {
    const until = t + ms;
    for (;;) {
      const due = timers.filter((x) => x.at <= until).sort((a, b) => a.at - b.at)[0];
      if (due === undefined) break;
      timers = timers.filter((x) => x !== due);
      t = due.at;
      due.fn();
    }
    t = until;
  };
  return { clock, advance };
}

/** Lets the event loop deliver what is in flight (a read, a close) without moving the fake clock. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
  await new Promise((r) => setTimeout(r, 20));
}
