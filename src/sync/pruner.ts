// Pruning the change log, from a daemon with a connection to the primary: rows older than
// the retention, and only below the horizon the previous run saw (every live daemon has
// read past it since) and never past this daemon's own position. Retried after a failure
// in a minute, or in an hour when the role may not prune. The change log's size and age
// are sampled for the metrics once a minute on the way.

import type pg from 'pg';
import { errorMessage, type Logger } from '../log.js';
import { sqlstate, sqlstateOf } from '../db/sqlstate.js';
import { changeLogStats, pruneChanges, pruneHorizon } from './changelog.js';
import type { SyncMetrics } from '../metrics.js';

export interface Pruner {
  /** Prunes when it is time; `ownXmin` is the xmin of this daemon's position, if it has one. */
  run(c: pg.Client, ownXmin: string | undefined): Promise<void>;
}

export function createPruner(o: { retentionMs: number; pollIntervalMs: number; logger: Logger; sm: SyncMetrics }): Pruner {
  const { logger, sm } = o;
  let nextPrune = 0;
  let pruneFloor: string | undefined;
  let nextStats = 0;
  return {
    async run(c, ownXmin) {
      const now = Date.now();
      if (now >= nextStats) {
        nextStats = now + 60_000;
        try {
          const s = await changeLogStats(c);
          sm.changeLogRows.set(s.rows);
          sm.changeLogOldest.set(s.oldestSeconds);
        } catch {
          /* the next minute */
        }
      }
      if (now < nextPrune) return;
      try {
        // Below the horizon of the previous run only (every live daemon has read past it
        // since), and never past this daemon's own position.
        const floor = pruneFloor !== undefined && ownXmin !== undefined ? (BigInt(pruneFloor) < BigInt(ownXmin) ? pruneFloor : ownXmin) : undefined;
        const n = floor === undefined ? 0 : await pruneChanges(c, o.retentionMs / 1000, floor);
        pruneFloor = await pruneHorizon(c);
        nextPrune = now + Math.max(1000, 5 * o.pollIntervalMs, Math.min(o.retentionMs / 10, 600_000));
        sm.pruneErrors.set(0);
        if (n > 0) {
          nextStats = 0;
          logger.info('pruned the change log', { rows: n, older_than_seconds: o.retentionMs / 1000 });
        }
      } catch (err) {
        sm.pruneErrors.set(1);
        const code = sqlstateOf(err);
        // Not allowed (a read-only role or server): ask again in an hour, in case it changes;
        // anything else is likely passing: in a minute.
        const denied = code === sqlstate.insufficientPrivilege || code === sqlstate.readOnlySqlTransaction;
        nextPrune = now + (denied ? 3_600_000 : 60_000);
        logger.warn(denied ? 'not allowed to prune the change log; run `mailmapd prune` with a role that may' : 'pruning the change log failed; retrying', {
          error: errorMessage(err),
        });
      }
    },
  };
}
