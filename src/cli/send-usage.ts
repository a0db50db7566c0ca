// `mailmapd send-usage [ADDRESS]` and `mailmapd send-usage reset ADDRESS`: the recipients
// counted in the last hour and day for a mailbox, or `@domain` for a domain's total, as every
// host's daemon wrote them (send_counts). A reset zeroes the minutes rather than deleting
// them, so that every daemon following the table reads the zeros.

import type pg from 'pg';
import { fold } from '../directory/address.js';
import { ExitCode, UsageError } from '../errors.js';

const usage = 'usage: mailmapd send-usage [ADDRESS | @DOMAIN] | send-usage reset ADDRESS|@DOMAIN';

const windowSql = `SELECT address,
       sum(count) FILTER (WHERE minute > m - 60)::bigint AS hour, sum(count)::bigint AS day
  FROM mailmapd.send_counts, (SELECT floor(extract(epoch FROM now()) / 60)::bigint AS m) now
 WHERE minute > m - 1440 AND ($1::text IS NULL OR address = $1)
 GROUP BY address HAVING sum(count) > 0 ORDER BY address`;

export interface SendUsageArgs {
  reset: boolean;
  /** Folded; null: every address. */
  address: string | null;
}

/** Checked before the database is reached: a typo is a usage error, not a connection attempt. */
export function parseSendUsageArgs(args: string[]): SendUsageArgs {
  if (args[0] === 'reset') {
    if (args.length !== 2 || args[1]!.startsWith('-')) throw new UsageError(usage);
    return { reset: true, address: fold(args[1]!) };
  }
  if (args.length > 1 || args[0]?.startsWith('-')) throw new UsageError(usage);
  return { reset: false, address: args[0] === undefined ? null : fold(args[0]) };
}

export async function sendUsageCommand(c: pg.ClientBase, { reset, address }: SendUsageArgs, out: (line: string) => void): Promise<number> {
  if (reset && address !== null) {
    const r = await c.query(`UPDATE mailmapd.send_counts SET count = 0, updated = clock_timestamp() WHERE address = $1 AND count > 0`, [address]);
    await c.query(`UPDATE mailmapd.send_usage SET hour = 0, day = 0, updated = now() WHERE address = $1`, [address]);
    out(`${address}: reset (${r.rowCount ?? 0} minutes with counts)`);
    return ExitCode.ok;
  }
  const r = await c.query<{ address: string; hour: string | null; day: string }>(windowSql, [address]);
  if (address !== null && r.rows.length === 0) {
    out(`${address} hour=0 day=0`);
    return ExitCode.ok;
  }
  for (const row of r.rows) out(`${row.address} hour=${row.hour ?? 0} day=${row.day}`);
  return ExitCode.ok;
}
