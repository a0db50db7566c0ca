// Where the directory stands in the database's history. Not a snapshot: on a standby
// pg_current_snapshot() lists no in-progress transactions, so "not visible in the previous
// snapshot" would call an open transaction seen and lose its change when it commits.
// Instead: `xmin`, below which every transaction had finished when the directory was
// last read, plus `seen`, the transactions at or above it whose changes are already
// applied. Every other transaction's change-log rows are still to be read. The server
// fields say which history the position belongs to; another one means a full reload.

export interface Position {
  v: 1;
  /** pg_control_system().system_identifier: another cluster (a restore, a dump) differs. */
  system: string;
  /** The timeline read on: a promotion starts a new one. */
  timeline: number;
  /** `host:port` the directory was read from. */
  server: string;
  /** xid8 values as decimal strings (JSON has no 64-bit integers). */
  xmin: string;
  /** The previous read's xmax: a transaction below it that is not yet applied was open then. */
  xmax: string;
  seen: string[];
  /** On a primary, the transactions still open at the last read (a standby cannot tell):
   *  only those may have had change rows pruned before the directory saw them. */
  open?: string[];
  /** The newest change-log row applied, with its transaction, "0" when none: on another
   *  history the same id belongs to another transaction, or is missing though not pruned. */
  lastId: string;
  lastXid: string;
  /** That row's `at`, to the microsecond: a copy of the database writes the same ids and
   *  transaction numbers again, but not at the same instants. */
  lastAt: string;
}

export interface ServerIdentity {
  system: string;
  timeline: number;
  server: string;
}

/** The position after reading the change log in a snapshot whose xmin/xmax are given. */
export function advance(
  prev: Position,
  snap: { xmin: string; xmax: string; open?: string[] },
  applied: Iterable<string>,
  last?: { id: string; xid: string; at: string },
): Position {
  const xmin = BigInt(snap.xmin);
  const seen = new Set<string>();
  for (const x of prev.seen) if (BigInt(x) >= xmin) seen.add(x);
  for (const x of applied) if (BigInt(x) >= xmin) seen.add(x);
  const next: Position = { ...prev, xmin: snap.xmin, xmax: snap.xmax, seen: [...seen].sort((a, b) => (BigInt(a) < BigInt(b) ? -1 : 1)) };
  if (snap.open !== undefined) next.open = snap.open;
  else delete next.open;
  if (last !== undefined && BigInt(last.id) > BigInt(prev.lastId)) {
    next.lastId = last.id;
    next.lastXid = last.xid;
    next.lastAt = last.at;
  }
  return next;
}

/** The highest transaction id the position knows of, plus one: the server's counter may not be below it. */
export function horizon(p: Position): bigint {
  let h = BigInt(p.xmin);
  for (const x of p.seen) if (BigInt(x) + 1n > h) h = BigInt(x) + 1n;
  if (BigInt(p.lastXid) + 1n > h) h = BigInt(p.lastXid) + 1n;
  return h;
}

/** A position handed in from outside (a snapshot file): undefined unless it has every field. */
export function readPosition(value: unknown): Position | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const p = value as Record<string, unknown>;
  const dec = (v: unknown) => typeof v === 'string' && /^\d{1,20}$/.test(v);
  if (p.v !== 1 || typeof p.system !== 'string' || typeof p.server !== 'string' || !Number.isInteger(p.timeline)) return undefined;
  if (!dec(p.xmin) || !dec(p.xmax) || !dec(p.lastId) || !dec(p.lastXid)) return undefined;
  if (!Array.isArray(p.seen) || !p.seen.every(dec) || typeof p.lastAt !== 'string') return undefined;
  if (p.open !== undefined && (!Array.isArray(p.open) || !p.open.every(dec))) return undefined;
  const out: Position = {
    v: 1,
    system: p.system,
    timeline: p.timeline as number,
    server: p.server,
    xmin: p.xmin as string,
    xmax: p.xmax as string,
    seen: [...(p.seen as string[])],
    lastId: p.lastId as string,
    lastXid: p.lastXid as string,
    lastAt: p.lastAt,
  };
  if (p.open !== undefined) out.open = [...(p.open as string[])];
  return out;
}

/**
 * Whether change rows the position has not applied may have been pruned. Pruning takes
 * only transactions below the oldest one running, so on a primary only those open at the
 * last read can be affected; a standby's position does not know them and trusts less.
 */
export function prunedPast(p: Position, prunedXid: string): boolean {
  const pruned = BigInt(prunedXid);
  if (pruned <= BigInt(p.xmin)) return false;
  if (p.open === undefined || pruned > BigInt(p.xmax)) return true;
  return p.open.some((x) => BigInt(x) < pruned);
}

/** Why a position cannot be trusted on this server, or undefined when it can. */
export function historyMismatch(p: Position, id: ServerIdentity): string | undefined {
  if (p.system !== id.system) return 'another database cluster';
  if (p.timeline !== id.timeline) return 'another timeline (a promotion or failover)';
  if (p.server !== id.server) return 'another server';
  return undefined;
}
