// Service names on the command line: a comma-separated list, every name known, or a usage error.

import { serviceNames } from '../db/migrations/accounts.js';
import { UsageError } from '../errors.js';

export function parseServices(raw: string | true | undefined, flag: string, allowed: readonly string[] = serviceNames): string[] {
  if (raw === undefined) return [];
  if (raw === true || raw.trim() === '') throw new UsageError(`--${flag} needs a list of services (${allowed.join(',')})`);
  const out: string[] = [];
  for (const part of raw.split(',')) {
    const s = part.trim().toLowerCase();
    if (!allowed.includes(s)) throw new UsageError(`unknown service "${part.trim()}" in --${flag} (known: ${allowed.join(', ')})`);
    if (!out.includes(s)) out.push(s);
  }
  return out;
}
