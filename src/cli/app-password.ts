// `mailmapd app-password add ADDRESS --name NAME [--services S,…]`, `rm ADDRESS NAME`,
// `list ADDRESS`. A new app password is generated here, printed once on stdout and
// stored only as a salted SHA-256 ({SSHA256}): 120 random bits need no slow hash, and a
// fast one lets a login check dozens of them for the cost of one (see auth/credentials.ts).

import { randomInt } from 'node:crypto';
import { hashPassword } from '../password/hash.js';
import { withAdminClient, type AdminDeps } from './admin-client.js';
import { arity, checkAddress, onlyFlags, parseArgs } from './args.js';
import { UsageError } from '../errors.js';
import { parseServices } from './services.js';

/** Services an app password may name: every login service (`receive` is no login). */
const appPasswordServices = ['imap', 'pop3', 'smtp', 'submission', 'sieve'] as const;

// No 0/o, 1/l/i: read off one screen and typed on a phone.
const alphabet = 'abcdefghjkmnpqrstuvwxyz23456789';

/** 24 characters of a 31-letter alphabet (~119 bits) in groups of four. */
export function generateAppPassword(): string {
  let s = '';
  for (let i = 0; i < 24; i++) {
    if (i > 0 && i % 4 === 0) s += '-';
    s += alphabet[randomInt(alphabet.length)];
  }
  return s;
}

function checkName(raw: string | true | undefined): string {
  if (typeof raw !== 'string' || raw.trim() === '') throw new UsageError('--name NAME is required (e.g. --name phone)');
  const name = raw.trim();
  if (name.length > 64 || /[\u0000-\u001f\u007f]/.test(name)) throw new UsageError('the name must be 1 to 64 printable characters');
  return name;
}

export async function appPasswordCommand(args: string[], deps: AdminDeps): Promise<number> {
  const [verb, ...rest] = args;
  const p = parseArgs(rest, ['name', 'services']);
  switch (verb) {
    case 'add': {
      onlyFlags(p, ['name', 'services']);
      arity(p, 1, 1, 'app-password add ADDRESS --name NAME [--services S,…]');
      const address = checkAddress(p.positional[0]);
      const name = checkName(p.flags.get('name'));
      const services = parseServices(p.flags.get('services'), 'services', appPasswordServices);
      const password = generateAppPassword();
      const stored = await hashPassword(password, 'SSHA256');
      return withAdminClient(deps.url, async (c) => {
        const mb = await c.query('SELECT 1 FROM mailmapd.mailboxes WHERE address = $1', [address]);
        if (!mb.rowCount) throw new UsageError(`no such mailbox: ${address}`);
        await c.query('INSERT INTO mailmapd.app_passwords (mailbox, name, password, services) VALUES ($1, $2, $3, $4)', [address, name, stored, services]);
        // The one time it is shown: only the password on stdout, for scripts and copy-paste.
        deps.out(password);
        return 0;
      });
    }
    case 'rm': {
      onlyFlags(p, []);
      arity(p, 2, 2, 'app-password rm ADDRESS NAME');
      const address = checkAddress(p.positional[0]);
      const name = checkName(p.positional[1]);
      return withAdminClient(deps.url, async (c) => {
        const r = await c.query('DELETE FROM mailmapd.app_passwords WHERE mailbox = $1 AND name = $2', [address, name]);
        if (!r.rowCount) throw new UsageError(`${address} has no app password named ${JSON.stringify(name)}`);
        deps.out(`removed app password ${name} of ${address}`);
        return 0;
      });
    }
    case 'list': {
      onlyFlags(p, []);
      arity(p, 1, 1, 'app-password list ADDRESS');
      const address = checkAddress(p.positional[0]);
      return withAdminClient(deps.url, async (c) => {
        const mb = await c.query('SELECT 1 FROM mailmapd.mailboxes WHERE address = $1', [address]);
        if (!mb.rowCount) throw new UsageError(`no such mailbox: ${address}`);
        const r = await c.query<{ name: string; services: string[]; active: boolean; created: Date | null }>(
          'SELECT name, services, active, created FROM mailmapd.app_passwords WHERE mailbox = $1 ORDER BY name',
          [address],
        );
        for (const row of r.rows) {
          const services = row.services.length > 0 ? row.services.join(',') : 'all';
          deps.out(`${row.name} services=${services}${row.created ? ` created=${row.created.toISOString()}` : ''}${row.active ? '' : ' (inactive)'}`);
        }
        return 0;
      });
    }
    default:
      throw new UsageError('usage: mailmapd app-password add|rm|list …');
  }
}
