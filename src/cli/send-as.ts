// `mailmapd send-as add|rm|list` and `mailmapd bcc add|rm|list`: who may send as whom
// (mailmapd.send_as) and copies by sender or recipient (mailmapd.bcc). Input is checked
// before the database sees it; each change is one statement, so a refused one writes nothing.

import { NotFoundError, UsageError } from '../errors.js';
import { withAdminClient, type AdminDeps } from './admin-client.js';
import { arity, checkAddress, checkDomain, onlyFlags, parseArgs } from './args.js';

const sendAsUsage = 'send-as add MAILBOX ADDRESS|@DOMAIN [--inactive] | rm MAILBOX ADDRESS|@DOMAIN | list [MAILBOX|ADDRESS|DOMAIN]';

export async function sendAsCommand(args: string[], deps: AdminDeps): Promise<number> {
  const [verb, ...rest] = args;
  const p = parseArgs(rest, []);
  switch (verb) {
    case 'add': {
      onlyFlags(p, ['inactive']);
      arity(p, 2, 2, 'send-as add MAILBOX ADDRESS|@DOMAIN [--inactive]');
      const mailbox = checkAddress(p.positional[0]);
      const address = checkAddress(p.positional[1], { catchAll: true });
      return withAdminClient(deps.url, async (c) => {
        const r = await c.query(
          `INSERT INTO mailmapd.send_as (mailbox, address, active)
           SELECT address, $2, $3 FROM mailmapd.mailboxes WHERE address = $1`,
          [mailbox, address, !p.flags.has('inactive')],
        );
        if (!r.rowCount) throw new UsageError(`no such mailbox: ${mailbox} (a grant is for a mailbox of this server)`);
        deps.out(`${mailbox} may send as ${address}${p.flags.has('inactive') ? ' (inactive)' : ''}`);
        return 0;
      });
    }
    case 'rm': {
      onlyFlags(p, []);
      arity(p, 2, 2, 'send-as rm MAILBOX ADDRESS|@DOMAIN');
      const mailbox = checkAddress(p.positional[0]);
      const address = checkAddress(p.positional[1], { catchAll: true });
      return withAdminClient(deps.url, async (c) => {
        const r = await c.query('DELETE FROM mailmapd.send_as WHERE mailbox = $1 AND address = $2', [mailbox, address]);
        if (!r.rowCount) throw new NotFoundError(`no such grant: ${mailbox} may not send as ${address}`);
        deps.out(`${mailbox} may no longer send as ${address}`);
        return 0;
      });
    }
    case 'list': {
      onlyFlags(p, []);
      arity(p, 0, 1, 'send-as list [MAILBOX|ADDRESS|DOMAIN]');
      const filter = listFilter(p.positional[0]);
      return withAdminClient(deps.url, async (c) => {
        const r = await c.query<{ mailbox: string; address: string; active: boolean }>(
          `SELECT mailbox, address, active FROM mailmapd.send_as
            WHERE $1::text IS NULL OR mailbox = $1 OR address = $1 OR split_part(address, '@', 2) = $1 OR split_part(mailbox, '@', 2) = $1
            ORDER BY mailbox, address`,
          [filter],
        );
        for (const row of r.rows) deps.out(`${row.mailbox} -> ${row.address}${row.active ? '' : ' (inactive)'}`);
        return 0;
      });
    }
    default:
      throw new UsageError(`usage: mailmapd ${sendAsUsage}`);
  }
}

/** An address, `@domain` or a domain to list the entries of; undefined: all. */
function listFilter(raw: string | undefined): string | null {
  if (raw === undefined) return null;
  return raw.includes('@') ? checkAddress(raw, { catchAll: true }) : checkDomain(raw);
}

const directions = ['sender', 'recipient'] as const;

function checkDirection(raw: string | undefined): (typeof directions)[number] {
  const d = raw?.trim().toLowerCase();
  if (d !== 'sender' && d !== 'recipient') throw new UsageError(`"${raw ?? ''}" is no direction: sender (mail from the address) or recipient (mail to it)`);
  return d;
}

const bccUsage = 'bcc add sender|recipient ADDRESS|@DOMAIN COPY-TO [--inactive] | rm sender|recipient ADDRESS|@DOMAIN | list [ADDRESS|DOMAIN]';

export async function bccCommand(args: string[], deps: AdminDeps): Promise<number> {
  const [verb, ...rest] = args;
  const p = parseArgs(rest, []);
  switch (verb) {
    case 'add': {
      onlyFlags(p, ['inactive']);
      arity(p, 3, 3, 'bcc add sender|recipient ADDRESS|@DOMAIN COPY-TO [--inactive]');
      const direction = checkDirection(p.positional[0]);
      const address = checkAddress(p.positional[1], { catchAll: true });
      const copy = checkAddress(p.positional[2]);
      return withAdminClient(deps.url, async (c) => {
        await c.query('INSERT INTO mailmapd.bcc (address, direction, bcc, active) VALUES ($1, $2, $3, $4)', [
          address,
          direction,
          copy,
          !p.flags.has('inactive'),
        ]);
        deps.out(`mail ${direction === 'sender' ? 'from' : 'to'} ${address} is copied to ${copy}${p.flags.has('inactive') ? ' (inactive)' : ''}`);
        return 0;
      });
    }
    case 'rm': {
      onlyFlags(p, []);
      arity(p, 2, 2, 'bcc rm sender|recipient ADDRESS|@DOMAIN');
      const direction = checkDirection(p.positional[0]);
      const address = checkAddress(p.positional[1], { catchAll: true });
      return withAdminClient(deps.url, async (c) => {
        const r = await c.query('DELETE FROM mailmapd.bcc WHERE address = $1 AND direction = $2', [address, direction]);
        if (!r.rowCount) throw new NotFoundError(`no ${direction} copy for ${address}`);
        deps.out(`mail ${direction === 'sender' ? 'from' : 'to'} ${address} is no longer copied`);
        return 0;
      });
    }
    case 'list': {
      onlyFlags(p, []);
      arity(p, 0, 1, 'bcc list [ADDRESS|DOMAIN]');
      const filter = listFilter(p.positional[0]);
      return withAdminClient(deps.url, async (c) => {
        const r = await c.query<{ address: string; direction: string; bcc: string; active: boolean }>(
          `SELECT address, direction, bcc, active FROM mailmapd.bcc
            WHERE $1::text IS NULL OR address = $1 OR split_part(address, '@', 2) = $1 ORDER BY address, direction`,
          [filter],
        );
        for (const row of r.rows) deps.out(`${row.direction} ${row.address} -> ${row.bcc}${row.active ? '' : ' (inactive)'}`);
        return 0;
      });
    }
    default:
      throw new UsageError(`usage: mailmapd ${bccUsage}`);
  }
}
