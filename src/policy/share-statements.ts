// The SQL of the limiter's shared counts (migration 13): what the write-back adds on the
// primary, and what every daemon reads back from its own database (a standby is fine).

/** $1 text[] login, $2 text[] source, $3 bigint[] bucket, $4 int[] count: added; returns each bucket's total now. */
export const failuresWrite = `INSERT INTO mailmapd.login_failures AS t (login, source, at, count)
  SELECT l, s, a, n FROM unnest($1::text[], $2::text[], $3::bigint[], $4::int[]) AS u(l, s, a, n)
  ON CONFLICT (login, source, at) DO UPDATE SET count = t.count + excluded.count, updated = clock_timestamp()
  RETURNING login, source, at, count`;

/** $1 text[] login, $2 text[] source, $3 float8[] seen (ms since the epoch): the newest success kept. */
export const sourcesWrite = `INSERT INTO mailmapd.login_sources AS t (login, source, seen)
  SELECT l, s, to_timestamp(ms / 1000) FROM unnest($1::text[], $2::text[], $3::float8[]) AS u(l, s, ms)
  ON CONFLICT (login, source) DO UPDATE SET seen = excluded.seen, updated = clock_timestamp()
  WHERE t.seen < excluded.seen`;

/** $1: timestamptz changed since (null: all), $2: the oldest bucket wanted. */
export const failuresRead = `SELECT login, source, at, count FROM mailmapd.login_failures
  WHERE at >= $2 AND ($1::timestamptz IS NULL OR updated > $1)`;

/** $1: timestamptz changed since (null: all), $2: float8 ms, the oldest success wanted. */
export const sourcesRead = `SELECT login, source, (extract(epoch FROM seen) * 1000)::float8 AS seen FROM mailmapd.login_sources
  WHERE seen > to_timestamp($2::float8 / 1000) AND ($1::timestamptz IS NULL OR updated > $1)`;

/** $1: the oldest bucket kept. */
export const failuresPrune = `DELETE FROM mailmapd.login_failures WHERE at < $1`;

/** $1: float8 ms, the oldest success kept. */
export const sourcesPrune = `DELETE FROM mailmapd.login_sources WHERE seen < to_timestamp($1::float8 / 1000)`;
