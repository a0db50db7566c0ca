// What wakes the sync's loop between catch-ups: the doorbell (a NOTIFY from the primary, on
// the reader's own connection or on a standby's link to the primary), a kick (someone waits
// for the next catch-up to be applied: tests, benchmarks), the poll tick, or stop. The
// doorbell is only a nudge: a ring that never comes costs at most a poll interval, never a
// change, because the catch-up reads the change log, not the NOTIFY.
// No SQL here; the loop does the LISTEN (sync.ts, primary-link.ts) and passes ring() on.

import type { EventEmitter } from 'node:events';

/** Why a wait ended; 'stop' after close(). */
export type Wake = 'kick' | 'ring' | 'tick' | 'stop';

/** A timer (tests inject one that moves only when told). */
export type SetTimer = (fn: () => void, ms: number) => { cancel(): void };

/** The catch-up's kickers, taken when it starts: settled when it is applied, handed back when it failed. */
export interface Round {
  applied(): void;
  failed(): void;
}

export interface Doorbell {
  /** A NOTIFY arrived (or the primary's connection came up): catch up now. */
  ring(): void;
  /** Asks for a catch-up now; resolves when one that started after this call is applied. */
  kick(): Promise<void>;
  /** A catch-up starts: what rang or kicked so far is answered by it. */
  startRound(): Round;
  /** Resolves at the next ring, kick, poll tick or close(); rejects when `conn` errors or ends first. */
  wait(conn: Pick<EventEmitter, 'once' | 'removeListener'>, pollIntervalMs: number): Promise<Wake>;
  /** No more waiting: a wait in progress, and every later one, ends with 'stop'. */
  close(): void;
  /** Rejects every kick still waiting (after the loop has ended). */
  rejectKicks(err: Error): void;
}

// Ref'd on purpose: while the database is away this timer may be all that keeps the daemon
// alive between retries.
const systemTimer: SetTimer = (fn, ms) => {
  const t = setTimeout(fn, ms);
  return { cancel: () => clearTimeout(t) };
};

export function createDoorbell(setTimer: SetTimer = systemTimer): Doorbell {
  let rang = false;
  let kicked = false;
  let closed = false;
  let waiters: Array<{ resolve: () => void; reject: (e: Error) => void }> = [];
  let wake: (() => void) | undefined;
  const why = (): Wake => (closed ? 'stop' : kicked ? 'kick' : rang ? 'ring' : 'tick');

  return {
    ring() {
      rang = true;
      wake?.();
    },
    kick() {
      return new Promise<void>((resolve, reject) => {
        waiters.push({ resolve, reject });
        kicked = true;
        wake?.();
      });
    },
    startRound() {
      const pending = waiters;
      waiters = [];
      kicked = false;
      rang = false;
      return {
        applied: () => {
          for (const w of pending) w.resolve();
        },
        failed: () => {
          waiters.push(...pending);
        },
      };
    },
    wait(conn, pollIntervalMs) {
      return new Promise<Wake>((resolve, reject) => {
        if (kicked || rang || closed) {
          resolve(why());
          return;
        }
        const timer = setTimer(done, pollIntervalMs);
        function detach() {
          timer.cancel();
          conn.removeListener('error', fail);
          conn.removeListener('end', ended);
          wake = undefined;
        }
        function done() {
          detach();
          resolve(why());
        }
        function fail(err: Error) {
          detach();
          reject(err);
        }
        function ended() {
          fail(new Error('connection ended'));
        }
        conn.once('error', fail);
        conn.once('end', ended);
        wake = done;
      });
    },
    close() {
      closed = true;
      wake?.();
    },
    rejectKicks(err) {
      for (const w of waiters) w.reject(err);
      waiters = [];
    },
  };
}
