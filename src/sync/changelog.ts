// The SQL the sync runs, one operation per function. The same reads serve a primary and a
// hot standby; where they differ (how to notice a change cheaply, how far behind the
// server is) the two functions stand side by side. The probes that run on every poll are
// named (prepared once per connection): the server then neither parses nor plans them
// again, which halves what an idle poll costs it.

import type pg from 'pg';
import type { ChangeKind, DirectoryData } from '../directory/directory.js';
import type { Position } from './position.js';
import { keyColumn, type Profile } from './profile.js';
import { rowAdder, type AliasTimes } from './rows.js';

const keyChunk = 5000;

/** The server's identity and the open REPEATABLE READ snapshot's bounds. */
export interface ReadHead {
  system: string;
  timeline: number;
  xmin: string;
  xmax: string;
  /** In-progress transactions of the snapshot: empty on a standby, whatever is open. */
  xip: string[];
  prunedXid: string;
}

// The server's identity and the read's snapshot. A standby's checkpoint timeline lags a
// promotion upstream; its WAL receiver knows. A primary's current WAL file name starts
// with its timeline.
const headSql = `SELECT (SELECT system_identifier::text FROM pg_control_system()) AS system,
            CASE WHEN pg_is_in_recovery()
                 THEN greatest((SELECT max(received_tli) FROM pg_stat_wal_receiver), (SELECT timeline_id FROM pg_control_checkpoint()))
                 ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END AS timeline,
            pg_current_snapshot()::text AS snap,
            (SELECT pruned_xid::text FROM mailmapd.sync_state) AS pruned`;

// BEGIN and the first statement in one round trip: the transaction keeps that statement's snapshot.
const beginSql = `BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; ${headSql}`;

type HeadRow = { system: string; timeline: number; snap: string; pruned: string | null };

function readHead(row: HeadRow): ReadHead {
  const [xmin, xmax, xip] = row.snap.split(':') as [string, string, string];
  return { system: row.system, timeline: row.timeline, xmin, xmax, xip: xip === '' ? [] : xip.split(','), prunedXid: row.pruned ?? '0' };
}

/** The rows of each SELECT of a multi-statement query, in order (BEGIN and COMMIT give none). */
async function selects(c: pg.ClientBase, text: string): Promise<unknown[][]> {
  const results = (await c.query(text)) as unknown as pg.QueryResult[];
  return results.filter((r) => r.command === 'SELECT').map((r) => r.rows);
}

/** A read just opened: what its snapshot is and, for a catch-up, what the position has not applied. */
export interface OpenRead {
  head: ReadHead;
  /** When a position was given. */
  unapplied?: Unapplied;
}

// The read's BEGIN, head and, for a catch-up, its first question, in one round trip.
const beginFor = (p?: Position) => (p ? `${beginSql}; ${unappliedSql(p)}` : beginSql);

function opened(head: unknown[], unapplied: unknown[] | undefined): OpenRead {
  return { head: readHead(head[0] as HeadRow), ...(unapplied ? { unapplied: readUnapplied(unapplied as UnappliedRow[]) } : {}) };
}

/** Opens the read: a REPEATABLE READ READ ONLY transaction, what its snapshot is, and what position `p` has not applied. */
export async function beginRead(c: pg.ClientBase, p?: Position): Promise<OpenRead> {
  const [head, unapplied] = await selects(c, beginFor(p));
  return opened(head!, unapplied);
}

// What a mark reads must be read before the read's snapshot is taken, so that the read
// covers it. Statements of an explicit READ COMMITTED transaction each take their own
// snapshot, in order, whatever default_transaction_isolation says; its COMMIT ends it
// before the read's BEGIN. Mark and read thus cost one round trip.
const markThen = (p: Position | undefined, ...statements: string[]) =>
  `BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY; ${statements.join('; ')}; COMMIT; ${beginFor(p)}`;

export interface PrimaryMark {
  lastId: string;
  nextXid: string;
}

/**
 * On a primary: the change-log sequence, then the next transaction id, in that order, so
 * every change row numbered up to `lastId` belongs to a transaction below `nextXid`
 * (sequences are not transactional: rows of open transactions count); then the read.
 * Needs SELECT on mailmapd.changes_id_seq.
 */
export async function beginReadMarked(c: pg.ClientBase, p?: Position): Promise<OpenRead & { mark: PrimaryMark }> {
  const [l, m, head, unapplied] = await selects(
    c,
    markThen(p, 'SELECT last_value::text AS l FROM mailmapd.changes_id_seq', 'SELECT pg_snapshot_xmax(pg_current_snapshot())::text AS m'),
  );
  return { ...opened(head!, unapplied), mark: { lastId: (l![0] as { l: string }).l, nextXid: (m![0] as { m: string }).m } };
}

/**
 * On a standby: how far it has replayed (standbyProbe), then the read, which sees at least
 * that much. `abortOpen`: a read of this connection is still open and is given up first,
 * in the same round trip.
 */
export async function beginReadReplayed(c: pg.ClientBase, p?: Position, abortOpen = false): Promise<OpenRead & { probe: StandbyProbe }> {
  const [probe, head, unapplied] = await selects(c, `${abortOpen ? 'ROLLBACK; ' : ''}${markThen(p, standbyProbeSql)}`);
  return { ...opened(head!, unapplied), probe: readStandbyProbe(probe![0] as StandbyProbeRow) };
}

export async function endRead(c: pg.ClientBase): Promise<void> {
  await c.query('COMMIT');
}

export async function abortRead(c: pg.ClientBase): Promise<void> {
  await c.query('ROLLBACK').catch(() => {});
}

/** Reads one kind whole through a cursor, `fetchSize` rows at a time, into `data`. */
export async function loadKind(
  c: pg.ClientBase,
  profile: Profile,
  kind: ChangeKind,
  data: DirectoryData,
  fetchSize: number,
  times?: AliasTimes,
): Promise<void> {
  const cursor = `mailmapd_load_${kind}`;
  const table = kind === 'mailbox' ? data.mailboxes.raw : kind === 'alias' ? data.aliases.raw : undefined;
  if (table !== undefined) table.reserve(table.size + (await plannedRows(c, profile.queries[kind])));
  await c.query(`DECLARE ${cursor} NO SCROLL CURSOR FOR ${profile.queries[kind]}`);
  const rows = rowAdder(data, kind, times);
  const fetch = () => c.query({ text: `FETCH ${fetchSize} FROM ${cursor}`, rowMode: 'array' });
  // The next FETCH is asked before this one's rows are added, so that the server reads
  // while this process builds: one after the other, each waited for the other, and the
  // load took twice as long on two cores. At most two batches are held at once.
  let next = fetch();
  try {
    for (;;) {
      const r = await next;
      const more = r.rows.length === fetchSize;
      if (more) next = fetch();
      for (const row of r.rows as unknown[][]) rows.add(row);
      if (!more) break;
    }
  } catch (err) {
    next.catch(() => {}); // a row that failed leaves a FETCH in flight: its end is not news
    throw err;
  }
  rows.finish();
  table?.fit();
  await c.query(`CLOSE ${cursor}`);
}

/**
 * PostgreSQL's estimate of the rows `query` returns (0 if it gives none): a big table is
 * sized for them before the load, so that ten million rows do not grow its index fourteen
 * times over, each time hashing every key again. The planner's guess, not a count: a count
 * would read the rows twice. (An alias of several rows is one entry: a guess too high is
 * shrunk back by fit().)
 */
async function plannedRows(c: pg.ClientBase, query: string): Promise<number> {
  const r = await c.query<{ 'QUERY PLAN': [{ Plan?: { 'Plan Rows'?: unknown } }] }>(`EXPLAIN (FORMAT JSON) ${query}`);
  const rows = Number(r.rows[0]?.['QUERY PLAN']?.[0]?.Plan?.['Plan Rows']);
  return Number.isFinite(rows) && rows > 0 ? rows : 0;
}

/** The transactions at or above `xmin` whose changes the open snapshot sees, and the newest change row. */
export async function loadedTail(c: pg.ClientBase, xmin: string): Promise<{ seen: string[]; last: ChangeStamp }> {
  const s = await c.query<{ x: string }>('SELECT DISTINCT xid::text AS x FROM mailmapd.changes WHERE xid >= $1::xid8', [xmin]);
  const l = await c.query<ChangeStamp>(`SELECT id::text AS id, xid::text AS xid, ${atText} AS at FROM mailmapd.changes ORDER BY id DESC LIMIT 1`);
  return { seen: s.rows.map((r) => r.x), last: l.rows[0] ?? { id: '0', xid: '0', at: '' } };
}

export interface ChangeStamp {
  id: string;
  xid: string;
  at: string;
}

// Microseconds since the epoch, independent of the session's time zone and DateStyle.
const atText = `(extract(epoch FROM at) * 1000000)::bigint::text`;

export interface ChangeRow {
  id: string;
  at: string;
  xid: string;
  kind: ChangeKind;
  /** Exactly as the trigger computed it: matched against the profile's key column as is. */
  key: string | null;
  age: number;
}

const changeColumns = `id::text AS id, xid::text AS xid, ${atText} AS at, kind, key, extract(epoch FROM clock_timestamp() - at)::float8 AS age`;

export interface Unapplied {
  changes: ChangeRow[];
  /** The newest change row the position applied, as the server has it now; undefined when gone. */
  lastApplied: ChangeStamp | undefined;
}

type UnappliedRow = ChangeRow & { applied: boolean };

/** A decimal xid8 or bigint of a position, for SQL text: checked, never merely quoted. */
function decimal(v: string): string {
  if (!/^\d{1,20}$/.test(v)) throw new Error(`not a decimal number: ${JSON.stringify(v)}`);
  return v;
}

/**
 * Every change row the position has not applied yet that the open snapshot sees; and who
 * wrote the newest row the position did apply and when, which tells whether this is still
 * its history. Part of the read's first round trip (a multi-statement query takes no
 * parameters), so the position's numbers are written in, each checked to be decimal.
 */
function unappliedSql(p: Position): string {
  const seen = `'{${p.seen.map(decimal).join(',')}}'::xid8[]`;
  return `SELECT ${changeColumns}, false AS applied FROM mailmapd.changes WHERE xid >= '${decimal(p.xmin)}'::xid8 AND xid <> ALL(${seen})
     UNION ALL
     SELECT ${changeColumns}, true FROM mailmapd.changes WHERE id = ${decimal(p.lastId)}`;
}

function readUnapplied(rows: UnappliedRow[]): Unapplied {
  const changes: ChangeRow[] = [];
  let lastApplied: ChangeStamp | undefined;
  for (const { applied, ...row } of rows) {
    if (applied) lastApplied = { id: row.id, xid: row.xid, at: row.at };
    else changes.push(row);
  }
  return { changes, lastApplied };
}

/** The profile's rows for `keys` (as the change log gave them), in array mode. */
export async function rereadKeys(c: pg.ClientBase, profile: Profile, kind: ChangeKind, keys: string[]): Promise<unknown[][]> {
  const rows: unknown[][] = [];
  for (let i = 0; i < keys.length; i += keyChunk) {
    const r = await c.query({
      text: `SELECT * FROM (${profile.queries[kind]}) q WHERE q.${keyColumn[kind]} = ANY($1::text[])`,
      values: [keys.slice(i, i + keyChunk)],
      rowMode: 'array',
    });
    for (const row of r.rows as unknown[][]) rows.push(row);
  }
  return rows;
}

/**
 * The cheap poll on a primary: the sequence, the transactions in progress now, and whether
 * a change row the position has not applied is visible now. The sequence numbers a row at
 * INSERT, not at COMMIT, and a snapshot's xip leaves out the running transactions at or
 * above its xmax: a transaction that wrote its row before the last read and commits after
 * it may move nothing the first two show. So the poll also asks the catch-up's own
 * question, over the rows of transactions at or above the position's xmin only (the
 * oldest one running at the last read), through the xid index, never the whole log.
 */
export async function primaryProbe(c: pg.ClientBase, p: Position): Promise<{ lastId: string; xmin: string; xip: Set<string>; unapplied: boolean }> {
  const r = await c.query<{ l: string; snap: string; u: boolean }>({
    name: 'mailmapd_primary_probe',
    text: `SELECT (SELECT last_value::text FROM mailmapd.changes_id_seq) AS l, pg_current_snapshot()::text AS snap,
                  EXISTS (SELECT 1 FROM mailmapd.changes WHERE xid >= $1::xid8 AND xid <> ALL($2::xid8[])) AS u`,
    values: [decimal(p.xmin), p.seen.map(decimal)],
  });
  const [xmin, , xip] = r.rows[0]!.snap.split(':') as [string, string, string];
  return { lastId: r.rows[0]!.l, xmin, xip: new Set(xip === '' ? [] : xip.split(',')), unapplied: r.rows[0]!.u };
}

export interface StandbyProbe {
  replayLsn: string;
  receiveLsn: string | null;
  /** Seconds behind: 0 when everything received is replayed. */
  lagSeconds: number;
}

const standbyProbeSql = `SELECT pg_is_in_recovery() AS rec, pg_last_wal_replay_lsn()::text AS replay, pg_last_wal_receive_lsn()::text AS receive,
            CASE WHEN pg_last_wal_receive_lsn() IS NOT NULL AND pg_last_wal_receive_lsn() <= pg_last_wal_replay_lsn() THEN 0
                 ELSE coalesce(extract(epoch FROM now() - pg_last_xact_replay_timestamp()), 0) END::float8 AS lag`;

type StandbyProbeRow = { rec: boolean; replay: string; receive: string | null; lag: number | null };

function readStandbyProbe(row: StandbyProbeRow): StandbyProbe {
  // Promoted: its replay position stops moving while it takes writes; read it as a primary.
  if (!row.rec) throw new Error('the standby was promoted; reconnecting to read it as a primary');
  return { replayLsn: row.replay, receiveLsn: row.receive, lagSeconds: Math.max(0, row.lag ?? 0) };
}

/** The cheap poll on a standby: how far it has replayed. A commit moves it; nothing else needs reading until it does. */
export async function standbyProbe(c: pg.ClientBase): Promise<StandbyProbe> {
  const r = await c.query<StandbyProbeRow>({ name: 'mailmapd_standby_probe', text: standbyProbeSql });
  return readStandbyProbe(r.rows[0]!);
}

/** The primary's current WAL position: a standby that replayed past it has every commit made so far. */
export async function primaryLsn(c: pg.ClientBase): Promise<string> {
  const r = await c.query<{ lsn: string }>({ name: 'mailmapd_primary_lsn', text: 'SELECT pg_current_wal_lsn()::text AS lsn' });
  return r.rows[0]!.lsn;
}

/** An LSN (`16/B374D848`) as a number of bytes. */
export function lsnBytes(lsn: string): bigint {
  const [hi, lo] = lsn.split('/') as [string, string];
  return (BigInt(`0x${hi}`) << 32n) + BigInt(`0x${lo}`);
}

/** The oldest transaction still running anywhere: a horizon for a later pruneChanges. */
export async function pruneHorizon(c: pg.ClientBase): Promise<string> {
  const r = await c.query<{ x: string }>('SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS x');
  return r.rows[0]!.x;
}

/**
 * Deletes change rows older than the retention whose transaction is below `horizon`, a
 * pruneHorizon() taken a while ago (and below the oldest transaction running now), and
 * records the highest pruned id. Every daemon that caught up since the horizon was taken
 * read with an xmin at or above it, so nothing it has not applied is deleted; and an
 * idle-in-transaction session holds pruning back instead of pushing every daemon into
 * full reloads.
 */
export async function pruneChanges(c: pg.ClientBase, retentionSeconds: number, horizon: string): Promise<number> {
  const r = await c.query<{ n: string }>(
    `WITH gone AS (
       DELETE FROM mailmapd.changes
        WHERE at < clock_timestamp() - make_interval(secs => $1)
          AND xid < $2::xid8
          AND xid < pg_snapshot_xmin(pg_current_snapshot())
       RETURNING xid),
     top AS (SELECT max(xid::text::numeric) AS x, count(*) AS n FROM gone),
     upd AS (
       UPDATE mailmapd.sync_state SET pruned_xid = greatest(pruned_xid, ((SELECT x FROM top) + 1)::text::xid8)
        WHERE (SELECT n FROM top) > 0)
     SELECT n::text AS n FROM top`,
    [retentionSeconds, horizon],
  );
  return Number(r.rows[0]?.n ?? 0);
}

/** Rows in the change log and the age of the oldest, for the metrics. */
export async function changeLogStats(c: pg.ClientBase): Promise<{ rows: number; oldestSeconds: number }> {
  const r = await c.query<{ n: string; age: number | null }>(
    'SELECT count(*)::text AS n, extract(epoch FROM clock_timestamp() - min(at))::float8 AS age FROM mailmapd.changes',
  );
  return { rows: Number(r.rows[0]!.n), oldestSeconds: Math.max(0, r.rows[0]!.age ?? 0) };
}
