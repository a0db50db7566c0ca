// What a primary's cheap poll compares against, and its rule. A read on a primary takes a
// mark just before its snapshot (the change-log sequence and the next transaction id,
// changelog.ts beginReadMarked); the poll then asks the sequence, the transactions running
// and whether a committed change row is unapplied (primaryProbe). A catch-up is worth it
// when the sequence moved, a row is unapplied, or a transaction open during the read (and
// old enough to own rows up to the mark) has ended since. Without the sequence (a role that
// may not read it) every poll catches up.

import type { PrimaryMark } from './changelog.js';

/** What a primary's poll found (changelog.ts primaryProbe). */
export interface PrimaryPoll {
  lastId: string;
  unapplied: boolean;
  xmin: string;
  xip: ReadonlySet<string>;
}

export interface PrimaryProbe {
  /** False once the sequence was refused: reads are then unmarked, and every poll catches up. */
  readonly usable: boolean;
  /** The mark a read took just before its snapshot. */
  marked(mark: PrimaryMark): void;
  /** The sequence cannot be read by this role. */
  giveUp(): void;
  /** After a read on a primary whose snapshot listed `xip` as running: what the next poll compares against. */
  noteRead(xip: readonly string[]): void;
  /** Whether a poll has anything to compare against; without it a poll tick catches up. */
  readonly ready: boolean;
  /** Whether what a poll found may mean changes not applied yet. */
  changed(poll: PrimaryPoll): boolean;
}

export function createPrimaryProbe(): PrimaryProbe {
  let unusable = false;
  let mark: PrimaryMark | undefined;
  let seenLastId: string | undefined;
  let pendingXids: string[] = [];
  return {
    get usable() {
      return !unusable;
    },
    marked(m) {
      mark = m;
    },
    giveUp() {
      unusable = true;
      mark = undefined;
    },
    noteRead(xip) {
      if (!mark) return;
      seenLastId = mark.lastId;
      // Transactions open during the read that may own change rows numbered up to lastId:
      // when one of them ends, its rows may have become visible.
      const m = BigInt(mark.nextXid);
      pendingXids = xip.filter((x) => BigInt(x) < m);
    },
    get ready() {
      return !unusable && seenLastId !== undefined;
    },
    changed(poll) {
      // A committed row not applied yet: its transaction may have been invisible to the
      // sequence and the snapshot list alike (it wrote before the last read).
      if (poll.lastId !== seenLastId || poll.unapplied) return true;
      // An open transaction of the last read ended: the position's xmin may move on.
      const xmin = BigInt(poll.xmin);
      return pendingXids.some((x) => BigInt(x) < xmin || !poll.xip.has(x));
    },
  };
}
