// What wakes the sync's loop (src/sync/doorbell.ts): a ring, a kick, the poll tick, stop, or
// the reader's connection failing. Time is a fake clock: the tick is advanced to, not waited for.

import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { createDoorbell, type SetTimer } from '../../src/sync/doorbell.js';
import { fakeClock } from '../helpers/clock.js';

function setup() {
  const { clock, advance } = fakeClock();
  const setTimer: SetTimer = (fn, ms) => {
    const id = clock.setTimeout(fn, ms);
    return { cancel: () => clock.clearTimeout(id) };
  };
  return { bell: createDoorbell(setTimer), conn: new EventEmitter(), advance };
}

/** Whether a promise has settled by now, and how. */
async function state<T>(p: Promise<T>): Promise<'pending' | { value: T } | { error: Error }> {
  const mark = Symbol();
  const r = await Promise.race([
    p.then(
      (value) => ({ value }),
      (error: Error) => ({ error }),
    ),
    new Promise((res) => setImmediate(() => res(mark))),
  ]);
  return r === mark ? 'pending' : (r as { value: T } | { error: Error });
}

describe('doorbell', () => {
  it('a wait ends with the poll tick, not before', async () => {
    const { bell, conn, advance } = setup();
    const w = bell.wait(conn, 1000);
    advance(999);
    expect(await state(w)).toBe('pending');
    advance(1);
    expect(await state(w)).toEqual({ value: 'tick' });
  });

  it('a ring ends the wait at once; one that came before the wait ends it before it starts', async () => {
    const { bell, conn } = setup();
    const w = bell.wait(conn, 1000);
    bell.ring();
    expect(await state(w)).toEqual({ value: 'ring' });
    // Not taken by a catch-up yet: still rung.
    expect(await state(bell.wait(conn, 1000))).toEqual({ value: 'ring' });
    bell.startRound();
    expect(await state(bell.wait(conn, 1000))).toBe('pending');
  });

  it('a kick wins over a ring, and resolves only once the catch-up that took it is applied', async () => {
    const { bell, conn } = setup();
    const w = bell.wait(conn, 1000);
    bell.ring();
    const kicked = bell.kick();
    expect(await state(w)).toEqual({ value: 'ring' });
    expect(await state(bell.wait(conn, 1000))).toEqual({ value: 'kick' });
    const round = bell.startRound();
    // A kick made during the catch-up waits for the next one.
    const later = bell.kick();
    expect(await state(kicked)).toBe('pending');
    round.applied();
    expect(await state(kicked)).toEqual({ value: undefined });
    expect(await state(later)).toBe('pending');
  });

  it('a failed catch-up hands its kicks to the next one', async () => {
    const { bell } = setup();
    const kicked = bell.kick();
    bell.startRound().failed();
    expect(await state(kicked)).toBe('pending');
    bell.startRound().applied();
    expect(await state(kicked)).toEqual({ value: undefined });
  });

  it('the connection failing rejects the wait, and its listeners and timer are gone', async () => {
    const { bell, conn, advance } = setup();
    const w = bell.wait(conn, 1000);
    conn.emit('end');
    expect(await state(w)).toEqual({ error: new Error('connection ended') });
    expect(conn.listenerCount('error') + conn.listenerCount('end')).toBe(0);
    const w2 = bell.wait(conn, 1000);
    conn.emit('error', new Error('reset'));
    expect(await state(w2)).toEqual({ error: new Error('reset') });
    // The failed waits' ticks do not fire into a later wait.
    const w3 = bell.wait(conn, 5000);
    advance(1000);
    expect(await state(w3)).toBe('pending');
    bell.ring();
    expect(await state(w3)).toEqual({ value: 'ring' });
  });

  it('close ends a wait and every later one with stop; the kicks left are rejected', async () => {
    const { bell, conn } = setup();
    const kicked = bell.kick();
    bell.startRound();
    const w = bell.wait(conn, 1000);
    bell.close();
    expect(await state(w)).toEqual({ value: 'stop' });
    expect(await state(bell.wait(conn, 1000))).toEqual({ value: 'stop' });
    const left = bell.kick();
    bell.rejectKicks(new Error('sync stopped'));
    expect(await state(left)).toEqual({ error: new Error('sync stopped') });
    // A kick its catch-up took is that catch-up's to settle.
    expect(await state(kicked)).toBe('pending');
  });
});
