// `mailmapd master add|rm|list|passwd NAME`: master users, who log in through Dovecot as
// any mailbox with `address<separator>NAME` and their own password (never over SMTP AUTH).

import { withAdminClient, type AdminDeps } from './admin-client.js';
import { arity, onlyFlags, parseArgs } from './args.js';
import { UsageError } from '../errors.js';
import { readNewPassword } from './password-input.js';

function checkName(raw: string | undefined): string {
  if (raw === undefined || raw === '') throw new UsageError('missing master user name');
  const name = raw.trim().toLowerCase();
  // No @ (it would look like an address) and none of Dovecot's separators.
  if (!/^[a-z0-9][a-z0-9._-]{0,63}$/.test(name)) throw new UsageError(`"${raw}" is not a valid master user name (letters, digits, . _ -)`);
  return name;
}

export async function masterCommand(args: string[], deps: AdminDeps): Promise<number> {
  const [verb, ...rest] = args;
  const p = parseArgs(rest, []);
  switch (verb) {
    case 'add': {
      onlyFlags(p, ['inactive']);
      arity(p, 1, 1, 'master add NAME [--inactive]   (password on stdin or at the prompt)');
      const name = checkName(p.positional[0]);
      await withAdminClient(deps.url, async (c) => {
        const dup = await c.query('SELECT 1 FROM mailmapd.master_users WHERE name = $1', [name]);
        if (dup.rowCount) throw new UsageError(`master user ${name} already exists`);
      });
      const hash = await deps.hash(await readNewPassword());
      return withAdminClient(deps.url, async (c) => {
        await c.query('INSERT INTO mailmapd.master_users (name, password, active) VALUES ($1, $2, $3)', [name, hash, !p.flags.has('inactive')]);
        deps.out(`added master user ${name}`);
        return 0;
      });
    }
    case 'passwd': {
      onlyFlags(p, []);
      arity(p, 1, 1, 'master passwd NAME   (password on stdin or at the prompt)');
      const name = checkName(p.positional[0]);
      await withAdminClient(deps.url, async (c) => {
        const r = await c.query('SELECT 1 FROM mailmapd.master_users WHERE name = $1', [name]);
        if (!r.rowCount) throw new UsageError(`no such master user: ${name}`);
      });
      const hash = await deps.hash(await readNewPassword());
      return withAdminClient(deps.url, async (c) => {
        const r = await c.query('UPDATE mailmapd.master_users SET password = $2 WHERE name = $1', [name, hash]);
        if (!r.rowCount) throw new UsageError(`no such master user: ${name}`);
        deps.out(`changed the password of master user ${name}`);
        return 0;
      });
    }
    case 'rm': {
      onlyFlags(p, []);
      arity(p, 1, 1, 'master rm NAME');
      const name = checkName(p.positional[0]);
      return withAdminClient(deps.url, async (c) => {
        const r = await c.query('DELETE FROM mailmapd.master_users WHERE name = $1', [name]);
        if (!r.rowCount) throw new UsageError(`no such master user: ${name}`);
        deps.out(`removed master user ${name}`);
        return 0;
      });
    }
    case 'list': {
      onlyFlags(p, []);
      arity(p, 0, 0, 'master list');
      return withAdminClient(deps.url, async (c) => {
        const r = await c.query<{ name: string; active: boolean }>('SELECT name, active FROM mailmapd.master_users ORDER BY name');
        for (const row of r.rows) deps.out(`${row.name}${row.active ? '' : ' (inactive)'}`);
        return 0;
      });
    }
    default:
      throw new UsageError('usage: mailmapd master add|rm|list|passwd NAME');
  }
}
