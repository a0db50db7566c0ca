// The shared counts' doorbell: after a write-back batch of counts, the primary is asked to
// NOTIFY every daemon listening on it (the sync's connection to the primary — its reader on
// a primary, its primary link on a standby — so no connection of its own). The payload is
// the primary's WAL position after the write and a random name of the ringing process,
// nothing else: a daemon reading a standby waits for the standby to replay that far before
// it reads the counts back, and a daemon does not answer its own ring. As for the
// directory, the doorbell only hastens a read; the follower's poll finds every count
// without it (a standby without database_primary_url hears nothing).

import { randomBytes } from 'node:crypto';
import type pg from 'pg';

export const COUNTS_CHANNEL = 'mailmapd_counts';

/** This process's name in its rings: random, so that it tells nothing. */
const self = randomBytes(6).toString('hex');

/** After counts were written (autocommit: they are committed): rings every listening daemon. */
export async function ringCounts(c: pg.Client): Promise<void> {
  await c.query(`SELECT pg_notify('${COUNTS_CHANNEL}', pg_current_wal_lsn()::text || ' ' || $1)`, [self]);
}

/** A ring's WAL position, or undefined for this process's own ring (or a payload not a ring's). */
export function rungFor(payload: string): string | undefined {
  const [lsn, from] = payload.split(' ');
  return from === self || lsn === undefined || !/^[0-9A-F]+\/[0-9A-F]+$/i.test(lsn) ? undefined : lsn;
}

/** $1: a WAL position (text); true once this server (a standby) has replayed that far, or is a primary. */
export const replayedSql = `SELECT NOT pg_is_in_recovery() OR pg_last_wal_replay_lsn() >= $1::pg_lsn AS ok`;
