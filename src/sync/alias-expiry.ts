// Aliases that stop answering at a time the database gives (Modoboa's admin_alias.expire_at):
// no write happens then, so no trigger fires and no catch-up would notice. The sync keeps,
// for the few addresses with such a row, each destination's end, and a timer at the next
// one takes the ended destinations out of the directory. Time is injected (tests).

import type { Directory } from '../directory/directory.js';

/** Address → its destinations in the directory's order → when each ends (ms since the epoch; Infinity: never). */
export type TimedAliases = Map<string, Map<string, number>>;

export interface Clock {
  now(): number;
  /** Calls fn after ms; cancel() stops it. */
  setTimer(fn: () => void, ms: number): { cancel(): void };
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer(fn, ms) {
    const t = setTimeout(fn, ms);
    t.unref();
    return { cancel: () => clearTimeout(t) };
  },
};

/** The longest a Node.js timer may wait; a later end is re-armed on the way. */
const maxTimerMs = 2 ** 31 - 1;

/** A row's expires_at (Date, text or epoch ms) in ms; undefined: none or unreadable. */
export function expiryOf(v: unknown): number | undefined {
  if (v === null || v === undefined || v === '') return undefined;
  const ms = v instanceof Date ? v.getTime() : typeof v === 'number' ? v : Date.parse(String(v));
  return Number.isFinite(ms) ? ms : undefined;
}

export interface AliasExpiry {
  /** After a full load: these are all the timed aliases. */
  replaceAll(timed: TimedAliases): void;
  /** After re-reading `keys` (folded): their timed entries are now these. */
  replaceKeys(keys: Iterable<string>, timed: TimedAliases): void;
  /** Addresses with a destination still to end (tests, status). */
  readonly size: number;
  stop(): void;
}

export function createAliasExpiry(directory: Directory, clock: Clock): AliasExpiry {
  let timed: TimedAliases = new Map();
  let timer: { cancel(): void } | undefined;

  const next = (): number => {
    let at = Number.POSITIVE_INFINITY;
    for (const m of timed.values()) for (const end of m.values()) if (end < at) at = end;
    return at;
  };

  const arm = (): void => {
    timer?.cancel();
    timer = undefined;
    const at = next();
    if (at === Number.POSITIVE_INFINITY) return;
    timer = clock.setTimer(fire, Math.min(Math.max(at - clock.now(), 0), maxTimerMs));
  };

  /** Takes every ended destination out; an address left with none is removed. */
  function fire(): void {
    timer = undefined;
    const now = clock.now();
    for (const [address, m] of timed) {
      let ended = false;
      for (const end of m.values()) if (end <= now) ended = true;
      if (!ended) continue;
      const left = [...m].filter(([, end]) => end > now);
      directory.setAlias(address, left.length === 0 ? undefined : left.map(([d]) => d).join(','));
      if (left.every(([, end]) => end === Number.POSITIVE_INFINITY)) timed.delete(address);
      else timed.set(address, new Map(left));
    }
    arm();
  }

  return {
    replaceAll(t) {
      timed = t;
      arm();
    },
    replaceKeys(keys, t) {
      for (const k of keys) timed.delete(k);
      for (const [k, m] of t) timed.set(k, m);
      arm();
    },
    get size() {
      return timed.size;
    },
    stop() {
      timer?.cancel();
      timer = undefined;
    },
  };
}
