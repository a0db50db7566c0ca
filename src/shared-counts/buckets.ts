// Counts shared by every host through PostgreSQL, per key and per time bucket: the policy
// service's recipients sent (per address and minute) and the brute-force limiter's failures
// (per login and ten seconds). Pure: the caller says which bucket it is.
//
// Each bucket's count has four parts: what the database holds (every host's flushed
// counts, ours included, as last read), what this daemon counted and has not yet handed to
// the write-back, what is on its way there, and how much of the first part this daemon put
// there itself (`mine`, learnt from its writes' results). The sum of the first three is the
// count over every host; the first less `mine` is the other hosts' share. A write's result
// or a read of the table replaces the first part, so nothing is counted twice for longer
// than one round trip, and a daemon whose database is away keeps counting on its own and
// hands everything over once it is back. After a restart `mine` starts at zero: what this
// daemon wrote before it stopped is read back as any other host's, which is what it is now.

interface Bucket {
  stored: number;
  pending: number;
  inflight: number;
  mine: number;
}

/** One key's bucket and the count to add there (or, read back, its total). */
export interface CountRow {
  key: string;
  bucket: number;
  count: number;
}

export interface BucketCountsOptions {
  /**
   * How a read of the table replaces what is known: 'replace' (a count may be lowered: a
   * reset zeroes send counts), or 'max' (counts only grow; an older read — a standby
   * behind the primary — never takes back what a newer one said).
   */
  stored: 'replace' | 'max';
  /** Keys held at most: a key past it is not counted (`add` and `stored` say false). */
  maxKeys?: number;
}

export interface BucketCounts {
  /** Counted for `key` (every host) in the `buckets` buckets up to and including `now`. */
  sum(key: string, now: number, buckets: number): number;
  /** The other hosts' share of sum(): what the database holds that this daemon did not write. */
  others(key: string, now: number, buckets: number): number;
  /** Each bucket of `key` from `from` on with the other hosts' count there, oldest first. */
  othersByBucket(key: string, from: number): [bucket: number, count: number][];
  /** Counts `n` now (local, to be written); false when the key could not be held. */
  add(key: string, bucket: number, n: number): boolean;
  /** What the database holds for that bucket (all hosts' written counts). */
  stored(key: string, bucket: number, count: number): void;
  /** Hands what is pending to a write; finish it with written() or failed(). */
  take(): CountRow[];
  /** The rows of take() are in the database; `totals` are the buckets' counts there now. */
  written(rows: readonly CountRow[], totals: readonly CountRow[]): void;
  /**
   * The rows of take() were not written: pending again when `retry`, else (the statement
   * itself failed, and would again) kept as counted here only.
   */
  failed(rows: readonly CountRow[], retry: boolean): void;
  /** Forgets a key's counts (`send-usage reset`). */
  reset(key: string): void;
  /** Drops buckets before `bucket`; keys left without any. */
  prune(bucket: number): void;
  /** Keys with counts (for `send-usage` and tests). */
  keys(): IterableIterator<string>;
  /** Buckets with pending or in-flight counts. */
  pending(): number;
  /** Keys and buckets held, and their rough size in bytes (for the metrics). */
  size(): { keys: number; buckets: number; bytes: number };
}

/** Rough bytes: a Map slot and the key's string, a bucket's slot and its four numbers. */
const KEY_BYTES = 80;
const BUCKET_BYTES = 80;

// Long because it is one closure over the table; each method is a few lines.
export function createBucketCounts(opts: BucketCountsOptions): BucketCounts {
  const byKey = new Map<string, Map<number, Bucket>>();
  /** The buckets with pending counts, so that take() need not scan every key (a flush is every quarter second). */
  let dirty: [key: string, at: number, b: Bucket][] = [];
  let pendingRows = 0;
  let buckets = 0;
  let keyChars = 0;
  const maxKeys = opts.maxKeys ?? Infinity;

  const bucket = (key: string, at: number): Bucket | undefined => {
    let m = byKey.get(key);
    if (m === undefined) {
      if (byKey.size >= maxKeys) return undefined;
      byKey.set(key, (m = new Map()));
      keyChars += key.length;
    }
    let b = m.get(at);
    if (b === undefined) {
      m.set(at, (b = { stored: 0, pending: 0, inflight: 0, mine: 0 }));
      buckets++;
    }
    return b;
  };
  const dropKey = (key: string, m: Map<number, Bucket>) => {
    for (const b of m.values()) if (b.pending > 0) pendingRows--;
    buckets -= m.size;
    keyChars -= key.length;
    byKey.delete(key);
  };
  const window = (key: string, now: number, n: number, part: (b: Bucket) => number): number => {
    const m = byKey.get(key);
    if (m === undefined) return 0;
    const from = now - n;
    let sum = 0;
    for (const [at, b] of m) if (at > from && at <= now) sum += part(b);
    return sum;
  };
  const othersOf = (b: Bucket) => Math.max(0, b.stored - b.mine);

  return {
    sum: (key, now, n) => window(key, now, n, (b) => b.stored + b.pending + b.inflight),
    others: (key, now, n) => window(key, now, n, othersOf),
    othersByBucket(key, from) {
      const out: [number, number][] = [];
      for (const [at, b] of byKey.get(key) ?? []) if (at >= from && othersOf(b) > 0) out.push([at, othersOf(b)]);
      return out.sort((a, b) => a[0] - b[0]);
    },
    add(key, at, n) {
      if (n <= 0) return true;
      const b = bucket(key, at);
      if (b === undefined) return false;
      if (b.pending === 0) {
        pendingRows++;
        dirty.push([key, at, b]);
      }
      b.pending += n;
      return true;
    },
    stored(key, at, count) {
      const b = bucket(key, at);
      if (b !== undefined) b.stored = opts.stored === 'max' ? Math.max(b.stored, count) : count;
    },
    take() {
      const out: CountRow[] = [];
      for (const [key, at, b] of dirty) {
        // Reset or pruned since (no longer held), or taken already: nothing to write.
        if (b.pending === 0 || byKey.get(key)?.get(at) !== b) continue;
        out.push({ key, bucket: at, count: b.pending });
        b.inflight += b.pending;
        b.pending = 0;
      }
      dirty = [];
      pendingRows = 0;
      return out;
    },
    written(rows, totals) {
      for (const r of rows) {
        const b = byKey.get(r.key)?.get(r.bucket);
        if (b === undefined) continue;
        b.inflight = Math.max(0, b.inflight - r.count);
        b.mine += r.count;
      }
      for (const t of totals) {
        const b = byKey.get(t.key)?.get(t.bucket);
        if (b !== undefined) b.stored = opts.stored === 'max' ? Math.max(b.stored, t.count) : t.count;
      }
    },
    failed(rows, retry) {
      for (const r of rows) {
        const b = byKey.get(r.key)?.get(r.bucket);
        if (b === undefined) continue; // reset or pruned meanwhile
        const back = Math.min(b.inflight, r.count);
        b.inflight -= back;
        if (!retry) {
          // Kept as if written by us: counted here, never taken for another host's.
          b.stored += back;
          b.mine += back;
          continue;
        }
        if (b.pending === 0 && back > 0) {
          pendingRows++;
          dirty.push([r.key, r.bucket, b]);
        }
        b.pending += back;
      }
    },
    reset(key) {
      const m = byKey.get(key);
      if (m !== undefined) dropKey(key, m);
    },
    prune(before) {
      for (const [key, m] of byKey) {
        for (const [at, b] of m) {
          if (at >= before) continue;
          if (b.pending > 0) pendingRows--;
          m.delete(at);
          buckets--;
        }
        if (m.size === 0) dropKey(key, m);
      }
      // What was pruned is no longer to be written (a daemon that cannot write never takes).
      dirty = dirty.filter(([key, at, b]) => b.pending > 0 && byKey.get(key)?.get(at) === b);
    },
    keys: () => byKey.keys(),
    pending: () => pendingRows,
    size: () => ({ keys: byKey.size, buckets, bytes: byKey.size * KEY_BYTES + keyChars * 2 + buckets * BUCKET_BYTES }),
  };
}
