// The limiter's shared counts on their way to and from PostgreSQL: a write-back source
// (this daemon's failures and known sources, added on the primary in batches, never on a
// login's path) and a read followed by the policy follower on the directory's own
// database (every host's, from a standby where the daemon reads one). Both halves keep
// the in-memory state (shared-state.ts) small: buckets past the window and sources past
// their time are dropped here and deleted from the tables once a minute.

import type pg from 'pg';
import { isRetryable } from '../db/sqlstate.js';
import { writeInBatches } from '../shared-counts/batches.js';
import { ringCounts } from '../shared-counts/doorbell.js';
import type { Metrics } from '../metrics.js';
import type { FollowedRead } from '../smtpd-policy/follower.js';
import type { CountRow } from '../shared-counts/buckets.js';
import type { WriteSource } from '../writeback/writer.js';
import { bucketOf, shareKey, splitKey, type SharedState, type SourceRow } from './shared-state.js';
import { failuresPrune, failuresRead, failuresWrite, sourcesPrune, sourcesRead, sourcesWrite } from './share-statements.js';

const PRUNE_MS = 60_000;
/** The tables keep failures this long at least (a host with a longer policy_window still finds its own). */
const KEEP_FAILURES_MS = 3_600_000;

export interface LimiterShareOptions {
  windowMs: number;
  knownSourceMs: number;
  metrics?: Metrics;
  now?: () => number;
}

export interface LimiterShare {
  source: WriteSource;
  read: FollowedRead;
  /** Drops what left its window from memory (a timer calls it; tests too). */
  prune(): void;
  stop(): void;
}

// Long because it is one closure over the state and the prune clock; writing, reading and
// pruning inside it are short functions.
export function createLimiterShare(state: SharedState, o: LimiterShareOptions): LimiterShare {
  const now = o.now ?? Date.now;
  let prunedAt = now();
  const { failures, sources } = state;

  const gauges = () => {
    const f = failures.size();
    const s = sources.size();
    o.metrics?.policySharedEntries.set({ kind: 'failures' }, f.buckets);
    o.metrics?.policySharedEntries.set({ kind: 'sources' }, s.keys);
    o.metrics?.policySharedBytes.set(f.bytes + s.bytes);
  };
  const prune = () => {
    failures.prune(bucketOf(now() - o.windowMs));
    sources.prune(now() - o.knownSourceMs);
    gauges();
  };
  const timer = setInterval(prune, 10_000);
  timer.unref();

  async function writeFailures(c: pg.Client, rows: CountRow[]): Promise<void> {
    let r: pg.QueryResult<{ login: string; source: string; at: string; count: number }>;
    const split = rows.map((x) => splitKey(x.key));
    try {
      r = await c.query(failuresWrite, [split.map((x) => x[0]), split.map((x) => x[1]), rows.map((x) => x.bucket), rows.map((x) => x.count)]);
    } catch (err) {
      failures.failed(rows, isRetryable(err));
      throw err;
    }
    failures.written(
      rows,
      r.rows.map((x) => ({ key: shareKey(x.login, x.source), bucket: Number(x.at), count: Number(x.count) })),
    );
  }

  async function writeSources(c: pg.Client, rows: SourceRow[]): Promise<void> {
    const split = rows.map((x) => splitKey(x.key));
    try {
      await c.query(sourcesWrite, [split.map((x) => x[0]), split.map((x) => x[1]), rows.map((x) => x.seen)]);
    } catch (err) {
      // A statement that fails (a table not migrated yet) would fail again: kept here only.
      if (isRetryable(err)) sources.failed(rows);
      throw err;
    }
  }

  const source: WriteSource = {
    kind: 'login_failures',
    pending: () => failures.pending() + sources.pending() + (now() - prunedAt >= PRUNE_MS ? 1 : 0),
    async flush(c) {
      const rows = failures.take();
      await writeInBatches(
        rows,
        (batch) => writeFailures(c, batch),
        (rest) => failures.failed(rest, true),
      );
      const known = sources.take();
      await writeInBatches(
        known,
        (batch) => writeSources(c, batch),
        (rest) => sources.failed(rest),
      );
      if (rows.length > 0 || known.length > 0) await ringCounts(c);
      gauges();
      if (now() - prunedAt >= PRUNE_MS) {
        prunedAt = now();
        await c.query(failuresPrune, [bucketOf(now() - Math.max(2 * o.windowMs, KEEP_FAILURES_MS))]);
        await c.query(sourcesPrune, [now() - o.knownSourceMs]);
      }
    },
  };

  const read: FollowedRead = {
    what: 'shared login failures',
    async read(c, since) {
      const f = await c.query<{ login: string; source: string; at: string; count: number }>(failuresRead, [since, bucketOf(now() - o.windowMs)]);
      for (const x of f.rows) failures.stored(shareKey(x.login, x.source), Number(x.at), Number(x.count));
      const s = await c.query<{ login: string; source: string; seen: number }>(sourcesRead, [since, now() - o.knownSourceMs]);
      for (const x of s.rows) sources.stored(shareKey(x.login, x.source), Number(x.seen));
    },
    onRead() {
      o.metrics?.policySharedMerged.set(Date.now() / 1000); // wall time: the age metric reads it against Date.now()
      gauges();
    },
  };

  return { source, read, prune, stop: () => clearInterval(timer) };
}
