// Whether a recipient's mail can only land in full mailboxes. The recipient is resolved as
// the `aliases` map resolves it — extension, alias domains, the catch-all, aliases of
// aliases, every destination — down to the local mailboxes it reaches. Only when it reaches
// at least one, reaches nothing else (no remote address, nothing undecidable), and every one
// is over its quota plus the grace counting the message's size, is it full. Pure.

import { MAINTENANCE_ANSWER, type Directory } from '../directory/directory.js';
import type { QuotaGrace } from '../config.js';

/** Bytes a mailbox uses, as Dovecot last reported them (quota_usage); undefined: never reported. */
export type UsageOf = (mailbox: string) => number | undefined;

/** Aliases of aliases are followed this deep (Postfix's virtual_alias_recursion_limit is 1000; real chains are short). */
const MAX_DEPTH = 10;
/** Mailboxes and addresses looked at for one recipient at most: a huge list is not judged. */
const MAX_VISITED = 1000;

type Reach = { local: Set<string>; other: boolean };

/** The bound a mailbox may reach before it counts as full: its quota and the grace. */
export function quotaBound(quotaBytes: number, grace: QuotaGrace): number {
  return quotaBytes + Math.floor((quotaBytes * grace.percent) / 100) + grace.bytes;
}

/**
 * Where mail to `recipient` goes: the local mailboxes, and whether anything else is reached
 * (a remote address, an unknown one, a mailbox in maintenance, or a list too long or deep).
 */
export function reach(directory: Directory, recipient: string): Reach {
  const out: Reach = { local: new Set(), other: false };
  const seen = new Set<string>();
  const visit = (address: string, depth: number): void => {
    if (out.other) return;
    if (depth > MAX_DEPTH || seen.size >= MAX_VISITED) {
      out.other = true;
      return;
    }
    if (seen.has(address)) return;
    seen.add(address);
    const targets = directory.alias(address);
    if (targets === undefined || targets === MAINTENANCE_ANSWER) {
      out.other = true;
      return;
    }
    const at = address.lastIndexOf('@');
    for (const t of targets.split(',')) {
      // `@other.example`: Postfix keeps the local part and changes the domain.
      const next = t.startsWith('@') ? address.slice(0, at) + t : t;
      if (next === address) {
        const mb = directory.recipientMailbox(next);
        if (mb === undefined || mb === MAINTENANCE_ANSWER) out.other = true;
        else out.local.add(mb);
      } else visit(next, depth + 1);
      if (out.other) return;
    }
  };
  visit(recipient.toLowerCase(), 0);
  return out;
}

/**
 * The full mailbox mail to `recipient` of `size` bytes would be refused for, or undefined
 * (it fits somewhere, or cannot be decided). A mailbox without a quota is never full.
 */
export function fullMailbox(directory: Directory, usage: UsageOf, grace: QuotaGrace, recipient: string, size: number): string | undefined {
  const r = reach(directory, recipient);
  if (r.other || r.local.size === 0) return undefined;
  let first: string | undefined;
  for (const mb of r.local) {
    const quota = directory.user(mb);
    if (quota.status === 'unknown' || quota.quotaBytes <= 0) return undefined;
    const used = usage(mb);
    if (used === undefined || used + size <= quotaBound(quota.quotaBytes, grace)) return undefined;
    first ??= mb;
  }
  return first;
}
