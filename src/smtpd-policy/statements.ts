// The SQL of the policy service: what it reads (every host's quota usage and send counts,
// from the directory's own database — a standby is fine) and what it writes through the
// write-back (its send counts and the panels' send_usage, to the primary).

/** Reads look back this far past their last read: a row committed late or stamped by a slower clock is still seen. */
export const SHORT_OVERLAP_S = 5;
/** Every LONG_EVERY-th read looks back this far: a standby that lagged, a host whose clock is behind. */
export const LONG_OVERLAP_S = 120;
export const LONG_EVERY = 15;
/** A read the counts' doorbell asked for looks back this far past the last timed read (follower.ts). */
export const RUNG_OVERLAP_S = 1;

/** $1: timestamptz, rows changed since; null: all. Native quota usage (the dict's write-back). */
export const nativeQuotaUsageRead = `SELECT address, bytes FROM mailmapd.quota_usage WHERE $1::timestamptz IS NULL OR updated > $1`;

/** $1: timestamptz changed since (null: all), $2: the oldest minute wanted. */
export const sendCountsRead = `SELECT address, minute, count FROM mailmapd.send_counts
  WHERE minute >= $2 AND ($1::timestamptz IS NULL OR updated > $1)`;

/** $1 text[] address, $2 bigint[] minute, $3 int[] count: added; returns each minute's total now. */
export const sendCountsWrite = `INSERT INTO mailmapd.send_counts AS t (address, minute, count)
  SELECT a, m, n FROM unnest($1::text[], $2::bigint[], $3::int[]) AS u(a, m, n)
  ON CONFLICT (address, minute) DO UPDATE SET count = t.count + excluded.count, updated = clock_timestamp()
  RETURNING address, minute, count`;

/** $1 text[] addresses (null: every one with counts), $2 the current minute: their last hour and day for panels. */
export const sendUsageWrite = `INSERT INTO mailmapd.send_usage AS u (address, hour, day, updated)
  SELECT a, coalesce(sum(c.count) FILTER (WHERE c.minute > $2 - 60), 0), coalesce(sum(c.count), 0), now()
    FROM (SELECT unnest($1::text[]) AS a UNION SELECT address FROM mailmapd.send_counts WHERE $1::text[] IS NULL) x
    LEFT JOIN mailmapd.send_counts c ON c.address = x.a AND c.minute > $2 - 1440
   GROUP BY a
  ON CONFLICT (address) DO UPDATE SET hour = excluded.hour, day = excluded.day, updated = excluded.updated`;

/** $1: the oldest minute kept. */
export const sendCountsPrune = `DELETE FROM mailmapd.send_counts WHERE minute < $1`;

/** Addresses that sent nothing for a day: none in their windows any more. */
export const sendUsageIdle = `UPDATE mailmapd.send_usage u SET hour = 0, day = 0, updated = now()
  WHERE (hour > 0 OR day > 0) AND NOT EXISTS (SELECT 1 FROM mailmapd.send_counts c WHERE c.address = u.address)`;
