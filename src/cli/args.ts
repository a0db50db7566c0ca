// The command line's argument helpers, for every verb: flags and positionals, and the
// checks that a domain or an address is one before the database sees it.

import { UsageError } from '../errors.js';
import { isSafePathPart } from '../directory/userdb.js';

export interface Parsed {
  positional: string[];
  flags: Map<string, string | true>;
}

export function parseArgs(args: string[], valued: string[]): Parsed {
  const positional: string[] = [];
  const flags = new Map<string, string | true>();
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a.startsWith('--')) {
      const [name, inline] = a.slice(2).split('=', 2) as [string, string | undefined];
      if (valued.includes(name)) {
        const v = inline ?? args[++i];
        if (v === undefined) throw new UsageError(`--${name} needs a value`);
        flags.set(name, v);
      } else {
        if (inline !== undefined) throw new UsageError(`--${name} takes no value`);
        flags.set(name, true);
      }
    } else positional.push(a);
  }
  return { positional, flags };
}

export function onlyFlags(p: Parsed, allowed: string[]): void {
  for (const f of p.flags.keys()) if (!allowed.includes(f)) throw new UsageError(`unknown option --${f}`);
}

export function arity(p: Parsed, min: number, max: number, usage: string): void {
  if (p.positional.length < min || p.positional.length > max) throw new UsageError(`usage: mailmapd ${usage}`);
}

const domainRe = /^(?=.{1,253}$)[a-z0-9_](?:[a-z0-9_-]{0,62})?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,62})?)*$|^\[[0-9a-f.:]+\]$/;
const localRe = /^[^\s@,"\\]{1,64}$/;

export function checkDomain(raw: string | undefined): string {
  if (raw === undefined || raw === '') throw new UsageError('missing domain name');
  const d = raw.trim().toLowerCase();
  if (d.includes('@')) throw new UsageError(`"${raw}" is an address, not a domain`);
  if (!domainRe.test(d)) throw new UsageError(`"${raw}" is not a valid domain name`);
  return d;
}

/** opts.mailbox: the address names a mailbox, so its local part becomes a directory name. */
export function checkAddress(raw: string | undefined, opts: { catchAll?: boolean; mailbox?: boolean } = {}): string {
  if (raw === undefined || raw === '') throw new UsageError('missing address');
  const a = raw.trim().toLowerCase();
  const parts = a.split('@');
  if (parts.length !== 2) throw new UsageError(`"${raw}" is not an address: it needs exactly one @`);
  const [local, domain] = parts as [string, string];
  if (local === '' && !opts.catchAll) throw new UsageError(`"${raw}" has an empty local part`);
  if (local !== '' && !localRe.test(local)) throw new UsageError(`"${raw}" has an invalid local part`);
  checkDomain(domain);
  if (opts.mailbox && !isSafePathPart(local)) {
    throw new UsageError(`"${raw}" cannot be a mailbox: its local part would leave its home directory (no "/", "..", or leading ".")`);
  }
  return a;
}
