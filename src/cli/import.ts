// `mailmapd import`: moves a flat-file setup into the native schema — Dovecot's
// passwd-file (/etc/dovecot/users), Postfix's vmailbox and virtual map sources, and an
// optional list of domains. Files are parsed completely before the database is touched;
// a line that cannot be imported is named as file:line and stops the import unless
// --skip-bad is given. Everything is written in one transaction, with upserts, so a
// second run changes nothing; --dry-run does the same work and rolls it back, so its
// counts are exact. Passwords are taken as they are (`{SCHEME}hash` or a bare crypt
// string): no password is ever printed.

import { withDatabaseClient } from './database.js';
import { readFile } from 'node:fs/promises';
import type pg from 'pg';
import type { Config } from '../config.js';
import { currentVersion } from '../db/schema.js';
import { checkAddress, checkDomain } from './args.js';
import { inTransaction } from '../db/client.js';
import { UsageError } from '../errors.js';
import { isNative } from '../sync/profile.js';

type Out = (line: string) => void;

const usage = `usage: mailmapd import [--passwd-file FILE] [--vmailbox FILE] [--virtual FILE] [--domains FILE] [--dry-run] [--skip-bad]
  --passwd-file  Dovecot passwd-file: user@domain:{SCHEME}hash:uid:gid::home::userdb_quota_rule=*:storage=1G
  --vmailbox     Postfix virtual_mailbox_maps source: user@domain  domain/user/
  --virtual      Postfix virtual_alias_maps source: address|@domain|domain  dest[, dest…]
  --domains      one domain per line (Postfix virtual_mailbox_domains source)`;

export interface ImportedMailbox {
  address: string;
  /** undefined: only known from vmailbox, so an existing password is left alone. */
  password?: string | null;
  quotaBytes?: number;
}

export interface ImportPlan {
  domains: Set<string>;
  mailboxes: Map<string, ImportedMailbox>;
  aliases: Array<[string, string]>;
  /** `file:line: reason` for every line that cannot be imported. */
  bad: string[];
  warnings: string[];
}

function emptyPlan(): ImportPlan {
  return { domains: new Set(), mailboxes: new Map(), aliases: [], bad: [], warnings: [] };
}

const units: Record<string, number> = { '': 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };

/**
 * The byte limit of a Dovecot quota rule's `*` entry: `*:storage=N` is in kilobytes
 * unless a unit is given, `*:bytes=N` in bytes. undefined for anything else.
 */
export function quotaRuleBytes(rule: string): number | undefined {
  const m = /^\*:(storage|bytes)=(\d+)\s*([bkmgt]?)b?$/i.exec(rule.trim());
  if (!m) return undefined;
  const unit = m[3]!.toLowerCase();
  const mult = unit === '' && m[1]!.toLowerCase() === 'storage' ? 1024 : units[unit]!;
  const n = Number(m[2]) * mult;
  return Number.isSafeInteger(n) ? n : undefined;
}

/** Runs a validator from admin.ts and turns its UsageError into a problem line. */
function valid<T>(fn: () => T, where: string, bad: string[]): T | undefined {
  try {
    return fn();
  } catch (err) {
    if (err instanceof UsageError) {
      bad.push(`${where}: ${err.message}`);
      return undefined;
    }
    throw err;
  }
}

const domainPart = (a: string) => a.slice(a.lastIndexOf('@') + 1);

function contentLines(text: string): Array<[number, string]> {
  const out: Array<[number, string]> = [];
  text.split(/\r?\n/).forEach((l, i) => {
    if (l.trim() === '' || /^\s*#/.test(l)) return;
    out.push([i + 1, l]);
  });
  return out;
}

function parsePasswdFile(text: string, file: string, plan: ImportPlan, mailHome: string): void {
  const homeTemplates = new Set<string>();
  let homeMismatch = 0;
  let homeExample = '';
  for (const [n, line] of contentLines(text)) {
    const where = `${file}:${n}`;
    const f = line.split(':');
    if (f.length < 2) {
      plan.bad.push(`${where}: expected user:password:uid:gid:gecos:home:shell:extra_fields`);
      continue;
    }
    const address = valid(() => checkAddress(f[0], { mailbox: true }), where, plan.bad);
    if (address === undefined) continue;
    if (plan.mailboxes.get(address)?.password !== undefined) {
      plan.bad.push(`${where}: ${address} appears twice`);
      continue;
    }
    const password = f[1]!.trim() === '' ? null : f[1]!;
    if (password === null) plan.warnings.push(`${where}: ${address} has no password: imported, but it cannot log in`);
    let quotaBytes = 0;
    // Extra fields follow the 7th colon and may contain colons themselves.
    for (const field of f
      .slice(7)
      .join(':')
      .split(/\s+/)
      .filter((x) => x !== '')) {
      const eq = field.indexOf('=');
      const key = eq < 0 ? field : field.slice(0, eq);
      if (key !== 'userdb_quota_rule' && key !== 'quota_rule') continue;
      const bytes = quotaRuleBytes(field.slice(eq + 1));
      if (bytes === undefined)
        plan.warnings.push(`${where}: quota rule "${field.slice(eq + 1)}" not understood (only *:storage= and *:bytes=): imported without a quota`);
      else quotaBytes = bytes;
    }
    const home = (f[5] ?? '').trim();
    if (home !== '') {
      const at = address.lastIndexOf('@');
      const local = address.slice(0, at);
      const domain = address.slice(at + 1);
      const expected = mailHome.replaceAll('%u', address).replaceAll('%n', local).replaceAll('%d', domain);
      if (home.replace(/\/+$/, '') !== expected.replace(/\/+$/, '')) {
        homeMismatch++;
        if (homeExample === '') homeExample = `${home} for ${address}`;
      }
      const tail = `/${domain}/${local}`;
      homeTemplates.add(home.replace(/\/+$/, '').endsWith(tail) ? `${home.replace(/\/+$/, '').slice(0, -tail.length)}/%d/%n` : '?');
    }
    plan.domains.add(domainPart(address));
    plan.mailboxes.set(address, { address, password, quotaBytes });
  }
  if (homeMismatch > 0) {
    const only = homeTemplates.size === 1 && !homeTemplates.has('?') ? [...homeTemplates][0] : undefined;
    plan.warnings.push(
      `${file}: ${homeMismatch} home(s) differ from mail_home = ${mailHome} (e.g. ${homeExample})` +
        (only ? `: set mail_home = ${only}` : ': set mail_home to where the mail is before switching Dovecot over'),
    );
  }
}

/** Postfix map source lines: `key value`, a line starting with whitespace continues the previous one. */
function mapEntries(text: string, file: string, bad: string[]): Array<{ where: string; key: string; value: string }> {
  const entries: Array<{ where: string; key: string; value: string }> = [];
  for (const [n, line] of contentLines(text)) {
    if (/^\s/.test(line)) {
      const last = entries[entries.length - 1];
      if (last === undefined) bad.push(`${file}:${n}: continuation line without a key`);
      else last.value = `${last.value} ${line.trim()}`;
      continue;
    }
    const m = /^(\S+)(?:\s+(.*))?$/.exec(line.trim())!;
    entries.push({ where: `${file}:${n}`, key: m[1]!, value: (m[2] ?? '').trim() });
  }
  return entries;
}

function parseVmailbox(text: string, file: string, plan: ImportPlan): void {
  let differs = 0;
  let example = '';
  for (const e of mapEntries(text, file, plan.bad)) {
    if (e.key.startsWith('@')) {
      plan.bad.push(`${e.where}: catch-all mailbox ${e.key}: make it a catch-all alias (@domain → an address) instead`);
      continue;
    }
    const address = valid(() => checkAddress(e.key), e.where, plan.bad);
    if (address === undefined) continue;
    const at = address.lastIndexOf('@');
    const answer = `${address.slice(at + 1)}/${address.slice(0, at)}/`;
    if (e.value !== answer) {
      differs++;
      if (example === '') example = `${e.where}: ${e.value} where mailmapd answers ${answer}`;
    }
    plan.domains.add(domainPart(address));
    if (!plan.mailboxes.has(address)) plan.mailboxes.set(address, { address });
  }
  if (differs > 0) {
    plan.warnings.push(`${file}: ${differs} mailbox path(s) differ from what mailmapd answers (domain/local/), e.g. ${example}: move those maildirs`);
  }
}

function parseVirtual(text: string, file: string, plan: ImportPlan): void {
  const seen = new Set<string>();
  for (const e of mapEntries(text, file, plan.bad)) {
    if (!e.key.includes('@')) {
      // `example.com anything`: Postfix's way of declaring a virtual alias domain.
      if (/^[^.\s]+$/.test(e.key)) {
        plan.bad.push(`${e.where}: "${e.key}" matches a local part in every domain; write the full address (or @domain)`);
        continue;
      }
      const d = valid(() => checkDomain(e.key), e.where, plan.bad);
      if (d !== undefined) plan.domains.add(d);
      continue;
    }
    const address = valid(() => checkAddress(e.key, { catchAll: true }), e.where, plan.bad);
    if (address === undefined) continue;
    const dests = e.value.split(/[\s,]+/).filter((d) => d !== '');
    if (dests.length === 0) {
      plan.bad.push(`${e.where}: ${address} has no destination`);
      continue;
    }
    const good: string[] = [];
    for (const raw of dests) {
      if (!raw.includes('@')) {
        plan.bad.push(`${e.where}: destination "${raw}" has no domain (local delivery is not a virtual alias); write a full address`);
        continue;
      }
      const d = valid(() => checkAddress(raw), e.where, plan.bad);
      if (d !== undefined) good.push(d);
    }
    plan.domains.add(domainPart(address));
    for (const d of good) {
      const k = `${address}\u0000${d}`;
      if (seen.has(k)) continue;
      seen.add(k);
      plan.aliases.push([address, d]);
    }
  }
}

function parseDomains(text: string, file: string, plan: ImportPlan): void {
  for (const e of mapEntries(text, file, plan.bad)) {
    const d = valid(() => checkDomain(e.key), e.where, plan.bad);
    if (d !== undefined) plan.domains.add(d);
  }
}

export interface ImportCounts {
  domains: { added: number; present: number };
  mailboxes: { added: number; updated: number; unchanged: number };
  aliases: { added: number; present: number };
}

/** Writes a plan in the caller's transaction; returns what changed. */
async function applyPlan(c: pg.ClientBase, plan: ImportPlan): Promise<ImportCounts> {
  const domains = [...plan.domains].sort();
  const d = await c.query('INSERT INTO mailmapd.domains (name) SELECT unnest($1::text[]) ON CONFLICT (name) DO NOTHING RETURNING name', [domains]);

  const withPw = [...plan.mailboxes.values()].filter((m) => m.password !== undefined);
  const bare = [...plan.mailboxes.values()].filter((m) => m.password === undefined);
  const m = await c.query<{ inserted: boolean }>(
    `INSERT INTO mailmapd.mailboxes AS mb (address, password, quota_bytes)
     SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[])
     ON CONFLICT (address) DO UPDATE SET password = EXCLUDED.password, quota_bytes = EXCLUDED.quota_bytes
      WHERE (mb.password, mb.quota_bytes) IS DISTINCT FROM (EXCLUDED.password, EXCLUDED.quota_bytes)
     RETURNING (xmax = 0) AS inserted`,
    [withPw.map((x) => x.address), withPw.map((x) => x.password ?? null), withPw.map((x) => x.quotaBytes ?? 0)],
  );
  const b = await c.query('INSERT INTO mailmapd.mailboxes (address) SELECT unnest($1::text[]) ON CONFLICT (address) DO NOTHING RETURNING address', [
    bare.map((x) => x.address),
  ]);
  const mAdded = m.rows.filter((r) => r.inserted).length + (b.rowCount ?? 0);
  const mUpdated = m.rows.filter((r) => !r.inserted).length;

  const a = await c.query(
    `INSERT INTO mailmapd.aliases (address, destination) SELECT * FROM unnest($1::text[], $2::text[])
     ON CONFLICT (address, destination) DO NOTHING RETURNING id`,
    [plan.aliases.map((x) => x[0]), plan.aliases.map((x) => x[1])],
  );
  return {
    domains: { added: d.rowCount ?? 0, present: domains.length - (d.rowCount ?? 0) },
    mailboxes: { added: mAdded, updated: mUpdated, unchanged: plan.mailboxes.size - mAdded - mUpdated },
    aliases: { added: a.rowCount ?? 0, present: plan.aliases.length - (a.rowCount ?? 0) },
  };
}

interface Options {
  files: Array<{ kind: 'passwd-file' | 'vmailbox' | 'virtual' | 'domains'; path: string }>;
  dryRun: boolean;
  skipBad: boolean;
}

function parseOptions(args: string[]): Options {
  const opts: Options = { files: [], dryRun: false, skipBad: false };
  const fileFlags: Record<string, Options['files'][number]['kind']> = {
    'passwd-file': 'passwd-file',
    users: 'passwd-file',
    vmailbox: 'vmailbox',
    virtual: 'virtual',
    domains: 'domains',
  };
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--dry-run' || a === '-n') opts.dryRun = true;
    else if (a === '--skip-bad') opts.skipBad = true;
    else if (a.startsWith('--')) {
      const [name, inline] = a.slice(2).split('=', 2) as [string, string | undefined];
      const kind = fileFlags[name];
      if (kind === undefined) throw new UsageError(`unknown option ${a}\n${usage}`);
      const path = inline ?? args[++i];
      if (path === undefined || path === '') throw new UsageError(`--${name} needs a file name`);
      opts.files.push({ kind, path });
    } else throw new UsageError(`unexpected argument "${a}"\n${usage}`);
  }
  if (opts.files.length === 0) throw new UsageError(`nothing to import\n${usage}`);
  return opts;
}

export async function importCommand(config: Config, args: string[], out: Out): Promise<number> {
  const opts = parseOptions(args);
  const plan = emptyPlan();
  // passwd-file first: its passwords win over a bare vmailbox entry for the same address.
  const order = ['domains', 'passwd-file', 'vmailbox', 'virtual'];
  for (const f of [...opts.files].sort((x, y) => order.indexOf(x.kind) - order.indexOf(y.kind))) {
    let text: string;
    try {
      text = await readFile(f.path, 'utf8');
    } catch (err) {
      throw new UsageError(`cannot read ${f.path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    if (f.kind === 'passwd-file') parsePasswdFile(text, f.path, plan, config.mail_home);
    else if (f.kind === 'vmailbox') parseVmailbox(text, f.path, plan);
    else if (f.kind === 'virtual') parseVirtual(text, f.path, plan);
    else parseDomains(text, f.path, plan);
  }
  for (const b of plan.bad) out(`bad line: ${b}`);
  for (const w of plan.warnings) out(`warning: ${w}`);
  if (plan.bad.length > 0 && !opts.skipBad) {
    out(`${plan.bad.length} line(s) cannot be imported: nothing written (fix them, or --skip-bad to import the rest)`);
    return 2;
  }
  if (!isNative(config.schema)) out(`warning: schema = ${config.schema}: the daemon does not read the native tables this import writes`);

  return withDatabaseClient(config, 'mailmapd-import', async (c) => {
    if ((await currentVersion(c)) === 0) {
      out('the native schema is missing: run `mailmapd migrate` first');
      return 2;
    }
    let counts: ImportCounts;
    try {
      counts = await inTransaction(c, () => applyPlan(c, plan), { rollback: opts.dryRun });
    } catch (err) {
      const e = err as { code?: string; message: string };
      // A CHECK of the native schema refusing a value the parser let through.
      if (e.code?.startsWith('23')) {
        out(`the database refused the import (${e.message}); nothing written`);
        return 2;
      }
      throw err;
    }
    const v = (s: string) => (opts.dryRun ? `would be ${s}` : s);
    out(`domains: ${counts.domains.added} ${v('added')}, ${counts.domains.present} already present`);
    out(`mailboxes: ${counts.mailboxes.added} ${v('added')}, ${counts.mailboxes.updated} ${v('updated')}, ${counts.mailboxes.unchanged} unchanged`);
    out(`aliases: ${counts.aliases.added} ${v('added')}, ${counts.aliases.present} already present`);
    if (opts.dryRun) out('dry run: nothing written');
    return 0;
  });
}
