// `mailmapd mailbox set ADDRESS [--disable S,…] [--enable S,…] [--maintenance on|off]
// [--send-limit-hour N|default] [--send-limit-day N|default]`: per-service access,
// maintenance and the mailbox's own sending limits, in one UPDATE so nothing is
// half-written. `password` is not a service: it refuses the mailbox's own password, leaving
// app passwords and tokens.

import { withAdminClient, type AdminDeps } from './admin-client.js';
import { arity, checkAddress, onlyFlags, parseArgs } from './args.js';
import { UsageError } from '../errors.js';
import { mailboxDenials } from '../db/migrations/accounts.js';
import { parseServices } from './services.js';
import { limitFlag, showLimit } from './send-limits.js';

const usage = 'mailbox set ADDRESS [--disable S,…] [--enable S,…] [--maintenance on|off] [--send-limit-hour N|default] [--send-limit-day N|default]';
const flags = ['disable', 'enable', 'maintenance', 'send-limit-hour', 'send-limit-day'];

export async function mailboxSetCommand(args: string[], deps: AdminDeps): Promise<number> {
  const p = parseArgs(args, flags);
  onlyFlags(p, flags);
  arity(p, 1, 1, usage);
  const address = checkAddress(p.positional[0]);
  const disable = parseServices(p.flags.get('disable'), 'disable', mailboxDenials);
  const enable = parseServices(p.flags.get('enable'), 'enable', mailboxDenials);
  const both = disable.filter((s) => enable.includes(s));
  if (both.length > 0) throw new UsageError(`${both.join(', ')} cannot be both disabled and enabled`);
  const m = p.flags.get('maintenance');
  if (m !== undefined && m !== 'on' && m !== 'off') throw new UsageError('--maintenance takes on or off');
  const hour = limitFlag(p, 'send-limit-hour', 'default');
  const day = limitFlag(p, 'send-limit-day', 'default');
  if (disable.length === 0 && enable.length === 0 && m === undefined && hour === undefined && day === undefined) {
    throw new UsageError(`usage: mailmapd ${usage}`);
  }
  return withAdminClient(deps.url, async (c) => {
    const r = await c.query<{ disabled_services: string[]; maintenance: boolean; send_limit_hour: number | null; send_limit_day: number | null }>(
      `UPDATE mailmapd.mailboxes
          SET disabled_services = ARRAY(SELECT DISTINCT s FROM unnest(disabled_services || $2::text[]) AS s WHERE s <> ALL ($3::text[]) ORDER BY s),
              maintenance = coalesce($4::boolean, maintenance),
              send_limit_hour = CASE WHEN $5 THEN $6::int ELSE send_limit_hour END,
              send_limit_day = CASE WHEN $7 THEN $8::int ELSE send_limit_day END
        WHERE address = $1
        RETURNING disabled_services, maintenance, send_limit_hour, send_limit_day`,
      [address, disable, enable, m === undefined ? null : m === 'on', hour !== undefined, hour ?? null, day !== undefined, day ?? null],
    );
    const row = r.rows[0];
    if (row === undefined) throw new UsageError(`no such mailbox: ${address}`);
    const disabled = row.disabled_services.length > 0 ? row.disabled_services.join(',') : 'none';
    const limits = `sending limits per hour ${showLimit(row.send_limit_hour, 'default')}, per day ${showLimit(row.send_limit_day, 'default')}`;
    deps.out(`${address}: disabled services ${disabled}; maintenance ${row.maintenance ? 'on' : 'off'}; ${limits}`);
    return 0;
  });
}
