// Keeps the directory equal to the database. A full load in one REPEATABLE READ snapshot,
// then catch-ups that read the change-log rows of every transaction the position (see
// position.ts) has not applied yet — whatever order they committed in — and re-read only
// the keys they name. A dropped connection or a restarted server loses nothing: the next
// catch-up picks up exactly what was missed. A full reload happens at start, when the
// server's history is another one (a restore, a failover, another host), when the change
// log was pruned past the position, or when a change names a whole kind (TRUNCATE).
//
// The directory may be read from a primary or a hot standby (database_url, libpq's
// multi-host form). Changes are noticed by the primary's NOTIFY when it rings, and in any
// case by a cheap poll every pollIntervalMs: the change-log sequence on a primary, the
// replay position on a standby. This file is the connection loop and the catch-up; the
// SQL is in changelog.ts, the row handling in rows.ts, the position in position.ts, and a
// standby's connection to the primary (the doorbell) in primary-link.ts.

import type pg from 'pg';
import { changeKinds, emptyData, type ChangeKind, type Directory, type DirectoryData } from '../directory/directory.js';
import { fold } from '../directory/address.js';
import { destroyClient } from '../db/client.js';
import { sqlstate, sqlstateOf } from '../db/sqlstate.js';
import { connectTarget, type Target } from '../db/target.js';
import { createPrimaryLink } from './primary-link.js';
import { COUNTS_CHANNEL } from '../shared-counts/doorbell.js';
import { errorMessage, type Logger } from '../log.js';
import { createBackoff } from '../backoff.js';
import { initialStatus, isInSync, type SyncStatus } from './status.js';
import { deferred } from '../deferred.js';
import { secondsSince, syncMetrics, type Metrics } from '../metrics.js';
import {
  abortRead,
  beginRead,
  beginReadMarked,
  beginReadReplayed,
  endRead,
  loadKind,
  loadedTail,
  lsnBytes,
  primaryLsn,
  primaryProbe,
  rereadKeys,
  standbyProbe,
  type ChangeRow,
  type OpenRead,
  type ReadHead,
} from './changelog.js';
import { advance, readPosition, type Position } from './position.js';
import { catchUpVerdict } from './verdict.js';
import { createPrimaryProbe } from './probe.js';
import { createAliasExpiry, systemClock, type Clock } from './alias-expiry.js';
import { isNative, type Profile } from './profile.js';
import { chooseLayout } from './profile-layout.js';
import { rowAdder, setEntry, type AliasTimes } from './rows.js';
import { createPruner } from './pruner.js';

const known: ReadonlySet<string> = new Set(changeKinds);

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
  /** The shared counts' doorbell and its payload, heard on the sync's connection to the primary (shared-counts/doorbell.ts). */
  onCounts?: (payload: string) => void;
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

/** Per kind: the keys a catch-up re-read, and the profile's rows for them. */
type KeyReads = Array<[ChangeKind, string[], unknown[][]]>;

// Long because it is one closure over the sync's state (the connection, the position, what
// the last probe saw, the primary's connection); the steps inside it are held to the rule.
export function createSync(opts: SyncOptions): Sync {
  const { directory, logger, metrics } = opts;
  // A panel with several layouts (Modoboa 1.0 and 2.x) is read as the one the database
  // holds, chosen on every connection (chooseLayout).
  let profile = opts.profile;
  const clock = opts.clock ?? systemClock;
  const expiry = createAliasExpiry(directory, clock);
  // Whether the aliases with an end are all known: a full load reads them all; a daemon
  // resumed from a saved position reads them once with its first catch-up.
  let timedKnown = false;
  const aliasTimes = (): AliasTimes | undefined => (/\bexpires_at\b/.test(profile.queries.alias) ? { now: clock.now(), timed: new Map() } : undefined);
  const sm = syncMetrics(metrics);
  const fetchSize = opts.fetchSize ?? 20000;
  const maxLagMs = opts.maxLagMs ?? 30_000;
  const queryTimeoutMs = opts.queryTimeoutMs ?? 15_000;
  const status = initialStatus();
  let position: Position | undefined = opts.resume ? readPosition(opts.resume.position) : undefined;
  if (opts.resume && !position) logger.warn('the saved sync position is unreadable; reloading in full');
  let stopped = false;
  let reader: Target | undefined;
  let wake: (() => void) | undefined;
  let kicked = false;
  let rang = false;
  let waiters: Array<{ resolve: () => void; reject: (e: Error) => void }> = [];
  let loop: Promise<void> | undefined;
  // A session that caught up once is healthy: the next failure starts the backoff anew.
  const backoff = createBackoff(opts.reconnectMaxDelayMs);
  // What the last catch-up saw, for deciding cheaply whether another one is needed.
  const probe = createPrimaryProbe();
  let seenReplay: string | undefined;
  /** After the doorbell on a standby: the primary's WAL position the next read waits for, and until when. */
  let replayTarget: { lsn: bigint; until: number } | undefined;
  const pruner = createPruner({ retentionMs: opts.retentionMs, pollIntervalMs: opts.pollIntervalMs, logger, sm });
  const prune = (c: pg.Client) => pruner.run(c, position?.xmin);
  let cancelSleep: (() => void) | undefined;
  const primary = createPrimaryLink({
    url: opts.databasePrimaryUrl,
    queryTimeoutMs,
    retryMs: Math.min(opts.reconnectMaxDelayMs, 5000),
    logger,
    ring,
    ...(opts.onCounts ? { counts: opts.onCounts } : {}),
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

  const updateCounts = () => {
    const c = directory.counts();
    for (const k of changeKinds) metrics.directoryEntries.set({ table: k }, c[k]);
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

  const applied = () => {
    if (position) status.history = { system: position.system, timeline: position.timeline };
    if (position && opts.onApplied) {
      try {
        opts.onApplied(structuredClone(position));
      } catch (err) {
        logger.warn('onApplied failed', { error: errorMessage(err) });
      }
    }
  };

  async function fullLoad(c: pg.Client, reason: string): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await fullLoadOnce(c, reason);
      } catch (err) {
        // A long read on a standby may be cancelled when replay needs the rows it holds.
        if (sqlstateOf(err) !== sqlstate.serializationFailure || attempt >= 5 || stopped) throw err;
        logger.warn('full load cancelled by a recovery conflict; retrying', { attempt });
      }
    }
  }

  async function fullLoadOnce(c: pg.Client, reason: string): Promise<void> {
    const t0 = process.hrtime.bigint();
    const data: DirectoryData = emptyData();
    const times = aliasTimes();
    let head: ReadHead;
    let tail: Awaited<ReturnType<typeof loadedTail>>;
    try {
      head = (await openRead(c)).head;
      for (const kind of changeKinds) await loadKind(c, profile, kind, data, fetchSize, times);
      tail = await loadedTail(c, head.xmin);
      await endRead(c);
    } catch (err) {
      await abortRead(c);
      throw err;
    }
    if (!status.standby) probe.noteRead(head.xip);
    directory.replaceAll(data);
    expiry.replaceAll(times?.timed ?? new Map());
    timedKnown = true;
    position = {
      v: 1,
      system: head.system,
      timeline: head.timeline,
      server: status.host,
      xmin: head.xmin,
      xmax: head.xmax,
      seen: tail.seen,
      lastId: tail.last.id,
      lastXid: tail.last.xid,
      lastAt: tail.last.at,
      ...(status.standby ? {} : { open: head.xip }),
    };
    status.loaded = true;
    status.fullLoads++;
    metrics.directoryLoaded.set(1);
    metrics.fullReloads.inc({ reason });
    const seconds = secondsSince(t0);
    metrics.loadDuration.set(seconds);
    updateCounts();
    succeeded();
    applied();
    const counts = directory.counts();
    logger.info('directory loaded', {
      reason,
      seconds: seconds.toFixed(3),
      domains: counts.domain,
      alias_domains: counts.alias_domain,
      mailboxes: counts.mailbox,
      aliases: counts.alias,
    });
    first.resolve();
  }

  // The kinds whose change-log keys a join computes (a watch's key expression names another table).
  const joinedKindsOf = (p: Profile) => new Set((p.watches ?? []).filter((w) => /\{\{/.test(w.keyExpr)).map((w) => w.kind));
  let joinedKinds = joinedKindsOf(profile);

  /** Opens a read (with what `p` has not applied), noting first what the cheap probe (worthCatchingUp) will compare against. */
  async function openRead(c: pg.Client, p?: Position): Promise<OpenRead> {
    if (status.standby) {
      // After the doorbell, the read kept is the first whose mark shows the primary's
      // position replayed: the check and the read in one round trip. An earlier one is
      // given up (in the next one's round trip) and asked again a millisecond later, for
      // at most a poll interval.
      for (let abortOpen = false; ; abortOpen = true) {
        const r = await beginReadReplayed(c, p, abortOpen);
        seenReplay = r.probe.replayLsn;
        const target = replayTarget;
        if (target === undefined || lsnBytes(r.probe.replayLsn) >= target.lsn || Date.now() >= target.until || stopped) {
          replayTarget = undefined;
          return r;
        }
        await new Promise((res) => setTimeout(res, 1));
      }
    }
    if (probe.usable) {
      try {
        const r = await beginReadMarked(c, p);
        probe.marked(r.mark);
        return r;
      } catch (err) {
        // A role without SELECT on the sequence: catch up on every poll instead. Only that
        // refusal: one on the change log itself would fail the plain read as well.
        if (sqlstateOf(err) !== sqlstate.insufficientPrivilege || !/changes_id_seq/.test(errorMessage(err))) throw err;
        await abortRead(c);
        probe.giveUp();
        logger.warn('cannot read mailmapd.changes_id_seq; catching up on every poll', { error: errorMessage(err) });
      }
    }
    return beginRead(c, p);
  }

  /** The current rows of every key the changes name, by kind, in the open read. */
  async function rereadChanged(c: pg.Client, changes: ChangeRow[]): Promise<KeyReads> {
    // Keys exactly as PostgreSQL computed them: its lower() and JavaScript's fold()
    // differ outside ASCII (a C-ctype database leaves `Ä` alone), so the database
    // matches its own text, and only the directory folds.
    const byKind = new Map<ChangeKind, Set<string>>();
    for (const r of changes) {
      let set = byKind.get(r.kind);
      if (!set) byKind.set(r.kind, (set = new Set()));
      set.add(r.key!);
    }
    const reads: KeyReads = [];
    for (const [kind, set] of byKind) {
      const keys = [...set];
      reads.push([kind, keys, await rereadKeys(c, profile, kind, keys)]);
    }
    return reads;
  }

  /** A resumed daemon's aliases that have an end (the saved directory has no ends): re-read in the same snapshot. */
  async function rereadTimedAliases(c: pg.Client): Promise<KeyReads> {
    if (aliasTimes() === undefined) return [];
    const r = await c.query<{ a: string }>(`SELECT DISTINCT q.address AS a FROM (${profile.queries.alias}) q WHERE q.expires_at IS NOT NULL`);
    const keys = r.rows.map((x) => x.a);
    return keys.length === 0 ? [] : [['alias', keys, await rereadKeys(c, profile, 'alias', keys)]];
  }

  /** Applies everything one read found at once, so no lookup sees half a batch; returns the entries set. */
  function applyReads(reads: KeyReads): number {
    let n = 0;
    for (const [kind, keys, rows] of reads) {
      const data = emptyData();
      const times = kind === 'alias' ? aliasTimes() : undefined;
      const add = rowAdder(data, kind, times);
      for (const r of rows) add.add(r);
      add.finish();
      const folded = new Set(keys.map(fold));
      for (const k of folded) setEntry(directory, data, kind, k);
      if (times !== undefined) expiry.replaceKeys(folded, times.timed);
      metrics.changesApplied.inc({ table: kind }, folded.size);
      n += folded.size;
    }
    return n;
  }

  async function catchUp(c: pg.Client): Promise<void> {
    const p = position;
    if (p === undefined) return fullLoad(c, 'start');
    let changes: ChangeRow[];
    let readXids: Set<string>;
    let reads: KeyReads;
    let head: ReadHead;
    let ending: Promise<void>;
    try {
      const read = await openRead(c, p);
      head = read.head;
      const found = read.unapplied!;
      // A kind this daemon does not know was logged by a newer mailmapd's schema (hosts are
      // upgraded one at a time): it has nothing of that kind to update.
      changes = found.changes.filter((r) => known.has(r.kind));
      // All of them are read, the unknown kinds' too: the poll must not find them again.
      readXids = new Set(found.changes.map((r) => r.xid));
      const verdict = catchUpVerdict(p, { ...head, server: status.host, lastApplied: found.lastApplied }, changes, joinedKinds);
      if (verdict !== undefined) {
        await abortRead(c);
        if (verdict.reload === 'history') logger.warn('the database is not the history the directory was read from; reloading in full', { why: verdict.why });
        if (verdict.reload === 'behind') logger.warn('change log pruned past our position; reloading in full');
        return fullLoad(c, verdict.reload);
      }
      reads = await rereadChanged(c, changes);
      if (!timedKnown) reads.push(...(await rereadTimedAliases(c)));
      // Everything is read: the COMMIT of a read-only snapshot changes nothing of it, so
      // its round trip runs while the rows are applied (awaited below).
      ending = endRead(c);
      ending.catch(() => {});
    } catch (err) {
      await abortRead(c);
      throw err;
    }
    if (!status.standby) probe.noteRead(head.xip);
    const entries = applyReads(reads);
    timedKnown = true;
    for (const r of changes) metrics.syncLag.observe(Math.max(0, r.age));
    let last: ChangeRow | undefined;
    for (const r of changes) if (last === undefined || BigInt(r.id) > BigInt(last.id)) last = r;
    position = advance(p, { ...head, ...(status.standby ? {} : { open: head.xip }) }, readXids, last);
    if (entries > 0) {
      updateCounts();
      logger.debug('changes applied', { entries });
    }
    if (!status.loaded) {
      // Resumed from a saved position: the directory was loaded by whoever saved it.
      status.loaded = true;
      metrics.directoryLoaded.set(1);
      first.resolve();
    }
    succeeded();
    applied();
    try {
      await ending;
    } catch (err) {
      await abortRead(c);
      throw err;
    }
  }

  /** True when the cheap probe says a catch-up may find something. */
  async function worthCatchingUp(c: pg.Client): Promise<boolean> {
    if (status.standby) {
      // Both servers at once: a doorbell that rings meanwhile waits for one round trip, not two.
      const p = primary.client();
      const [s, top] = await Promise.all([
        standbyProbe(c),
        p
          ? primaryLsn(p).catch((err) => {
              primary.drop(err, p);
              return undefined;
            })
          : undefined,
      ]);
      const bytes = top !== undefined ? lsnBytes(top) - lsnBytes(s.replayLsn) : s.receiveLsn !== null ? lsnBytes(s.receiveLsn) - lsnBytes(s.replayLsn) : 0n;
      setLag(s.lagSeconds, Math.max(0, Number(bytes)));
      return s.replayLsn !== seenReplay;
    }
    if (!probe.ready || position === undefined) return true;
    return probe.changed(await primaryProbe(c, position));
  }

  function ring(): void {
    rang = true;
    wake?.();
  }

  /** Resolves at the next poll tick, NOTIFY or kick; rejects when the reader fails. */
  function waitForWork(c: pg.Client): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (kicked || rang || stopped) {
        resolve();
        return;
      }
      const timer = setTimeout(done, opts.pollIntervalMs);
      function done() {
        clearTimeout(timer);
        c.removeListener('error', fail);
        c.removeListener('end', ended);
        wake = undefined;
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

  /**
   * On a standby, after the primary's doorbell: what the primary has written by now, which
   * the next read waits for the standby to replay (openRead). Nothing tells a client when a
   * standby replays, so it is asked every millisecond for as long as it lags (a few ms): a
   * query that waited server-side would hold a snapshot that replay may have to wait for.
   */
  async function awaitReplay(): Promise<void> {
    const p = primary.client();
    if (!p) return;
    try {
      replayTarget = { lsn: lsnBytes(await primaryLsn(p)), until: Date.now() + opts.pollIntervalMs };
    } catch (err) {
      primary.drop(err, p);
    }
  }

  /** Reads a panel as the layout the database holds; a change of layout (an upgrade of the panel) reloads in full. */
  async function useLayout(c: pg.Client): Promise<void> {
    if (opts.profile.layouts === undefined) return;
    const chosen = await chooseLayout(c, opts.profile);
    if (chosen === profile) return;
    if (profile !== opts.profile) position = undefined;
    profile = chosen;
    joinedKinds = joinedKindsOf(profile);
    logger.info('panel layout', { schema: profile.name, layout: profile.layout ?? '' });
  }

  async function session(): Promise<void> {
    const t = await connectTarget(opts.databaseUrl, { applicationName: 'mailmapd', queryTimeoutMs });
    const c = t.client;
    reader = t;
    const server = `${t.host}:${t.port}`;
    if (status.host !== '' && status.host !== server) sm.server.reset();
    status.host = server;
    status.standby = t.inRecovery;
    sm.server.set({ host: server, role: t.inRecovery ? 'standby' : 'primary' }, 1);
    sm.standby.set(t.inRecovery ? 1 : 0);
    c.on('notification', (msg) => (msg.channel === COUNTS_CHANNEL ? opts.onCounts?.(msg.payload ?? '') : ring()));
    try {
      await useLayout(c);
      // A primary rings its own doorbell; a standby cannot LISTEN.
      if (!t.inRecovery) await c.query('LISTEN mailmapd');
      if (!t.inRecovery && opts.onCounts) await c.query(`LISTEN ${COUNTS_CHANNEL}`);
      else setLag(0, 0);
      setConnected(true);
      logger.info('connected to PostgreSQL', { host: server, standby: t.inRecovery, catch_up: position !== undefined });
      if (position !== undefined) metrics.catchups.inc();
      let mustCatchUp = true;
      for (;;) {
        if (mustCatchUp) {
          const pending = waiters;
          waiters = [];
          kicked = false;
          rang = false;
          try {
            await catchUp(c);
            status.catchups++;
            backoff.reset();
            for (const w of pending) w.resolve();
          } catch (err) {
            waiters.push(...pending);
            throw err;
          }
        }
        if (stopped) return;
        if (!t.inRecovery) await prune(c);
        else {
          const p = primary.client();
          if (p) await prune(p).catch((err) => primary.drop(err, p));
          primary.connect();
        }
        if (stopped) return;
        await waitForWork(c);
        if (stopped) return;
        if (kicked) mustCatchUp = true;
        else if (rang) {
          if (t.inRecovery) await awaitReplay();
          mustCatchUp = true;
        } else {
          // A poll tick: the probe is also the heartbeat that finds a hung connection.
          mustCatchUp = await worthCatchingUp(c);
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

  async function run(): Promise<void> {
    while (!stopped) {
      try {
        await session();
      } catch (err) {
        if (stopped) break;
        status.lastError = errorMessage(err);
        // The change log is missing: say what to run rather than only what failed.
        if (sqlstateOf(err) === sqlstate.undefinedTable && /mailmapd\./.test(status.lastError)) {
          status.lastError += isNative(profile) ? ' (run `mailmapd migrate`)' : ' (run `mailmapd triggers install`)';
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
      wake?.();
      cancelSleep?.();
      const r = reader;
      if (r) destroyClient(r.client);
      primary.close();
      // A connect() in flight may not notice; do not let it hold the shutdown.
      await Promise.race([loop, new Promise((res) => setTimeout(res, 3000).unref())]);
      for (const w of waiters) w.reject(new Error('sync stopped'));
      waiters = [];
      if (!status.loaded) first.reject(new Error('sync stopped before the first load'));
    },
    status: () => ({ ...status }),
    inSync: () => isInSync(status, Date.now(), opts.pollIntervalMs, maxLagMs),
    firstLoad: () => first.promise,
    kick() {
      return new Promise<void>((resolve, reject) => {
        waiters.push({ resolve, reject });
        kicked = true;
        wake?.();
      });
    },
  };
}
