// Sending limits from the command line (the policy service's, src/smtpd-policy/limits.ts):
// a mailbox's own (`mailbox set … --send-limit-hour N|default`) and a domain's defaults for
// its mailboxes and its total (`domain set DOMAIN …`). A number is recipients per window and
// 0 means no limit, as everywhere; `default` (a mailbox's, or a domain's mailbox defaults)
// hands the choice back to the domain or the config, `none` removes a domain's total. The
// columns are the native schema's; a panel's database keeps its own (its profile reads them).

import { UsageError } from '../errors.js';
import { inTransaction } from '../db/client.js';
import { withAdminClient, type AdminDeps } from './admin-client.js';
import { arity, checkDomain, onlyFlags, parseArgs, type Parsed } from './args.js';

/** undefined: the flag was not given; null: back to the default (NULL in the column). */
export type LimitFlag = number | null | undefined;

export function limitFlag(p: Parsed, flag: string, unsetWord: 'default' | 'none'): LimitFlag {
  const v = p.flags.get(flag);
  if (v === undefined) return undefined;
  if (v === unsetWord) return null;
  if (typeof v !== 'string' || !/^\d{1,10}$/.test(v) || Number(v) > 1_000_000_000) {
    throw new UsageError(`--${flag} takes a number of recipients (0: no limit) or ${unsetWord}`);
  }
  return Number(v);
}

/** `hour 100, day default`: what a limit column holds, for the command's answer. */
export const showLimit = (n: number | null, unsetWord: string): string => (n === null ? unsetWord : n === 0 ? 'none' : String(n));

const domainFlags = ['send-limit-day', 'mailbox-send-limit-hour', 'mailbox-send-limit-day'];
const domainUsage = 'domain set DOMAIN [--send-limit-day N|none] [--mailbox-send-limit-hour N|default] [--mailbox-send-limit-day N|default]';

export async function domainSetCommand(args: string[], deps: AdminDeps): Promise<number> {
  const p = parseArgs(args, domainFlags);
  onlyFlags(p, domainFlags);
  arity(p, 1, 1, domainUsage);
  const name = checkDomain(p.positional[0]);
  const total = limitFlag(p, 'send-limit-day', 'none');
  const hour = limitFlag(p, 'mailbox-send-limit-hour', 'default');
  const day = limitFlag(p, 'mailbox-send-limit-day', 'default');
  if (total === undefined && hour === undefined && day === undefined) throw new UsageError(`usage: mailmapd ${domainUsage}`);
  return withAdminClient(deps.url, async (c) => {
    const r = await inTransaction(c, () =>
      c.query<{ send_limit_day: number | null; mailbox_send_limit_hour: number | null; mailbox_send_limit_day: number | null }>(
        `UPDATE mailmapd.domains
            SET send_limit_day = CASE WHEN $2 THEN $3::int ELSE send_limit_day END,
                mailbox_send_limit_hour = CASE WHEN $4 THEN $5::int ELSE mailbox_send_limit_hour END,
                mailbox_send_limit_day = CASE WHEN $6 THEN $7::int ELSE mailbox_send_limit_day END
          WHERE name = $1
          RETURNING send_limit_day, mailbox_send_limit_hour, mailbox_send_limit_day`,
        [name, total !== undefined, total ?? null, hour !== undefined, hour ?? null, day !== undefined, day ?? null],
      ),
    );
    const row = r.rows[0];
    if (row === undefined) throw new UsageError(`no such domain: ${name} (an alias domain's mail counts for its target's)`);
    deps.out(
      `${name}: total per day ${showLimit(row.send_limit_day, 'none')}; each mailbox per hour ${showLimit(row.mailbox_send_limit_hour, 'default')}, per day ${showLimit(row.mailbox_send_limit_day, 'default')}`,
    );
    return 0;
  });
}
