// Turning profile rows (array mode, in the column order of profile.ts) into directory
// entries. Kept apart from the sync so that loads and incremental re-reads agree exactly.

import { fold } from '../directory/address.js';
import type { AliasDomainRecord, DirectoryData, MailboxRecord } from '../directory/directory.js';

type Row = unknown[];

const truthy = (v: unknown): boolean => v === true || v === 't' || v === 'true' || v === 1 || v === '1';

function text(v: unknown): string {
  return v === null || v === undefined ? '' : String(v);
}

export function domainRow(r: Row): [string, boolean] {
  return [fold(text(r[0])), truthy(r[1])];
}

export function aliasDomainRow(r: Row): [string, AliasDomainRecord] {
  return [fold(text(r[0])), { target: fold(text(r[1])), active: truthy(r[2]) }];
}

export function mailboxRow(r: Row): [string, MailboxRecord] {
  const quota = Number(r[2] ?? 0);
  return [
    fold(text(r[0])),
    {
      password: r[1] === null || r[1] === undefined || r[1] === '' ? null : String(r[1]),
      quotaBytes: Number.isFinite(quota) && quota > 0 ? quota : 0,
      active: truthy(r[3]),
    },
  ];
}

/** Adds one alias row to a map of address → comma-joined active destinations. */
export function addAliasRow(aliases: { get(k: string): string | undefined; set(k: string, v: string): unknown }, r: Row): void {
  if (!truthy(r[2])) return;
  const address = fold(text(r[0]));
  const dest = fold(text(r[1]).trim());
  if (address === '' || dest === '') return;
  const prev = aliases.get(address);
  if (prev === undefined) aliases.set(address, dest);
  else if (!`,${prev},`.includes(`,${dest},`)) aliases.set(address, `${prev},${dest}`);
}

export function addRow(data: DirectoryData, kind: 'domain' | 'alias_domain' | 'mailbox' | 'alias', r: Row): void {
  switch (kind) {
    case 'domain': {
      const [k, v] = domainRow(r);
      if (k !== '') data.domains.set(k, v || data.domains.get(k) === true);
      break;
    }
    case 'alias_domain': {
      const [k, v] = aliasDomainRow(r);
      if (k !== '') data.aliasDomains.set(k, v);
      break;
    }
    case 'mailbox': {
      const [k, v] = mailboxRow(r);
      if (k !== '') data.mailboxes.set(k, v);
      break;
    }
    case 'alias':
      addAliasRow(data.aliases, r);
      break;
  }
}
