// The send counts' part of the write-back: on the writer's connection to the primary, in
// batches, never on a request's path. Each batch adds this daemon's counts per minute to
// send_counts and takes back each minute's total over every host; then send_usage, the
// panels' "sent in the last hour / day", is brought up to date for the addresses written.
// Once a minute every address's send_usage is refreshed (the windows slide without
// sending) and minutes older than a day are deleted.

import type pg from 'pg';
import { isRetryable } from '../db/sqlstate.js';
import { writeInBatches } from '../shared-counts/batches.js';
import { ringCounts } from '../shared-counts/doorbell.js';
import type { WriteSource } from '../writeback/writer.js';
import { DAY_MINUTES, minuteOf, type CountRow, type SendCounts } from './send-counts.js';
import { sendCountsPrune, sendCountsWrite, sendUsageIdle, sendUsageWrite } from './statements.js';

const REFRESH_MS = 60_000;

export function createCountWriter(counts: SendCounts, now: () => number = Date.now): WriteSource {
  let refreshedAt = now();

  async function writeBatch(c: pg.Client, rows: CountRow[], minute: number): Promise<void> {
    let r: pg.QueryResult<{ address: string; minute: string; count: number }>;
    try {
      r = await c.query(sendCountsWrite, [rows.map((x) => x.key), rows.map((x) => x.bucket), rows.map((x) => x.count)]);
    } catch (err) {
      counts.failed(rows, isRetryable(err));
      throw err;
    }
    counts.written(
      rows,
      r.rows.map((x) => ({ key: x.address, bucket: Number(x.minute), count: Number(x.count) })),
    );
    await c.query(sendUsageWrite, [[...new Set(rows.map((x) => x.key))], minute]);
  }

  return {
    kind: 'send_counts',
    pending: () => counts.pending() + (now() - refreshedAt >= REFRESH_MS ? 1 : 0),
    async flush(c) {
      const minute = minuteOf(now());
      const rows = counts.take();
      await writeInBatches(
        rows,
        (batch) => writeBatch(c, batch, minute),
        (rest) => counts.failed(rest, true),
      );
      if (rows.length > 0) await ringCounts(c);
      if (now() - refreshedAt >= REFRESH_MS) {
        refreshedAt = now();
        await c.query(sendCountsPrune, [minute - DAY_MINUTES]);
        await c.query(sendUsageWrite, [null, minute]);
        await c.query(sendUsageIdle);
      }
    },
  };
}
