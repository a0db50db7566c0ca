// Follows what other hosts write: quota usage (from Dovecot, through any host's dict
// socket), send counts and the limiter's shared counts (every host's write-back). Polls
// the directory's own database — a standby serves this as well as the primary — every
// sync_poll_interval, reading only the rows changed since its last read (looking back a
// little past it, see statements.ts), so a change reaches this host's answers within about
// one interval, without touching the directory. A full read at the start and after every reconnect. The counts' doorbell
// (shared-counts/doorbell.ts) makes it read at once, on a standby once it has replayed
// what the primary rang for.

import { createBackoff } from '../backoff.js';
import type pg from 'pg';
import { connectTarget } from '../db/target.js';
import { destroyClient } from '../db/client.js';
import { isConnectionLoss, sqlstateOf } from '../db/sqlstate.js';
import { errorMessage, type Logger } from '../log.js';
import { DAY_MINUTES, minuteOf, type SendCounts } from './send-counts.js';
import { LONG_EVERY, LONG_OVERLAP_S, RUNG_OVERLAP_S, SHORT_OVERLAP_S, sendCountsRead } from './statements.js';
import { replayedSql } from '../shared-counts/doorbell.js';

export interface QuotaUsageRead {
  /** address, bytes; `$1` (timestamptz or null) when it can read only what changed. */
  sql: string;
  /** Without `$1` the whole table is read, then only every this many polls. */
  fullEvery: number;
}

/** Another table followed on the same connection (the limiter's shared counts). */
export interface FollowedRead {
  /** Named in the log when its statement fails. */
  what: string;
  /** Reads the rows changed since `since` (null: all) into memory. */
  read(c: pg.Client, since: Date | null): Promise<void>;
  /** Every read of it done (the other hosts' counts merged). */
  onRead?(): void;
}

export interface FollowerOptions {
  url: string;
  intervalMs: number;
  reconnectMaxDelayMs: number;
  usage: Map<string, number>;
  /** Undefined: send counts are not shared (shared_counts = no), only counted here. */
  counts: SendCounts | undefined;
  quotaUsage: QuotaUsageRead;
  logger: Logger;
  onRead?: () => void;
  now?: () => number;
  reads?: FollowedRead[];
}

export interface Follower {
  /** One poll now (tests; the timer calls it too). */
  poll(): Promise<void>;
  /** Counts were written up to the primary's WAL position `lsn`: read them as soon as the server has them. */
  kick(lsn: string): void;
  stop(): Promise<void>;
}

// Long because it is one closure over the connection and the read marks; poll's steps
// (connect, read usage, read counts) are short.
export function createFollower(opts: FollowerOptions): Follower {
  const { logger } = opts;
  const now = opts.now ?? Date.now;
  let client: pg.Client | undefined;
  let polling: Promise<void> | undefined;
  /** The database's clock at the start of the last complete read; undefined: read everything. */
  let mark: Date | undefined;
  let polls = 0;
  let failures = 0;
  const backoff = createBackoff(opts.reconnectMaxDelayMs);
  let retryAt = 0;
  let stopped = false;
  /** Whether the server read is a standby (a rung read waits for its replay). */
  let standby = false;
  /** The primary's position the next read waits for the standby to replay (the doorbell's). */
  let target: string | undefined;
  /** Rung while a read was under way: read once more after it. */
  let again = false;
  const incremental = opts.quotaUsage.sql.includes('$1');
  /** Reads whose statement failed (a table not there yet): said once, retried every poll. */
  const failing = new Set<string>();

  /** One of the reads: its statement failing (not the connection) leaves the other alone. */
  async function tolerant(what: string, read: () => Promise<void>): Promise<void> {
    try {
      await read();
      if (failing.delete(what)) logger.info(`policy: reading ${what} again`, {});
    } catch (err) {
      const code = sqlstateOf(err);
      if (code === undefined || isConnectionLoss(code)) throw err;
      if (!failing.has(what)) logger.warn(`policy: cannot read ${what}; answering without it`, { error: errorMessage(err) });
      failing.add(what);
    }
  }

  async function connect(): Promise<pg.Client> {
    if (client) return client;
    const t = await connectTarget(opts.url, { applicationName: 'mailmapd-policy', connectTimeoutMs: 5000, queryTimeoutMs: 30_000 });
    const c = t.client;
    standby = t.inRecovery;
    c.on('error', () => {
      if (client === c) client = undefined;
    });
    client = c;
    mark = undefined;
    return c;
  }

  /**
   * Waits (at most one poll interval) until the standby has replayed `lsn`. Asked every
   * couple of milliseconds, as the sync does: a query that waited server-side would hold a
   * snapshot replay may have to wait for.
   */
  async function replayed(c: pg.Client, lsn: string): Promise<void> {
    const until = Date.now() + opts.intervalMs;
    for (;;) {
      const r = await c.query<{ ok: boolean }>(replayedSql, [lsn]);
      if (r.rows[0]?.ok === true || Date.now() >= until || stopped) return;
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
  }

  async function readOnce(): Promise<void> {
    const c = await connect();
    const lsn = target;
    target = undefined;
    if (lsn !== undefined && standby) await replayed(c, lsn);
    // A rung read is for the counts only and looks back a second past the last timed read,
    // which it leaves as it was: whatever it missed (a row committed late) the next timed
    // read's wider look-back finds. Under steady counting rings come every quarter second:
    // each re-reading the last five seconds would read every row twenty times.
    const rung = lsn !== undefined && mark !== undefined;
    const overlapS = rung ? RUNG_OVERLAP_S : polls % LONG_EVERY === 0 ? LONG_OVERLAP_S : SHORT_OVERLAP_S;
    const since = mark === undefined ? null : new Date(mark.getTime() - 1000 * overlapS);
    const t = await c.query<{ t: Date }>('SELECT now() AS t');
    const started = t.rows[0]!.t;
    if (!rung && (incremental || since === null || polls % opts.quotaUsage.fullEvery === 0)) {
      await tolerant('quota usage', async () => {
        // By position: a profile's query names its columns as its panel does.
        const r = await c.query<[string, string | number | null]>({ text: opts.quotaUsage.sql, values: incremental ? [since] : [], rowMode: 'array' });
        for (const [address, raw] of r.rows) {
          const key = String(address).toLowerCase();
          const bytes = Number(raw);
          if (raw === null || !Number.isFinite(bytes)) opts.usage.delete(key);
          else opts.usage.set(key, bytes);
        }
      });
    }
    const counts = opts.counts;
    if (counts) {
      await tolerant('send counts', async () => {
        const s = await c.query<{ address: string; minute: string; count: number }>(sendCountsRead, [since, minuteOf(now()) - DAY_MINUTES]);
        for (const row of s.rows) counts.stored(row.address, Number(row.minute), Number(row.count));
      });
    }
    for (const r of opts.reads ?? []) await tolerant(r.what, () => r.read(c, since));
    for (const r of opts.reads ?? []) if (!failing.has(r.what)) r.onRead?.();
    if (rung) return;
    mark = started;
    polls++;
    opts.onRead?.();
  }

  async function pollOnce(): Promise<void> {
    if (stopped || Date.now() < retryAt) return;
    try {
      await readOnce();
      if (failures > 0) logger.info('policy: following quota usage and send counts again', {});
      failures = 0;
      backoff.reset();
    } catch (err) {
      failures++;
      retryAt = Date.now() + backoff.next();
      if (failures === 1) logger.warn('policy: cannot read quota usage and send counts; answering from what is known', { error: errorMessage(err) });
      const c = client;
      client = undefined;
      if (c) destroyClient(c);
    }
  }

  const poll = (): Promise<void> => {
    if (!polling)
      polling = pollOnce().finally(() => {
        polling = undefined;
        if (again && !stopped) {
          again = false;
          void poll();
        }
      });
    return polling;
  };

  const timer = setInterval(() => void poll(), opts.intervalMs);
  timer.unref();
  void poll();

  return {
    poll,
    kick(lsn) {
      target = lsn;
      if (polling) again = true;
      else void poll();
    },
    async stop() {
      stopped = true;
      clearInterval(timer);
      await polling;
      const c = client;
      client = undefined;
      await c?.end().catch(() => {});
    },
  };
}
