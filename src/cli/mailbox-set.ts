// `mailmapd mailbox set ADDRESS [--disable S,…] [--enable S,…] [--maintenance on|off]`:
// per-service access and maintenance, in one UPDATE so nothing is half-written. `password`
// is not a service: it refuses the mailbox's own password, leaving app passwords and tokens.

import { withAdminClient, type AdminDeps } from './admin-client.js';
import { arity, checkAddress, onlyFlags, parseArgs } from './args.js';
import { UsageError } from '../errors.js';
import { mailboxDenials } from '../db/migrations/accounts.js';
import { parseServices } from './services.js';

const usage = 'mailbox set ADDRESS [--disable S,…] [--enable S,…] [--maintenance on|off]';

export async function mailboxSetCommand(args: string[], deps: AdminDeps): Promise<number> {
  const p = parseArgs(args, ['disable', 'enable', 'maintenance']);
  onlyFlags(p, ['disable', 'enable', 'maintenance']);
  arity(p, 1, 1, usage);
  const address = checkAddress(p.positional[0]);
  const disable = parseServices(p.flags.get('disable'), 'disable', mailboxDenials);
  const enable = parseServices(p.flags.get('enable'), 'enable', mailboxDenials);
  const both = disable.filter((s) => enable.includes(s));
  if (both.length > 0) throw new UsageError(`${both.join(', ')} cannot be both disabled and enabled`);
  const m = p.flags.get('maintenance');
  if (m !== undefined && m !== 'on' && m !== 'off') throw new UsageError('--maintenance takes on or off');
  if (disable.length === 0 && enable.length === 0 && m === undefined) throw new UsageError(`usage: mailmapd ${usage}`);
  return withAdminClient(deps.url, async (c) => {
    const r = await c.query<{ disabled_services: string[]; maintenance: boolean }>(
      `UPDATE mailmapd.mailboxes
          SET disabled_services = ARRAY(SELECT DISTINCT s FROM unnest(disabled_services || $2::text[]) AS s WHERE s <> ALL ($3::text[]) ORDER BY s),
              maintenance = coalesce($4::boolean, maintenance)
        WHERE address = $1
        RETURNING disabled_services, maintenance`,
      [address, disable, enable, m === undefined ? null : m === 'on'],
    );
    const row = r.rows[0];
    if (row === undefined) throw new UsageError(`no such mailbox: ${address}`);
    const disabled = row.disabled_services.length > 0 ? row.disabled_services.join(',') : 'none';
    deps.out(`${address}: disabled services ${disabled}; maintenance ${row.maintenance ? 'on' : 'off'}`);
    return 0;
  });
}
