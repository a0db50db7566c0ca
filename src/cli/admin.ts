// `mailmapd domain|mailbox|alias …`: administration of the native schema. Input is checked
// before the database sees it, every change is one transaction, and a refused change
// leaves the database as it was. Errors are one line; see cli.ts for exit codes.

import type pg from 'pg';
import { NotFoundError, UsageError } from '../errors.js';
import { inTransaction } from '../db/client.js';
import { withAdminClient, type AdminDeps } from './admin-client.js';
import { arity, checkAddress, checkDomain, onlyFlags, parseArgs, type Parsed } from './args.js';
import { readNewPassword } from './password-input.js';
import { listSuffix, showLines, writtenBack } from './mailbox-usage.js';

function parseQuota(raw: string): number {
  const m = /^(\d+)\s*([kmgt]?)i?b?$/i.exec(raw.trim());
  if (!m) throw new UsageError(`bad quota "${raw}" (bytes, or with K/M/G/T)`);
  const mult = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }[m[2]!.toLowerCase() as ''];
  const n = Number(m[1]) * mult;
  if (!Number.isSafeInteger(n)) throw new UsageError(`quota "${raw}" is too large`);
  return n;
}

export async function requireDomain(c: pg.Client, domain: string): Promise<void> {
  const r = await c.query('SELECT 1 FROM mailmapd.domains WHERE name = $1', [domain]);
  if (r.rowCount === 0) throw new UsageError(`domain ${domain} does not exist (add it with: mailmapd domain add ${domain})`);
}

export async function domainCommand(args: string[], deps: AdminDeps): Promise<number> {
  const [verb, ...rest] = args;
  // add: the domain, its DKIM keys and the DNS records to publish (domain-add.ts).
  if (verb === 'add') return (await import('./domain-add.js')).domainAdd(rest, deps);
  // set: the domain's sending limits (send-limits.ts).
  if (verb === 'set') return (await import('./send-limits.js')).domainSetCommand(rest, deps);
  const p = parseArgs(rest, []);
  switch (verb) {
    case 'rm': {
      onlyFlags(p, []);
      arity(p, 1, 1, 'domain rm DOMAIN');
      const name = checkDomain(p.positional[0]);
      return withAdminClient(deps.url, async (c) => {
        await inTransaction(c, async () => {
          const ad = await c.query('DELETE FROM mailmapd.alias_domains WHERE name = $1', [name]);
          if (!ad.rowCount) {
            const n = await c.query<{ n: string }>('SELECT count(*) AS n FROM mailmapd.mailboxes WHERE domain = $1', [name]);
            if (Number(n.rows[0]!.n) > 0) throw new UsageError(`domain ${name} still has ${n.rows[0]!.n} mailbox(es); remove them first`);
            const d = await c.query('DELETE FROM mailmapd.domains WHERE name = $1', [name]);
            if (!d.rowCount) throw new NotFoundError(`no such domain: ${name}`);
            await c.query(`DELETE FROM mailmapd.aliases WHERE split_part(address, '@', 2) = $1`, [name]);
          }
        });
        deps.out(`removed ${name}`);
        return 0;
      });
    }
    case 'list': {
      onlyFlags(p, []);
      arity(p, 0, 0, 'domain list');
      return withAdminClient(deps.url, async (c) => {
        const r = await c.query<{ name: string; active: boolean; target: string | null }>(
          `SELECT name, active, NULL AS target FROM mailmapd.domains
           UNION ALL SELECT name, active, target FROM mailmapd.alias_domains ORDER BY name`,
        );
        for (const row of r.rows) {
          deps.out(`${row.name}${row.target ? ` -> ${row.target}` : ''}${row.active ? '' : ' (inactive)'}`);
        }
        return 0;
      });
    }
    default:
      throw new UsageError('usage: mailmapd domain add|rm|list|set …');
  }
}

export async function mailboxCommand(args: string[], deps: AdminDeps): Promise<number> {
  const [verb, ...rest] = args;
  // `set` parses its own flags (mailbox-set.ts): parsing them here first refused `--flag=value`.
  if (verb === 'set') return (await import('./mailbox-set.js')).mailboxSetCommand(rest, deps);
  const p = parseArgs(rest, ['quota']);
  switch (verb) {
    case 'add':
      return mailboxAdd(p, deps);
    case 'passwd':
      return mailboxPasswd(p, deps);
    case 'rm':
      return mailboxRm(p, deps);
    case 'list':
      return mailboxList(p, deps);
    case 'show':
      return mailboxShow(p, deps);
    default:
      throw new UsageError('usage: mailmapd mailbox add|rm|list|show|passwd|set …');
  }
}

async function mailboxAdd(p: Parsed, deps: AdminDeps): Promise<number> {
  onlyFlags(p, ['quota', 'inactive']);
  arity(p, 1, 1, 'mailbox add ADDRESS [--quota BYTES] [--inactive]   (password on stdin or at the prompt)');
  const address = checkAddress(p.positional[0], { mailbox: true });
  const quotaFlag = p.flags.get('quota');
  const quota = typeof quotaFlag === 'string' ? parseQuota(quotaFlag) : 0;
  // Check what can be checked before asking for a password nobody will use.
  await withAdminClient(deps.url, async (c) => {
    await requireDomain(c, address.split('@')[1]!);
    const dup = await c.query('SELECT 1 FROM mailmapd.mailboxes WHERE address = $1', [address]);
    if (dup.rowCount) throw new UsageError(`mailbox ${address} already exists`);
  });
  const hash = await deps.hash(await readNewPassword());
  return withAdminClient(deps.url, async (c) => {
    await requireDomain(c, address.split('@')[1]!);
    await c.query('INSERT INTO mailmapd.mailboxes (address, password, quota_bytes, active) VALUES ($1, $2, $3, $4)', [
      address,
      hash,
      quota,
      !p.flags.has('inactive'),
    ]);
    deps.out(`added mailbox ${address}`);
    return 0;
  });
}

async function mailboxPasswd(p: Parsed, deps: AdminDeps): Promise<number> {
  onlyFlags(p, []);
  arity(p, 1, 1, 'mailbox passwd ADDRESS   (password on stdin or at the prompt)');
  const address = checkAddress(p.positional[0]);
  await withAdminClient(deps.url, async (c) => {
    const r = await c.query('SELECT 1 FROM mailmapd.mailboxes WHERE address = $1', [address]);
    if (!r.rowCount) throw new NotFoundError(`no such mailbox: ${address}`);
  });
  const hash = await deps.hash(await readNewPassword());
  return withAdminClient(deps.url, async (c) => {
    const r = await c.query('UPDATE mailmapd.mailboxes SET password = $2 WHERE address = $1', [address, hash]);
    if (!r.rowCount) throw new NotFoundError(`no such mailbox: ${address}`);
    deps.out(`changed the password of ${address}`);
    return 0;
  });
}

async function mailboxRm(p: Parsed, deps: AdminDeps): Promise<number> {
  onlyFlags(p, []);
  arity(p, 1, 1, 'mailbox rm ADDRESS');
  const address = checkAddress(p.positional[0]);
  return withAdminClient(deps.url, async (c) => {
    const r = await c.query('DELETE FROM mailmapd.mailboxes WHERE address = $1', [address]);
    if (!r.rowCount) throw new NotFoundError(`no such mailbox: ${address}`);
    deps.out(`removed mailbox ${address}`);
    return 0;
  });
}

async function mailboxList(p: Parsed, deps: AdminDeps): Promise<number> {
  onlyFlags(p, []);
  arity(p, 0, 1, 'mailbox list [DOMAIN]');
  const domain = p.positional[0] === undefined ? undefined : checkDomain(p.positional[0]);
  return withAdminClient(deps.url, async (c) => {
    const r = await c.query<{ address: string; quota_bytes: string; active: boolean }>(
      `SELECT address, quota_bytes, active FROM mailmapd.mailboxes WHERE $1::text IS NULL OR domain = $1 ORDER BY address`,
      [domain ?? null],
    );
    const used = await writtenBack(
      c,
      r.rows.map((row) => row.address),
    );
    for (const row of r.rows) {
      const q = Number(row.quota_bytes);
      deps.out(`${row.address}${q > 0 ? ` quota=${q}` : ''}${row.active ? '' : ' (inactive)'}${listSuffix(used.get(row.address))}`);
    }
    return 0;
  });
}

async function mailboxShow(p: Parsed, deps: AdminDeps): Promise<number> {
  onlyFlags(p, []);
  arity(p, 1, 1, 'mailbox show ADDRESS');
  const address = checkAddress(p.positional[0]);
  return withAdminClient(deps.url, async (c) => {
    const r = await c.query<{ address: string; quota_bytes: string; active: boolean }>(
      'SELECT address, quota_bytes, active FROM mailmapd.mailboxes WHERE address = $1',
      [address],
    );
    const row = r.rows[0];
    if (!row) throw new NotFoundError(`no such mailbox: ${address}`);
    for (const line of showLines(row, (await writtenBack(c, [address])).get(address))) deps.out(line);
    return 0;
  });
}

export async function aliasCommand(args: string[], deps: AdminDeps): Promise<number> {
  const [verb, ...rest] = args;
  const p = parseArgs(rest, []);
  switch (verb) {
    case 'add': {
      onlyFlags(p, ['inactive']);
      if (p.positional.length < 2) throw new UsageError('usage: mailmapd alias add ADDRESS|@DOMAIN DESTINATION [DESTINATION…]');
      const address = checkAddress(p.positional[0], { catchAll: true });
      const dests = p.positional
        .slice(1)
        .flatMap((d) => d.split(','))
        .filter((d) => d.trim() !== '')
        .map((d) => checkAddress(d, { catchAll: true }));
      return withAdminClient(deps.url, async (c) => {
        await inTransaction(c, async () => {
          const domain = address.split('@')[1]!;
          const known = await c.query('SELECT 1 FROM mailmapd.domains WHERE name = $1 UNION ALL SELECT 1 FROM mailmapd.alias_domains WHERE name = $1', [
            domain,
          ]);
          if (!known.rowCount) throw new UsageError(`domain ${domain} does not exist (add it with: mailmapd domain add ${domain})`);
          for (const d of dests) {
            await c.query('INSERT INTO mailmapd.aliases (address, destination, active) VALUES ($1, $2, $3)', [address, d, !p.flags.has('inactive')]);
          }
        });
        deps.out(`added alias ${address} -> ${dests.join(', ')}`);
        return 0;
      });
    }
    case 'rm': {
      onlyFlags(p, []);
      arity(p, 1, 2, 'alias rm ADDRESS [DESTINATION]');
      const address = checkAddress(p.positional[0], { catchAll: true });
      const dest = p.positional[1] === undefined ? null : checkAddress(p.positional[1], { catchAll: true });
      return withAdminClient(deps.url, async (c) => {
        const r = await c.query('DELETE FROM mailmapd.aliases WHERE address = $1 AND ($2::text IS NULL OR destination = $2)', [address, dest]);
        if (!r.rowCount) throw new NotFoundError(`no such alias: ${address}${dest ? ` -> ${dest}` : ''}`);
        deps.out(`removed ${r.rowCount} alias row(s) of ${address}`);
        return 0;
      });
    }
    case 'list': {
      onlyFlags(p, []);
      arity(p, 0, 1, 'alias list [DOMAIN]');
      const domain = p.positional[0] === undefined ? undefined : checkDomain(p.positional[0]);
      return withAdminClient(deps.url, async (c) => {
        const r = await c.query<{ address: string; destination: string; active: boolean }>(
          `SELECT address, destination, active FROM mailmapd.aliases
            WHERE $1::text IS NULL OR split_part(address, '@', 2) = $1 ORDER BY address, destination`,
          [domain ?? null],
        );
        for (const row of r.rows) deps.out(`${row.address} -> ${row.destination}${row.active ? '' : ' (inactive)'}`);
        return 0;
      });
    }
    default:
      throw new UsageError('usage: mailmapd alias add|rm|list …');
  }
}
