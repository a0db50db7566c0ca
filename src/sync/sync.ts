// Keeps the directory equal to the database. A full load in one REPEATABLE READ snapshot,
// then, on every NOTIFY and every poll tick, a catch-up that reads the change-log entries
// written by transactions the previous snapshot did not see — whatever order they
// committed in — and re-reads only the keys they name. Because the position is a
// snapshot, not a sequence number, a dropped LISTEN connection or a restarted PostgreSQL
// loses nothing: the next catch-up after reconnecting picks up exactly what was missed.
// A full reload happens only at start, when the change log was pruned past the daemon's
// position, or when a change names a whole kind (TRUNCATE).

import pg from 'pg';
import { emptyData, type ChangeKind, type Directory, type DirectoryData } from '../directory/directory.js';
import { errorMessage, type Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { changeKinds, keyColumn, type Profile } from './profile.js';
import { aliasRowAdder, applyRows, rowAdder, aliasDomainRow, domainRow, mailboxRow, routeRow } from './rows.js';

export interface SyncOptions {
  databaseUrl: string;
  profile: Profile;
  directory: Directory;
  logger: Logger;
  metrics: Metrics;
  pollIntervalMs: number;
  retentionMs: number;
  reconnectMaxDelayMs: number;
  /** Rows per FETCH during a full load: bounds the memory a load needs besides the result. */
  fetchSize?: number;
}

export interface SyncStatus {
  connected: boolean;
  loaded: boolean;
  /** Date.now() of the last successful catch-up or load, 0 if never. */
  lastSuccess: number;
  lastError: string | undefined;
  fullLoads: number;
  catchups: number;
}

export interface Sync {
  start(): void;
  stop(): Promise<void>;
  status(): SyncStatus;
  /** Loaded, connected, and caught up within a few poll intervals. */
  inSync(): boolean;
  /** Resolves after the first full load (or rejects when stopped first). */
  firstLoad(): Promise<void>;
  /** Runs a catch-up now and resolves when it is applied (tests, benchmarks). */
  kick(): Promise<void>;
}

const keyChunk = 5000;

export function createSync(opts: SyncOptions): Sync {
  const { directory, logger, metrics, profile } = opts;
  const fetchSize = opts.fetchSize ?? 20000;
  const status: SyncStatus = { connected: false, loaded: false, lastSuccess: 0, lastError: undefined, fullLoads: 0, catchups: 0 };
  let snapshot: string | undefined;
  let stopped = false;
  let client: pg.Client | undefined;
  let wake: (() => void) | undefined;
  let kicked = false;
  let waiters: Array<{ resolve: () => void; reject: (e: Error) => void }> = [];
  let loop: Promise<void> | undefined;
  let lastPrune = 0;
  let cancelSleep: (() => void) | undefined;
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
  let pruneDenied = false;
  let resolveFirst!: () => void;
  let rejectFirst!: (e: Error) => void;
  const first = new Promise<void>((res, rej) => {
    resolveFirst = res;
    rejectFirst = rej;
  });
  first.catch(() => {});

  const setConnected = (up: boolean) => {
    status.connected = up;
    metrics.dbConnected.set(up ? 1 : 0);
  };

  const updateCounts = () => {
    const c = directory.counts();
    for (const k of changeKinds) metrics.directoryEntries.set({ table: k }, c[k]);
  };

  const succeeded = () => {
    status.lastSuccess = Date.now();
    status.lastError = undefined;
    metrics.lastSync.set(status.lastSuccess / 1000);
  };

  async function fullLoad(c: pg.Client, reason: string): Promise<void> {
    const t0 = process.hrtime.bigint();
    const data: DirectoryData = emptyData();
    await c.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    let snap: string;
    try {
      const s = await c.query<{ snap: string }>('SELECT pg_current_snapshot()::text AS snap');
      snap = s.rows[0]!.snap;
      for (const kind of changeKinds) await loadKind(c, kind, data);
      await c.query('COMMIT');
    } catch (err) {
      await c.query('ROLLBACK').catch(() => {});
      throw err;
    }
    directory.replaceAll(data);
    snapshot = snap;
    status.loaded = true;
    status.fullLoads++;
    metrics.directoryLoaded.set(1);
    metrics.fullReloads.inc({ reason });
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    metrics.loadDuration.set(seconds);
    updateCounts();
    succeeded();
    const counts = directory.counts();
    logger.info('directory loaded', {
      reason,
      seconds: seconds.toFixed(3),
      domains: counts.domain,
      alias_domains: counts.alias_domain,
      mailboxes: counts.mailbox,
      aliases: counts.alias,
    });
    resolveFirst();
  }

  async function loadKind(c: pg.Client, kind: ChangeKind, data: DirectoryData): Promise<void> {
    const cursor = `mailmapd_load_${kind}`;
    await c.query(`DECLARE ${cursor} NO SCROLL CURSOR FOR ${profile.queries[kind]}`);
    const rows = rowAdder(data, kind);
    for (;;) {
      const r = await c.query({ text: `FETCH ${fetchSize} FROM ${cursor}`, rowMode: 'array' });
      for (const row of r.rows as unknown[][]) rows.add(row);
      if (r.rows.length < fetchSize) break;
    }
    rows.finish();
    await c.query(`CLOSE ${cursor}`);
  }

  async function rereadKeys(c: pg.Client, kind: ChangeKind, keys: string[]): Promise<unknown[][]> {
    const rows: unknown[][] = [];
    for (let i = 0; i < keys.length; i += keyChunk) {
      const r = await c.query({
        text: `SELECT * FROM (${profile.queries[kind]}) q WHERE q.${keyColumn[kind]} = ANY($1::text[])`,
        values: [keys.slice(i, i + keyChunk)],
        rowMode: 'array',
      });
      rows.push(...(r.rows as unknown[][]));
    }
    return rows;
  }

  function applyKeys(kind: ChangeKind, keys: string[], rows: unknown[][]): void {
    switch (kind) {
      case 'domain': {
        const found = new Map<string, boolean>();
        for (const r of rows) {
          const [k, v] = domainRow(r);
          found.set(k, v || found.get(k) === true);
        }
        for (const k of keys) directory.setDomain(k, found.get(k));
        break;
      }
      case 'alias_domain': {
        const found = new Map(rows.map(aliasDomainRow));
        for (const k of keys) directory.setAliasDomain(k, found.get(k));
        break;
      }
      case 'mailbox': {
        const found = new Map(rows.map(mailboxRow));
        for (const k of keys) directory.setMailbox(k, found.get(k));
        break;
      }
      case 'alias': {
        const found = new Map<string, string>();
        const add = aliasRowAdder(found);
        for (const r of rows) add.add(r);
        add.finish();
        for (const k of keys) directory.setAlias(k, found.get(k));
        break;
      }
      case 'route': {
        const found = new Map(rows.map(routeRow));
        for (const k of keys) directory.setRoute(k, found.get(k));
        break;
      }
      default:
        applyRows(directory, kind, keys, rows);
    }
  }

  async function catchUp(c: pg.Client): Promise<void> {
    if (snapshot === undefined) return fullLoad(c, 'start');
    await c.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    let applied = 0;
    try {
      const head = await c.query<{ snap: string; behind: boolean }>(
        `SELECT pg_current_snapshot()::text AS snap,
                coalesce((SELECT pruned_xid > pg_snapshot_xmin($1::pg_snapshot) FROM mailmapd.sync_state), false) AS behind`,
        [snapshot],
      );
      const { snap, behind } = head.rows[0]!;
      if (behind) {
        await c.query('ROLLBACK');
        logger.warn('change log pruned past our position; reloading in full');
        return fullLoad(c, 'behind');
      }
      const changes = await c.query<{ kind: ChangeKind; key: string | null; age: number }>(
        `SELECT kind, key, extract(epoch FROM clock_timestamp() - at)::float8 AS age
           FROM mailmapd.changes
          WHERE xid >= pg_snapshot_xmin($1::pg_snapshot) AND NOT pg_visible_in_snapshot(xid, $1::pg_snapshot)`,
        [snapshot],
      );
      if (changes.rows.some((r) => r.key === null)) {
        await c.query('ROLLBACK');
        return fullLoad(c, 'truncate');
      }
      const byKind = new Map<ChangeKind, Set<string>>();
      for (const r of changes.rows) {
        let set = byKind.get(r.kind);
        if (!set) byKind.set(r.kind, (set = new Set()));
        set.add(r.key!.toLowerCase());
      }
      const reads: Array<[ChangeKind, string[], unknown[][]]> = [];
      for (const [kind, set] of byKind) {
        const keys = [...set];
        reads.push([kind, keys, await rereadKeys(c, kind, keys)]);
      }
      await c.query('COMMIT');
      // Apply everything read in this snapshot at once, so no lookup sees half a batch.
      for (const [kind, keys, rows] of reads) {
        applyKeys(kind, keys, rows);
        metrics.changesApplied.inc({ table: kind }, keys.length);
        applied += keys.length;
      }
      for (const r of changes.rows) metrics.syncLag.observe(Math.max(0, r.age));
      snapshot = snap;
    } catch (err) {
      await c.query('ROLLBACK').catch(() => {});
      throw err;
    }
    if (applied > 0) {
      updateCounts();
      logger.debug('changes applied', { entries: applied });
    }
    succeeded();
  }

  async function prune(c: pg.Client): Promise<void> {
    if (pruneDenied || Date.now() - lastPrune < Math.min(opts.retentionMs, 3_600_000)) return;
    lastPrune = Date.now();
    try {
      const r = await c.query(
        `WITH gone AS (
           DELETE FROM mailmapd.changes WHERE at < clock_timestamp() - make_interval(secs => $1) RETURNING xid::text::numeric AS x)
         UPDATE mailmapd.sync_state
            SET pruned_xid = greatest(pruned_xid, ((SELECT max(x) FROM gone) + 1)::text::xid8)
          WHERE EXISTS (SELECT 1 FROM gone)`,
        [opts.retentionMs / 1000],
      );
      if ((r.rowCount ?? 0) > 0) logger.info('pruned the change log', { older_than_seconds: opts.retentionMs / 1000 });
    } catch (err) {
      // A read-only database role cannot prune; another host or a cron job can.
      pruneDenied = true;
      logger.warn('cannot prune the change log; leaving it to others', { error: errorMessage(err) });
    }
  }

  function waitForWork(c: pg.Client): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (kicked || stopped) {
        kicked = false;
        resolve();
        return;
      }
      const timer = setTimeout(done, opts.pollIntervalMs);
      function done() {
        clearTimeout(timer);
        c.removeListener('error', fail);
        c.removeListener('end', ended);
        wake = undefined;
        kicked = false;
        resolve();
      }
      function fail(err: Error) {
        clearTimeout(timer);
        c.removeListener('end', ended);
        wake = undefined;
        reject(err);
      }
      function ended() {
        fail(new Error('connection ended'));
      }
      c.once('error', fail);
      c.once('end', ended);
      wake = done;
    });
  }

  async function session(): Promise<void> {
    const c = new pg.Client({ connectionString: opts.databaseUrl, application_name: 'mailmapd', keepAlive: true });
    client = c;
    c.on('error', () => {}); // surfaced through the pending query or waitForWork
    c.on('notification', () => {
      kicked = true;
      wake?.();
    });
    try {
      await c.connect();
      await c.query('LISTEN mailmapd');
      setConnected(true);
      logger.info('connected to PostgreSQL', { catch_up: snapshot !== undefined });
      if (snapshot !== undefined) metrics.catchups.inc();
      for (;;) {
        const pending = waiters;
        waiters = [];
        try {
          await catchUp(c);
          status.catchups++;
          for (const w of pending) w.resolve();
        } catch (err) {
          waiters.push(...pending);
          throw err;
        }
        if (stopped) return;
        await prune(c);
        if (stopped) return;
        await waitForWork(c);
        if (stopped) return;
      }
    } finally {
      setConnected(false);
      client = undefined;
      await c.end().catch(() => {});
    }
  }

  async function run(): Promise<void> {
    let delay = 100;
    while (!stopped) {
      const startedAt = Date.now();
      try {
        await session();
      } catch (err) {
        if (stopped) break;
        status.lastError = errorMessage(err);
        // The change log is missing: say what to run rather than only what failed.
        if ((err as { code?: string }).code === '42P01' && /mailmapd\./.test(status.lastError)) {
          status.lastError += profile.name === 'native' ? ' (run `mailmapd migrate`)' : ' (run `mailmapd triggers install`)';
        }
        logger.warn('database sync interrupted; serving the last good copy', {
          error: status.lastError,
          retry_ms: delay,
          loaded: status.loaded,
        });
      }
      if (stopped) break;
      if (Date.now() - startedAt > 30_000) delay = 100;
      await sleep(delay + Math.floor(Math.random() * delay * 0.3));
      delay = Math.min(delay * 2, opts.reconnectMaxDelayMs);
    }
  }

  return {
    start() {
      if (!loop) loop = run();
    },
    async stop() {
      stopped = true;
      wake?.();
      cancelSleep?.();
      const c = client;
      if (c) await c.end().catch(() => {});
      // A connect() in flight may not notice end(); do not let it hold the shutdown.
      await Promise.race([loop, new Promise((r) => setTimeout(r, 3000).unref())]);
      for (const w of waiters) w.reject(new Error('sync stopped'));
      waiters = [];
      if (!status.loaded) rejectFirst(new Error('sync stopped before the first load'));
    },
    status: () => ({ ...status }),
    inSync() {
      return status.loaded && status.connected && Date.now() - status.lastSuccess < Math.max(3 * opts.pollIntervalMs, 5000);
    },
    firstLoad: () => first,
    kick() {
      return new Promise<void>((resolve, reject) => {
        waiters.push({ resolve, reject });
        kicked = true;
        wake?.();
      });
    },
  };
}
