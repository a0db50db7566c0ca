// Last logins and quota usage on their way to the primary. Callers only put values in a
// bounded in-memory buffer keyed by mailbox — the newest value per mailbox replaces the
// one waiting — so a login or a dict commit never waits for PostgreSQL. A timer flushes
// the buffer in batches, one statement per batch (writeback/statements.ts), over the
// writer's own single connection. While the primary is unreachable the values stay in the
// buffer and go out once it answers again; what the bound turns away is counted.

import { createBackoff } from '../backoff.js';
import { isIP } from 'node:net';
import type pg from 'pg';
import { connectTarget } from '../db/target.js';
import { parseConnInfo } from '../db/conninfo.js';
import { isConnectionLoss, sqlstateOf } from '../db/sqlstate.js';
import { errorMessage, type Logger } from '../log.js';
import type { WriteStatements } from './statements.js';
import { secondsSince } from '../metrics.js';
import type { WritebackMetrics } from '../metrics.js';

/**
 * Another kind of value written over the same connection, kept and batched by its owner
 * (the policy service's send counts). flush() gives back what it could not write before it
 * rejects.
 */
export interface WriteSource {
  kind: string;
  /** Something to write now (values, or work that is due). */
  pending(): number;
  flush(c: pg.Client): Promise<void>;
}

export interface WriterOptions {
  /** The primary; undefined: nothing is written (every value is dropped and counted). */
  url: string | undefined;
  /**
   * When the URL was not named as the primary explicitly: check on each connect that it
   * is not a standby, and write nothing if it is.
   */
  checkRecovery: boolean;
  statements: WriteStatements;
  logger: Logger;
  metrics: WritebackMetrics;
  /** Milliseconds between two recorded logins of the same mailbox. */
  lastLoginIntervalMs: number;
  /** Values held at most (per kind) while they wait to be written. */
  maxPending: number;
  flushIntervalMs: number;
  reconnectMaxDelayMs: number;
  /** Rows in one statement. */
  batchRows?: number;
  /** How often a standby is asked again whether it was promoted (default 30 s). */
  standbyRecheckMs?: number;
  /** Other values written after the last logins and quota usages (settable later: addSource). */
  sources?: WriteSource[];
  /**
   * The cluster and timeline the directory was last read on (the sync's), undefined until
   * known. Given, nothing is written before it is known, nor to a primary of that cluster
   * on an older timeline: after a failover the old primary, started again, still takes
   * writes, but the current primary is the promoted one.
   */
  history?: () => History | undefined;
}

export interface History {
  system: string;
  timeline: number;
}

// What waits is kept as the caller gave it (times as Date.now() numbers, the address as
// passed): turning it into Dates and checked addresses is left to the flush, once per row
// written, rather than done on every login or commit.
interface Login {
  at: number;
  service: string;
  remoteIp: string | undefined;
}

/** A count for a bigint column: decimal text (exact past 2^53) or a number. */
type Count = string | number;

interface Usage {
  bytes: Count | null;
  messages: Count | null;
  at: number;
}

export interface Writer {
  /** A successful login; recorded at most once per last_login_interval per mailbox. */
  login(address: string, service: string, remoteIp: string | undefined): void;
  /** What Dovecot reports of a mailbox's usage; either figure may be absent. */
  usage(address: string, bytes: Count | undefined, messages: Count | undefined): void;
  /** Writes what is buffered now; resolves when done or failed (the values stay then). */
  flush(): Promise<void>;
  /** Values waiting to be written. */
  pending(): number;
  /** Flushes once more (bounded by `graceMs`) and closes the connection. */
  stop(graceMs?: number): Promise<void>;
  /** Writes another source's values too, from the next flush on. */
  addSource(source: WriteSource): void;
}

/** A client address PostgreSQL's inet takes, or null (a unix socket's "", a name). */
const ipOrNull = (ip: string | undefined): string | null => (ip !== undefined && isIP(ip) !== 0 ? ip : null);

/** How often a standby is asked again whether it was promoted. */
const STANDBY_RECHECK_MS = 30_000;

// A primary's timeline is the first part of its current WAL file's name (the sync reads it so).
const historySql = `SELECT (SELECT system_identifier::text FROM pg_control_system()) AS system,
  CASE WHEN pg_is_in_recovery() THEN NULL ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END AS timeline`;

/** A server's cluster and, on a primary, its timeline. */
interface Server {
  system: string;
  timeline: number | null;
}

/** Why `server` is not the current primary by `known`, or undefined when it may be written to. */
function behind(server: Server, known: History | undefined): string | undefined {
  if (known === undefined) return 'the current primary is not known yet';
  if (server.system === known.system && server.timeline !== null && server.timeline < known.timeline) {
    return `timeline ${server.timeline}, older than ${known.timeline}: a primary a failover left behind`;
  }
  return undefined;
}

// Long because it is one closure over the writer's state (the buffers, the connection, the
// backoff); each step inside — put, connect, writeBatch, flushOnce — is a short function.
export function createWriter(opts: WriterOptions): Writer {
  const { logger, metrics } = opts;
  const batchRows = opts.batchRows ?? 5000;
  let logins = new Map<string, Login>();
  let usages = new Map<string, Usage>();
  /** When each mailbox's last recorded login happened (ms), for the interval. */
  const recorded = new Map<string, number>();
  let client: pg.Client | undefined;
  let connecting: Promise<pg.Client | undefined> | undefined;
  let flushing: Promise<void> | undefined;
  let failures = 0;
  const backoff = createBackoff(opts.reconnectMaxDelayMs);
  let retryAt = 0;
  let standby = false;
  const sources: WriteSource[] = [...(opts.sources ?? [])];
  const failingSources = new Set<string>();

  const pendingCount = () => logins.size + usages.size;
  const sourcesDue = () => sources.some((s) => s.pending() > 0);
  const updateGauge = () => metrics.pending.set(pendingCount());

  const timer = setInterval(() => void (standby ? connect() : flush()), opts.flushIntervalMs);
  timer.unref();
  // The interval map only needs mailboxes seen within the interval.
  const sweep = setInterval(
    () => {
      const cutoff = Date.now() - opts.lastLoginIntervalMs;
      for (const [a, t] of recorded) if (t <= cutoff) recorded.delete(a);
    },
    Math.max(1000, opts.lastLoginIntervalMs),
  );
  sweep.unref();

  function put<T>(map: Map<string, T>, kind: 'last_login' | 'quota_usage', address: string, value: T): boolean {
    if (opts.url === undefined || standby) {
      metrics.dropped.inc({ kind, reason: 'no_primary' });
      return false;
    }
    // The size first: the lookup is only needed once the buffer is full.
    if (map.size >= opts.maxPending && !map.has(address)) {
      metrics.dropped.inc({ kind, reason: 'buffer_full' });
      return false;
    }
    map.set(address, value);
    updateGauge();
    return true;
  }

  /** The server the directory's history says is current: the client and its timeline, or why none is. */
  async function current(c: pg.Client): Promise<Server | undefined | string> {
    if (!opts.history) return undefined;
    const r = await c.query<Server>(historySql);
    const server = r.rows[0]!;
    return behind(server, opts.history()) ?? server;
  }

  /**
   * A connection to the current primary: each host of the URL in order (read-write ones
   * only, unless the URL names the primary explicitly), the first that the directory's
   * history calls current. Undefined, with why, when only older primaries answer.
   */
  async function connectCurrent(url: string): Promise<{ c?: pg.Client; server?: Server; held?: string; why?: string }> {
    const target = { applicationName: 'mailmapd-writeback', connectTimeoutMs: 5000, queryTimeoutMs: 30_000 };
    let why: string | undefined;
    let held: string | undefined;
    for (const h of parseConnInfo(url).hosts) {
      let c: pg.Client | undefined;
      try {
        c = (await connectTarget(h.url, opts.checkRecovery ? { ...target, targetSessionAttrs: 'read-write' } : target)).client;
        const ok = await current(c);
        if (typeof ok !== 'string') return { c, ...(ok ? { server: ok } : {}) };
        held = `${h.host}:${h.port}: ${ok}`;
      } catch (err) {
        why ??= errorMessage(err);
      }
      await c?.end().catch(() => {});
    }
    return held !== undefined ? { held } : { why: why ?? 'no host' };
  }

  /** The server written to, as it said when connected (with a history to compare with). */
  let connected: Server | undefined;
  let heldWhy: string | undefined;

  async function connect(): Promise<pg.Client | undefined> {
    if (client) return client;
    if (Date.now() < retryAt) return undefined;
    if (!connecting) {
      connecting = (async () => {
        // database_url may list several hosts: the primary among them is the one to write
        // to; when none is (only standbys answer), the check below says so.
        const target = { applicationName: 'mailmapd-writeback', connectTimeoutMs: 5000, queryTimeoutMs: 30_000 };
        const url = opts.url ?? '';
        let c: pg.Client | undefined;
        try {
          const found = await connectCurrent(url);
          if (found.held !== undefined) {
            // A primary answers but is not (known to be) the current one: hold the values.
            if (heldWhy !== found.held)
              logger.warn('write-back: holding values until the current primary is known', { why: found.held, pending: pendingCount() });
            heldWhy = found.held;
            retryAt = Date.now() + Math.min(opts.reconnectMaxDelayMs, opts.flushIntervalMs);
            return undefined;
          }
          heldWhy = undefined;
          c = found.c ?? (opts.checkRecovery ? (await connectTarget(url, target)).client : undefined);
          if (!c) throw new Error(found.why);
          connected = found.server;
          const conn = c;
          conn.on('error', (err) => {
            logger.warn('write-back connection lost', { error: errorMessage(err) });
            if (client === conn) client = undefined;
          });
          if (opts.checkRecovery) {
            const r = await c.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r');
            if (r.rows[0]?.r === true) {
              if (!standby) logger.warn('database_url reaches a standby and database_primary_url is not set: last logins and quota usage are not written', {});
              standby = true;
              logins.clear();
              usages.clear();
              updateGauge();
              // Asked again now and then: a promoted standby is a primary.
              retryAt = Date.now() + (opts.standbyRecheckMs ?? STANDBY_RECHECK_MS);
              await c.end().catch(() => {});
              return undefined;
            }
            if (standby) logger.info('database_url now reaches a primary: writing last logins and quota usage again', {});
            standby = false;
          }
          client = c;
          metrics.connected.set(1);
          if (failures > 0) logger.info('write-back connection restored', { pending: pendingCount() });
          failures = 0;
          backoff.reset();
          return c;
        } catch (err) {
          failures++;
          retryAt = Date.now() + backoff.next();
          if (failures === 1) logger.warn('write-back: cannot reach the primary; holding values', { error: errorMessage(err), pending: pendingCount() });
          await c?.end().catch(() => {});
          return undefined;
        } finally {
          connecting = undefined;
        }
      })();
    }
    return connecting;
  }

  /** A failover since the connection was made: the server it reaches is no longer the current primary. */
  function superseded(): boolean {
    return connected !== undefined && behind(connected, opts.history?.()) !== undefined;
  }

  /** Puts back what a failed batch held, unless a newer value arrived meanwhile. */
  function restore<T>(map: Map<string, T>, kind: 'last_login' | 'quota_usage', rows: [string, T][]): void {
    for (const [a, v] of rows) if (!map.has(a)) put(map, kind, a, v);
  }

  async function writeBatch(c: pg.Client, kind: 'last_login' | 'quota_usage', rows: [string, Login][] | [string, Usage][]): Promise<void> {
    const started = process.hrtime.bigint();
    if (kind === 'last_login') {
      const r = rows as [string, Login][];
      await c.query(opts.statements.lastLogins, [
        r.map((x) => x[0]),
        r.map((x) => new Date(x[1].at)),
        r.map((x) => x[1].service),
        r.map((x) => ipOrNull(x[1].remoteIp)),
      ]);
    } else {
      const r = rows as [string, Usage][];
      await c.query(opts.statements.quotaUsage, [r.map((x) => x[0]), r.map((x) => x[1].bytes), r.map((x) => x[1].messages), r.map((x) => new Date(x[1].at))]);
    }
    metrics.written.inc({ kind }, rows.length);
    metrics.batchSeconds.observe(secondsSince(started));
  }

  /** A failed write: a connection error keeps the values for later and drops the connection. */
  async function writeFailed(c: pg.Client, err: unknown): Promise<void> {
    if (client === c) client = undefined;
    metrics.connected.set(0);
    failures++;
    retryAt = Date.now() + backoff.next();
    logger.warn('write-back failed; holding values', { error: errorMessage(err), pending: pendingCount() });
    await c.end().catch(() => {});
  }

  async function flushSources(c: pg.Client): Promise<void> {
    for (const s of sources) {
      if (s.pending() === 0) continue;
      try {
        await s.flush(c);
        metrics.written.inc({ kind: s.kind });
        failingSources.delete(s.kind);
      } catch (err) {
        const code = sqlstateOf(err);
        if (code !== undefined && !isConnectionLoss(code) && client === c) {
          // Said once until it works again (a table not migrated yet fails every time).
          if (!failingSources.has(s.kind)) logger.error('write-back statement failed', { kind: s.kind, error: errorMessage(err) });
          failingSources.add(s.kind);
          continue;
        }
        await writeFailed(c, err);
        return;
      }
    }
  }

  async function flushOnce(): Promise<void> {
    if (pendingCount() === 0 && !sourcesDue()) return;
    if (client && superseded()) {
      logger.warn('write-back: the directory is now read on a newer timeline; reconnecting to the current primary', {});
      const old = client;
      client = undefined;
      metrics.connected.set(0);
      await old.end().catch(() => {});
    }
    const c = await connect();
    if (!c) return;
    if (pendingCount() === 0) {
      await flushSources(c);
      return;
    }
    const takenLogins = [...logins];
    const takenUsages = [...usages];
    logins = new Map();
    usages = new Map();
    updateGauge();
    const batches: [kind: 'last_login' | 'quota_usage', rows: [string, Login][] | [string, Usage][]][] = [];
    for (let i = 0; i < takenLogins.length; i += batchRows) batches.push(['last_login', takenLogins.slice(i, i + batchRows)]);
    for (let i = 0; i < takenUsages.length; i += batchRows) batches.push(['quota_usage', takenUsages.slice(i, i + batchRows)]);
    for (let i = 0; i < batches.length; i++) {
      const [kind, rows] = batches[i]!;
      try {
        await writeBatch(c, kind, rows);
      } catch (err) {
        const code = sqlstateOf(err);
        // A connection error keeps the values for later; an error of the statement itself
        // (a missing table, a constraint) would fail the same way forever: drop that batch.
        const statementError = code !== undefined && !isConnectionLoss(code) && client === c;
        if (statementError) {
          metrics.dropped.inc({ kind, reason: 'write_error' }, rows.length);
          logger.error('write-back statement failed; values dropped', { kind, rows: rows.length, error: errorMessage(err) });
          continue;
        }
        for (const [k, r] of batches.slice(i)) {
          if (k === 'last_login') restore(logins, k, r as [string, Login][]);
          else restore(usages, k, r as [string, Usage][]);
        }
        await writeFailed(c, err);
        return;
      }
    }
    await flushSources(c);
  }

  function flush(): Promise<void> {
    if (!flushing) {
      flushing = flushOnce().finally(() => {
        flushing = undefined;
      });
    }
    return flushing;
  }

  if (opts.url !== undefined) {
    // Connect early: a standby is found out (and said) at start, not at the first login.
    void connect();
  }

  return {
    // On every successful login: one clock read and one map lookup when the mailbox was
    // recorded within the interval (nearly always); otherwise one small object and a map set
    // or two. No Date, no address parsing, no promise here.
    login(address, service, remoteIp) {
      const now = Date.now();
      const last = recorded.get(address);
      if (last !== undefined && now - last < opts.lastLoginIntervalMs) return;
      const kept = put(logins, 'last_login', address, { at: now, service: service === '' ? 'unknown' : service, remoteIp });
      // With no interval (0) there is nothing to remember between logins.
      if (kept && opts.lastLoginIntervalMs > 0) recorded.set(address, now);
    },
    usage(address, bytes, messages) {
      const prev = usages.get(address);
      put(usages, 'quota_usage', address, {
        bytes: bytes ?? prev?.bytes ?? null,
        messages: messages ?? prev?.messages ?? null,
        at: Date.now(),
      });
    },
    flush,
    pending: pendingCount,
    addSource: (source) => void sources.push(source),
    async stop(graceMs = 5000) {
      clearInterval(timer);
      clearInterval(sweep);
      retryAt = 0;
      let t: NodeJS.Timeout | undefined;
      await Promise.race([flush(), new Promise((r) => (t = setTimeout(r, graceMs)))]);
      clearTimeout(t);
      if (pendingCount() > 0) logger.warn('stopping with values not written', { pending: pendingCount() });
      const c = client;
      client = undefined;
      await c?.end().catch(() => {});
      metrics.connected.set(0);
    },
  };
}
