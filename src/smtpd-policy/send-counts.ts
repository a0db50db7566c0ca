// Recipients sent, per address (a mailbox, or `@domain` for a domain's total) and per
// minute, for the sliding hour and day windows. Pure: the caller says which minute it is.
//
// Each minute's count has three parts: what the database holds (every host's flushed
// counts, ours included, as last read), what this daemon counted and has not yet handed to
// the write-back, and what is on its way there. The sum of the three is the count; a
// write's result or a read of the table replaces the first part, so nothing is counted
// twice for longer than one round trip, and a daemon whose database is away keeps
// counting on its own and hands everything over once it is back.

/** Minutes since the Unix epoch: the buckets' key, also the database's (send_counts.minute). */
export const minuteOf = (ms: number): number => Math.floor(ms / 60_000);

export const HOUR_MINUTES = 60;
export const DAY_MINUTES = 1440;

interface Bucket {
  stored: number;
  pending: number;
  inflight: number;
}

/** One address's minute and the recipients to add there. */
export interface CountRow {
  address: string;
  minute: number;
  count: number;
}

export interface SendCounts {
  /** Recipients counted for `address` in the `minutes` minutes up to and including `now`. */
  sum(address: string, now: number, minutes: number): number;
  /** Counts `n` recipients sent now (local, to be written). */
  add(address: string, minute: number, n: number): void;
  /** What the database holds for that minute (all hosts' written counts). */
  stored(address: string, minute: number, count: number): void;
  /** Hands what is pending to a write; finish it with written() or failed(). */
  take(): CountRow[];
  /** The rows of take() are in the database; `totals` are the minutes' counts there now. */
  written(rows: readonly CountRow[], totals: readonly CountRow[]): void;
  /**
   * The rows of take() were not written: pending again when `retry`, else (the statement
   * itself failed, and would again) kept as counted here only.
   */
  failed(rows: readonly CountRow[], retry: boolean): void;
  /** Forgets an address's counts (`send-usage reset`). */
  reset(address: string): void;
  /** Drops minutes before `minute`; addresses left without any. */
  prune(minute: number): void;
  /** Addresses with counts (for `send-usage` and tests). */
  addresses(): IterableIterator<string>;
  /** Minutes with pending or in-flight counts. */
  pending(): number;
}

// Long because it is one closure over the table; each method is a few lines.
export function createSendCounts(): SendCounts {
  const byAddress = new Map<string, Map<number, Bucket>>();
  let pendingRows = 0;

  const bucket = (address: string, minute: number): Bucket => {
    let minutes = byAddress.get(address);
    if (minutes === undefined) byAddress.set(address, (minutes = new Map()));
    let b = minutes.get(minute);
    if (b === undefined) minutes.set(minute, (b = { stored: 0, pending: 0, inflight: 0 }));
    return b;
  };

  return {
    sum(address, now, minutes) {
      const m = byAddress.get(address);
      if (m === undefined) return 0;
      const from = now - minutes;
      let n = 0;
      for (const [minute, b] of m) if (minute > from && minute <= now) n += b.stored + b.pending + b.inflight;
      return n;
    },
    add(address, minute, n) {
      if (n <= 0) return;
      const b = bucket(address, minute);
      if (b.pending === 0) pendingRows++;
      b.pending += n;
    },
    stored(address, minute, count) {
      bucket(address, minute).stored = count;
    },
    take() {
      const out: CountRow[] = [];
      for (const [address, m] of byAddress) {
        for (const [minute, b] of m) {
          if (b.pending === 0) continue;
          out.push({ address, minute, count: b.pending });
          b.inflight += b.pending;
          b.pending = 0;
        }
      }
      pendingRows = 0;
      return out;
    },
    written(rows, totals) {
      for (const r of rows) {
        const b = byAddress.get(r.address)?.get(r.minute);
        if (b !== undefined) b.inflight = Math.max(0, b.inflight - r.count);
      }
      for (const t of totals) {
        const b = byAddress.get(t.address)?.get(t.minute);
        if (b !== undefined) b.stored = t.count;
      }
    },
    failed(rows, retry) {
      for (const r of rows) {
        const b = byAddress.get(r.address)?.get(r.minute);
        if (b === undefined) continue; // reset or pruned meanwhile
        const back = Math.min(b.inflight, r.count);
        b.inflight -= back;
        if (!retry) {
          b.stored += back;
          continue;
        }
        if (b.pending === 0 && back > 0) pendingRows++;
        b.pending += back;
      }
    },
    reset(address) {
      const m = byAddress.get(address);
      if (m === undefined) return;
      for (const b of m.values()) if (b.pending > 0) pendingRows--;
      byAddress.delete(address);
    },
    prune(minute) {
      for (const [address, m] of byAddress) {
        for (const [k, b] of m) {
          if (k >= minute) continue;
          if (b.pending > 0) pendingRows--;
          m.delete(k);
        }
        if (m.size === 0) byAddress.delete(address);
      }
    },
    addresses: () => byAddress.keys(),
    pending: () => pendingRows,
  };
}
