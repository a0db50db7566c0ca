// What the brute-force limiter shares with every other host through PostgreSQL (the
// writing and reading: share.ts, its SQL: share-statements.ts): failures per login, and
// per login and known source, in ten-second buckets; and the addresses each login recently
// succeeded from. Pure: the caller says what time it is.
//
// Shared: the per-login bound, the one a guesser spreading over several IMAP hosts would
// otherwise multiply; and what lets the owner in while others guess (known sources, and
// the failures from them). Local only: the per-address and per-prefix counts — Dovecot's
// clients reach a host by their address (DNS round robin or a balancer hashing the
// address), so one address's attempts are mostly on one host already, and sharing a
// botnet's every address would write a row per address for little gain — and the "same
// wrong password retried" tag: it is derived from the password, and no password, hash or
// anything computed from one is written to the database. The cost: one stale device
// retrying through N hosts counts at most N times, not once.

import { createBucketCounts, type BucketCounts } from '../shared-counts/buckets.js';

/** Width of a failure bucket, in seconds: a count may outlive its window by this much. */
export const BUCKET_S = 10;

/** The bucket (its first second since the epoch) a time falls in. */
export const bucketOf = (ms: number): number => Math.floor(ms / 1000 / BUCKET_S) * BUCKET_S;

/** A shared key: the limiter's login key, and '' (per login) or a known source address. */
export const shareKey = (login: string, source: string): string => `${login}\0${source}`;
export const splitKey = (key: string): [login: string, source: string] => {
  const i = key.indexOf('\0');
  return [key.slice(0, i), key.slice(i + 1)];
};

export interface SourceRow {
  key: string;
  /** The last success, ms since the epoch. */
  seen: number;
}

/** Known sources: the newest success known per (login, address), and ours still to write. */
export interface KnownSources {
  /** A success here; false when it needs no write (written recently enough already). */
  succeeded(key: string, at: number): boolean;
  /** A success read back from the database (any host's). */
  stored(key: string, seen: number): void;
  /** The newest success known for `key`, or undefined. */
  seen(key: string): number | undefined;
  take(): SourceRow[];
  /** Rows of take() not written: pending again. */
  failed(rows: readonly SourceRow[]): void;
  pending(): number;
  prune(before: number): void;
  size(): { keys: number; bytes: number };
}

export interface SharedState {
  failures: BucketCounts;
  sources: KnownSources;
}

/** Rough bytes per known source: a Map slot and a number, besides the key's characters. */
const SOURCE_BYTES = 72;

/**
 * `refreshMs`: a success from a source known since less than this is not written again
 * (a phone polling every minute would otherwise write every minute).
 */
export function createKnownSources(maxKeys: number, refreshMs: number): KnownSources {
  const seen = new Map<string, number>();
  let pending = new Map<string, number>();
  let keyChars = 0;

  const set = (key: string, at: number): boolean => {
    const old = seen.get(key);
    if (old !== undefined && old >= at) return true;
    if (old === undefined) {
      if (seen.size >= maxKeys) return false;
      keyChars += key.length;
    }
    seen.set(key, at);
    return true;
  };

  return {
    succeeded(key, at) {
      const old = seen.get(key);
      if (old !== undefined && at - old < refreshMs && !pending.has(key)) return false;
      if (!set(key, at)) return false;
      pending.set(key, at);
      return true;
    },
    stored: (key, at) => void set(key, at),
    seen: (key) => seen.get(key),
    take() {
      const rows = [...pending].map(([key, at]) => ({ key, seen: at }));
      pending = new Map();
      return rows;
    },
    failed(rows) {
      for (const r of rows) if ((pending.get(r.key) ?? 0) < r.seen) pending.set(r.key, r.seen);
    },
    pending: () => pending.size,
    prune(before) {
      for (const [key, at] of seen) {
        if (at >= before) continue;
        seen.delete(key);
        pending.delete(key);
        keyChars -= key.length;
      }
    },
    size: () => ({ keys: seen.size, bytes: seen.size * SOURCE_BYTES + keyChars * 2 }),
  };
}

export interface SharedStateOptions {
  /** Keys held at most, each of failures and known sources. */
  maxKeys: number;
  knownSourceMs: number;
}

export function createSharedState(o: SharedStateOptions): SharedState {
  return {
    // A read of the table never lowers a count: a standby behind the primary may show an
    // older total than our own write's result did.
    failures: createBucketCounts({ stored: 'max', maxKeys: o.maxKeys }),
    sources: createKnownSources(o.maxKeys, Math.max(60_000, Math.floor(o.knownSourceMs / 100))),
  };
}
