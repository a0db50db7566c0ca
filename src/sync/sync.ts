// Keeps the directory equal to the database: the connection loop. It connects (to a primary
// or a hot standby, database_url in libpq's multi-host form), catches up, then waits for
// the doorbell (a NOTIFY), a kick or the poll tick, and catches up again when the cheap
// probe says so; a failure is logged, and the loop connects again after a backoff. A
// dropped connection or a restarted server loses nothing: the next catch-up picks up
// exactly what was missed.
//
// The parts, each holding its own state:
//   loader.ts      what the directory is a copy of (the position), full load and catch-up
//   verdict.ts     whether a catch-up must become a full load, and why (pure)
//   freshness.ts   what the last read saw: whether another is worth it (probe.ts's rule)
//   doorbell.ts    what wakes the loop: NOTIFY, kick, poll tick, stop
//   primary-link.ts a standby's connection to the primary, for its NOTIFY and pruning
//   status.ts      what the sync reports (/readyz), and the rule for "in sync"
//   changelog.ts   the SQL; rows.ts the rows; position.ts the position; pruner.ts pruning

import type pg from 'pg';
import type { Directory } from '../directory/directory.js';
import { destroyClient } from '../db/client.js';
import { sqlstate, sqlstateOf } from '../db/sqlstate.js';
import { connectTarget, type Target } from '../db/target.js';
import { createPrimaryLink } from './primary-link.js';
import { errorMessage, type Logger } from '../log.js';
import { createBackoff } from '../backoff.js';
import { initialStatus, isInSync, type SyncStatus } from './status.js';
import { deferred } from '../deferred.js';
import { syncMetrics, type Metrics } from '../metrics.js';
import { createAliasExpiry, systemClock, type Clock } from './alias-expiry.js';
import { isNative, type Profile } from './profile.js';
import { createPruner } from './pruner.js';
import { createDoorbell } from './doorbell.js';
import { createFreshness } from './freshness.js';
import { createLoader } from './loader.js';

export interface SyncOptions {
  databaseUrl: string;
  /** The primary, for LISTEN and pruning when databaseUrl reaches a standby. */
  databasePrimaryUrl?: string;
  profile: Profile;
  directory: Directory;
  logger: Logger;
  metrics: Metrics;
  pollIntervalMs: number;
  retentionMs: number;
  reconnectMaxDelayMs: number;
  /** Rows per FETCH during a full load: bounds the memory a load needs besides the result. */
  fetchSize?: number;
  /** A standby further behind than this is not ready (/readyz 503); default 30 s. */
  maxLagMs?: number;
  /** Bound on each query: a hung connection is given up after this; default 15 s. */
  queryTimeoutMs?: number;
  /** A position saved by an earlier run (from onApplied). The sync checks that it belongs
   *  to the server's history (system identifier, timeline, xid counter not behind, …) and
   *  catches up from it; otherwise it reloads in full. The directory already holds the
   *  data that position describes (or newer). */
  resume?: { position: unknown };
  /** Called after every successful full load or catch-up with a JSON-serialisable position
   *  that covers everything now in the directory. */
  onApplied?: (position: unknown) => void;
  /** When aliases with an expires_at end (tests inject one); default the system's. */
  clock?: Clock;
}

export type { SyncStatus } from './status.js';

export interface Sync {
  start(): void;
  stop(): Promise<void>;
  status(): SyncStatus;
  /** Loaded, connected, caught up within a few poll intervals, and not lagging past the bound. */
  inSync(): boolean;
  /** Resolves after the first full load (or rejects when stopped first). */
  firstLoad(): Promise<void>;
  /** Runs a catch-up now and resolves when it is applied (tests, benchmarks). */
  kick(): Promise<void>;
}

// Long because it is one closure over the loop's state (the connection, stop, the backoff)
// and the wiring of the parts; the steps inside it are held to the rule.
export function createSync(opts: SyncOptions): Sync {
  const { directory, logger, metrics } = opts;
  const clock = opts.clock ?? systemClock;
  const expiry = createAliasExpiry(directory, clock);
  const sm = syncMetrics(metrics);
  const maxLagMs = opts.maxLagMs ?? 30_000;
  const queryTimeoutMs = opts.queryTimeoutMs ?? 15_000;
  const status = initialStatus();
  let stopped = false;
  let reader: Target | undefined;
  let loop: Promise<void> | undefined;
  // A session that caught up once is healthy: the next failure starts the backoff anew.
  const backoff = createBackoff(opts.reconnectMaxDelayMs);
  const doorbell = createDoorbell();
  let cancelSleep: (() => void) | undefined;
  const primary = createPrimaryLink({
    url: opts.databasePrimaryUrl,
    queryTimeoutMs,
    retryMs: Math.min(opts.reconnectMaxDelayMs, 5000),
    logger,
    ring: doorbell.ring,
    onState: (up) => {
      status.primaryConnected = up;
    },
    wanted: () => !stopped && reader !== undefined && status.standby,
  });
  // The backoff sleep keeps the process alive (nothing else may while the database is
  // down) and ends early on stop().
  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const t = setTimeout(resolve, ms);
      cancelSleep = () => {
        clearTimeout(t);
        resolve();
      };
    });
  const first = deferred();

  const setConnected = (up: boolean) => {
    status.connected = up;
    metrics.dbConnected.set(up ? 1 : 0);
  };

  const succeeded = () => {
    status.lastSuccess = Date.now();
    status.lastError = undefined;
    metrics.lastSync.set(status.lastSuccess / 1000);
  };

  const setLag = (seconds: number, bytes: number) => {
    status.lagSeconds = seconds;
    status.lagBytes = bytes;
    sm.lagSeconds.set(seconds);
    sm.lagBytes.set(bytes);
  };

  const freshness = createFreshness({
    standby: () => status.standby,
    primary,
    logger,
    pollIntervalMs: opts.pollIntervalMs,
    stopped: () => stopped,
    onLag: setLag,
  });
  const loader = createLoader({
    profile: opts.profile,
    directory,
    logger,
    metrics,
    fetchSize: opts.fetchSize ?? 20000,
    clock,
    expiry,
    freshness,
    status,
    first,
    resume: opts.resume,
    onApplied: opts.onApplied,
    succeeded,
    stopped: () => stopped,
  });
  const pruner = createPruner({ retentionMs: opts.retentionMs, pollIntervalMs: opts.pollIntervalMs, logger, sm });
  const prune = (c: pg.Client) => pruner.run(c, loader.position()?.xmin);

  /** The server's role and name for the status and the metrics, when a session connects. */
  function noteServer(t: Target): void {
    const server = `${t.host}:${t.port}`;
    if (status.host !== '' && status.host !== server) sm.server.reset();
    status.host = server;
    status.standby = t.inRecovery;
    sm.server.set({ host: server, role: t.inRecovery ? 'standby' : 'primary' }, 1);
    sm.standby.set(t.inRecovery ? 1 : 0);
  }

  /** One catch-up, answering the kicks made before it began. */
  async function catchUpRound(c: pg.Client): Promise<void> {
    const round = doorbell.startRound();
    try {
      await loader.catchUp(c);
      status.catchups++;
      backoff.reset();
      round.applied();
    } catch (err) {
      round.failed();
      throw err;
    }
  }

  /** Prunes the change log: through the reader on a primary, through the primary's link on a standby. */
  async function pruneAndLink(c: pg.Client, standby: boolean): Promise<void> {
    if (!standby) return prune(c);
    const p = primary.client();
    if (p) await prune(p).catch((err) => primary.drop(err, p));
    primary.connect();
  }

  async function session(): Promise<void> {
    const t = await connectTarget(opts.databaseUrl, { applicationName: 'mailmapd', queryTimeoutMs });
    const c = t.client;
    reader = t;
    noteServer(t);
    c.on('notification', doorbell.ring);
    try {
      await loader.useLayout(c);
      // A primary rings its own doorbell; a standby cannot LISTEN.
      if (!t.inRecovery) await c.query('LISTEN mailmapd');
      else setLag(0, 0);
      setConnected(true);
      const resuming = loader.position() !== undefined;
      logger.info('connected to PostgreSQL', { host: status.host, standby: t.inRecovery, catch_up: resuming });
      if (resuming) metrics.catchups.inc();
      let mustCatchUp = true;
      for (;;) {
        if (mustCatchUp) await catchUpRound(c);
        if (stopped) return;
        await pruneAndLink(c, t.inRecovery);
        if (stopped) return;
        const why = await doorbell.wait(c, opts.pollIntervalMs);
        if (why === 'stop' || stopped) return;
        if (why === 'ring' && t.inRecovery) await freshness.afterRing();
        mustCatchUp = why !== 'tick';
        if (why === 'tick') {
          // A poll tick: the probe is also the heartbeat that finds a hung connection.
          mustCatchUp = await freshness.worthReading(c, loader.position());
          if (!mustCatchUp) succeeded();
        }
      }
    } finally {
      setConnected(false);
      reader = undefined;
      primary.close();
      destroyClient(c);
    }
  }

  /** The log line of a failed session: what failed, and what a lookup gets meanwhile. */
  function interrupted(err: unknown): void {
    status.lastError = errorMessage(err);
    // The change log is missing: say what to run rather than only what failed.
    if (sqlstateOf(err) === sqlstate.undefinedTable && /mailmapd\./.test(status.lastError)) {
      status.lastError += isNative(loader.profile()) ? ' (run `mailmapd migrate`)' : ' (run `mailmapd triggers install`)';
    }
    // Only a loaded directory is a last good copy; before the first load every answer
    // is a temporary failure, and the log says so.
    const serving = directory.loaded ? 'serving the last good copy' : 'nothing loaded yet, every answer is a temporary failure';
    logger.warn(`database sync interrupted; ${serving}`, {
      error: status.lastError,
      retry_ms: backoff.delay,
      loaded: directory.loaded,
    });
  }

  async function run(): Promise<void> {
    while (!stopped) {
      try {
        await session();
      } catch (err) {
        if (stopped) break;
        interrupted(err);
      }
      if (stopped) break;
      await sleep(backoff.next());
    }
  }

  return {
    start() {
      if (!loop) loop = run();
    },
    async stop() {
      stopped = true;
      expiry.stop();
      doorbell.close();
      cancelSleep?.();
      const r = reader;
      if (r) destroyClient(r.client);
      primary.close();
      // A connect() in flight may not notice; do not let it hold the shutdown.
      await Promise.race([loop, new Promise((res) => setTimeout(res, 3000).unref())]);
      doorbell.rejectKicks(new Error('sync stopped'));
      if (!status.loaded) first.reject(new Error('sync stopped before the first load'));
    },
    status: () => ({ ...status }),
    inSync: () => isInSync(status, Date.now(), opts.pollIntervalMs, maxLagMs),
    firstLoad: () => first.promise,
    kick: doorbell.kick,
  };
}
