// Failed logins in the log (issue 29, item 7a): a client failing in a loop writes a few lines
// per window and a count, per remote address, and made-up addresses cannot grow the tracking
// without bound. The clock and the timers are the test's.

import { afterEach, beforeEach, expect, it, vi } from 'vitest';
import { createLogger } from '../../src/log.js';
import { limitFailedLogins } from '../../src/log-limit.js';

let now = 0;
let lines: string[];
beforeEach(() => {
  vi.useFakeTimers();
  now = 0;
  lines = [];
});
afterEach(() => vi.useRealTimers());

const make = (maxKeys?: number) =>
  limitFailedLogins(
    createLogger('info', (l) => lines.push(l)),
    { windowMs: 10_000, burst: 5, now: () => now, ...(maxKeys ? { maxKeys } : {}) },
  );

it('1,000 failures from one address in a window write 5 lines, then one line with the count and the address', () => {
  const failed = make();
  for (let i = 0; i < 1000; i++) failed('login failed', { user: `u${i}@example.org`, rip: '192.0.2.7', reason: 'password' });
  expect(lines).toHaveLength(5);
  now = 10_000;
  vi.advanceTimersByTime(10_000);
  expect(lines).toHaveLength(6);
  expect(lines[5]).toMatch(/msg="login failed … and 995 more in the last 10 s" rip=192.0.2.7 repeated=995/);
  // The next window writes again.
  failed('login failed', { user: 'x@example.org', rip: '192.0.2.7' });
  expect(lines).toHaveLength(7);
});

it('each address gets its own lines: one flooding client does not hide another address failing', () => {
  const failed = make();
  for (let i = 0; i < 100; i++) failed('login failed', { rip: '192.0.2.7' });
  failed('login failed', { user: 'bob@example.org', rip: '198.51.100.9' });
  expect(lines.filter((l) => l.includes('198.51.100.9'))).toHaveLength(1);
});

it('past the cap on addresses, made-up addresses share one bounded window', () => {
  const failed = make(50);
  for (let i = 0; i < 10_000; i++) failed('login failed', { rip: `10.0.${i >> 8}.${i & 255}` });
  // 50 addresses with their own window, then every other address counted under the message.
  expect(lines.length).toBe(50 + 5);
  now = 10_000;
  vi.advanceTimersByTime(10_000);
  expect(lines.at(-1)).toMatch(/and 9945 more in the last 10 s" repeated=9945/);
});
