// The verdict of a catch-up's read, before anything of it is applied: is the position still
// ours (the same history, nothing pruned past it), and can the changes it found be applied
// key by key — or must the directory be reloaded in full, and why. Pure: the read's head,
// the change rows and the position in, a reason out. The first thing to read when a
// daemon reloads when it should not, or does not when it should.

import type { ChangeKind } from '../directory/directory.js';
import { historyMismatch, horizon, prunedPast, type Position } from './position.js';

/** Why a full load happens (`mailmapd_sync_full_reloads_total{reason}`). */
export type ReloadReason =
  /** No position: nothing loaded yet. */
  | 'start'
  /** The position belongs to another history: another cluster, timeline or server, a restored copy. */
  | 'history'
  /** The change log was pruned past the position: changes may be missing. */
  | 'behind'
  /** A change names a whole kind (TRUNCATE, or a trigger's NULL key). */
  | 'truncate'
  /** A key computed through a join by a transaction open at the previous read may be stale. */
  | 'late';

export type Verdict = { reload: ReloadReason; why?: string } | undefined;

/** What the read saw of the server: its identity, the snapshot's top, how far the log is pruned. */
export interface ReadSeen {
  system: string;
  timeline: number;
  /** `host:port` read from. */
  server: string;
  xmax: string;
  prunedXid: string;
  /** The server's row for the newest change the position applied (its id), if it still has it. */
  lastApplied: { xid: string; at: string } | undefined;
}

/** A change row as the verdict needs it. */
export interface ChangeSeen {
  xid: string;
  kind: ChangeKind;
  key: string | null;
}

/** Why the position does not belong to the history the read saw, or undefined. */
export function historyOf(p: Position, seen: ReadSeen): string | undefined {
  const why = historyMismatch(p, { system: seen.system, timeline: seen.timeline, server: seen.server });
  if (why) return why;
  if (BigInt(seen.xmax) < horizon(p)) return 'a transaction counter behind the position';
  // The newest change the position applied, as the server has it now.
  if (p.lastId === '0') return undefined;
  const s = seen.lastApplied;
  if (s === undefined) return BigInt(p.lastXid) >= BigInt(seen.prunedXid) ? 'a change the position applied is missing' : undefined;
  if (s.xid !== p.lastXid || s.at !== p.lastAt) return 'a change the position applied was written by another transaction';
  return undefined;
}

/**
 * undefined: apply `changes` key by key. Otherwise the reason to reload in full, checked in
 * this order: history, behind, truncate, late. `joinedKinds`: the kinds whose keys a
 * watch computes through a join (its key expression names another table).
 */
export function catchUpVerdict(p: Position | undefined, seen: ReadSeen, changes: readonly ChangeSeen[], joinedKinds: ReadonlySet<ChangeKind>): Verdict {
  if (p === undefined) return { reload: 'start' };
  const why = historyOf(p, seen);
  if (why !== undefined) return { reload: 'history', why };
  if (prunedPast(p, seen.prunedXid)) return { reload: 'behind' };
  if (changes.some((r) => r.key === null)) return { reload: 'truncate' };
  // Keys computed through a join in a writer's snapshot that began before the previous
  // read may miss a row another transaction changed meanwhile: re-read all.
  if (joinedKinds.size > 0) {
    const xmax = BigInt(p.xmax);
    if (changes.some((r) => joinedKinds.has(r.kind) && BigInt(r.xid) < xmax)) return { reload: 'late' };
  }
  return undefined;
}
