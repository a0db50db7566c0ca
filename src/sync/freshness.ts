// Whether the directory may be stale, asked cheaply between catch-ups, and how a read is
// opened so that the next question has something to compare against. Holds what the last
// read saw: on a primary the probe's mark (probe.ts has its rule), on a standby the replay
// position read and, after the doorbell, the primary's position the next read waits for.

import type pg from 'pg';
import { sqlstate, sqlstateOf } from '../db/sqlstate.js';
import { errorMessage, type Logger } from '../log.js';
import { abortRead, beginRead, beginReadMarked, beginReadReplayed, lsnBytes, primaryLsn, primaryProbe, standbyProbe, type OpenRead } from './changelog.js';
import type { PrimaryLink } from './primary-link.js';
import type { Position } from './position.js';
import { createPrimaryProbe } from './probe.js';

export interface Freshness {
  /** Opens a read (with what `p` has not applied), noting first what worthReading compares against. */
  open(c: pg.Client, p?: Position): Promise<OpenRead>;
  /** The read whose snapshot listed `xip` as running is applied (a primary's probe compares against it). */
  noteRead(xip: readonly string[]): void;
  /** True when the cheap probe says a catch-up may find something; on a standby it measures the lag too. */
  worthReading(c: pg.Client, position: Position | undefined): Promise<boolean>;
  /** On a standby, after the doorbell: the primary's position the next read waits to see replayed. */
  afterRing(): Promise<void>;
}

export interface FreshnessOptions {
  /** Whether the server read is a standby (asked on every call: it is known per connection). */
  standby(): boolean;
  primary: PrimaryLink;
  logger: Logger;
  pollIntervalMs: number;
  stopped(): boolean;
  /** A standby's lag, measured by worthReading. */
  onLag(seconds: number, bytes: number): void;
}

// Long because it is one closure over what the last read saw (the probe's mark, the replay
// positions); each step inside is a short function.
export function createFreshness(o: FreshnessOptions): Freshness {
  const probe = createPrimaryProbe();
  let seenReplay: string | undefined;
  /** After the doorbell on a standby: the primary's WAL position the next read waits for, and until when. */
  let replayTarget: { lsn: bigint; until: number } | undefined;

  async function openStandby(c: pg.Client, p?: Position): Promise<OpenRead> {
    // After the doorbell, the read kept is the first whose mark shows the primary's
    // position replayed: the check and the read in one round trip. An earlier one is
    // given up (in the next one's round trip) and asked again a millisecond later, for
    // at most a poll interval.
    for (let abortOpen = false; ; abortOpen = true) {
      const r = await beginReadReplayed(c, p, abortOpen);
      seenReplay = r.probe.replayLsn;
      const target = replayTarget;
      if (target === undefined || lsnBytes(r.probe.replayLsn) >= target.lsn || Date.now() >= target.until || o.stopped()) {
        replayTarget = undefined;
        return r;
      }
      await new Promise((res) => setTimeout(res, 1));
    }
  }

  async function openPrimary(c: pg.Client, p?: Position): Promise<OpenRead> {
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
        o.logger.warn('cannot read mailmapd.changes_id_seq; catching up on every poll', { error: errorMessage(err) });
      }
    }
    return beginRead(c, p);
  }

  async function standbyWorth(c: pg.Client): Promise<boolean> {
    // Both servers at once: a doorbell that rings meanwhile waits for one round trip, not two.
    const p = o.primary.client();
    const [s, top] = await Promise.all([
      standbyProbe(c),
      p
        ? primaryLsn(p).catch((err) => {
            o.primary.drop(err, p);
            return undefined;
          })
        : undefined,
    ]);
    const bytes = top !== undefined ? lsnBytes(top) - lsnBytes(s.replayLsn) : s.receiveLsn !== null ? lsnBytes(s.receiveLsn) - lsnBytes(s.replayLsn) : 0n;
    o.onLag(s.lagSeconds, Math.max(0, Number(bytes)));
    return s.replayLsn !== seenReplay;
  }

  return {
    open: (c, p) => (o.standby() ? openStandby(c, p) : openPrimary(c, p)),
    noteRead(xip) {
      if (!o.standby()) probe.noteRead(xip);
    },
    async worthReading(c, position) {
      if (o.standby()) return standbyWorth(c);
      if (!probe.ready || position === undefined) return true;
      return probe.changed(await primaryProbe(c, position));
    },
    // Nothing tells a client when a standby replays, so it is asked every millisecond for as
    // long as it lags (a few ms): a query that waited server-side would hold a snapshot that
    // replay may have to wait for.
    async afterRing() {
      const p = o.primary.client();
      if (!p) return;
      try {
        replayTarget = { lsn: lsnBytes(await primaryLsn(p)), until: Date.now() + o.pollIntervalMs };
      } catch (err) {
        o.primary.drop(err, p);
      }
    },
  };
}
