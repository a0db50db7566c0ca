// Turning profile rows (array mode, in the column order of profile.ts) into directory
// entries. Kept apart from the sync so that loads and incremental re-reads agree exactly.

import { fold } from '../directory/address.js';
import type { AppPassword } from '../directory/account.js';
import { isListRoute } from '../directory/routes.js';
import type { AliasDomainRecord, ChangeKind, Directory, DirectoryData, MailboxRecord, MasterUserRecord } from '../directory/directory.js';
import { expiryOf, type TimedAliases } from './alias-expiry.js';

type Row = unknown[];

const truthy = (v: unknown): boolean => v === true || v === 't' || v === 'true' || v === 1 || v === '1';

function text(v: unknown): string {
  return v === null || v === undefined ? '' : String(v);
}

function domainRow(r: Row): [string, boolean] {
  return [fold(text(r[0])), truthy(r[1])];
}

function aliasDomainRow(r: Row): [string, AliasDomainRecord] {
  return [fold(text(r[0])), { target: fold(text(r[1])), active: truthy(r[2]) }];
}

/** A text[] as node-postgres gives it (an array), or its text form `{a,b}` from a cast-less profile. */
function textList(v: unknown): string[] {
  if (Array.isArray(v))
    return v
      .filter((x) => x !== null && x !== undefined)
      .map((x) => String(x).trim().toLowerCase())
      .filter((x) => x !== '');
  if (typeof v !== 'string' || v === '') return [];
  return v
    .replace(/^\{|\}$/g, '')
    .split(',')
    .map((x) => x.replace(/^"|"$/g, '').trim().toLowerCase())
    .filter((x) => x !== '' && x !== 'null');
}

/** `[[name, hash, services], …]` as json (parsed by node-postgres) or its text. */
function appPasswordList(v: unknown): AppPassword[] {
  let list = v;
  if (typeof v === 'string' && v !== '') {
    try {
      list = JSON.parse(v);
    } catch {
      return [];
    }
  }
  if (!Array.isArray(list)) return [];
  const out: AppPassword[] = [];
  for (const e of list) {
    if (!Array.isArray(e)) continue;
    const pw = e[1];
    if (typeof pw !== 'string' || pw === '') continue;
    out.push({ name: text(e[0]), password: pw, services: textList(e[2]) });
  }
  return out;
}

/** A sending limit column: a count ≥ 0, or null (NULL, absent, or not a count: the domain's). */
function limitOrNull(v: unknown): number | null {
  if (v === null || v === undefined || v === '') return null;
  const n = Number(v);
  return Number.isSafeInteger(n) && n >= 0 ? n : null;
}

export function mailboxRow(r: Row): [string, MailboxRecord] {
  const quota = Number(r[2] ?? 0);
  const record: MailboxRecord = {
    password: r[1] === null || r[1] === undefined || r[1] === '' ? null : String(r[1]),
    quotaBytes: Number.isFinite(quota) && quota > 0 ? quota : 0,
    active: truthy(r[3]),
  };
  // The optional columns (profile.ts): absent in a profile, they leave the defaults.
  const disabled = textList(r[4]);
  if (disabled.length > 0) record.disabledServices = disabled;
  if (truthy(r[5])) record.maintenance = true;
  const apps = appPasswordList(r[6]);
  if (apps.length > 0) record.appPasswords = apps;
  const hour = limitOrNull(r[7]);
  const day = limitOrNull(r[8]);
  if (hour !== null || day !== null) record.sendLimits = { hour, day };
  return [fold(text(r[0])), record];
}

function masterUserRow(r: Row): [string, MasterUserRecord] {
  return [fold(text(r[0])), { password: r[1] === null || r[1] === undefined || r[1] === '' ? null : String(r[1]), active: truthy(r[2]) }];
}

/** A routing row: `<source>:<name>` → its value ('' where the source has none, e.g. a relay domain without a transport). */
function routeRow(r: Row): [string, string] {
  return [fold(text(r[0])), text(r[1])];
}

/** Where alias rows end up: address → comma-joined active destinations, as the directory stores them. */
export interface AliasSink {
  get(address: string): string | undefined;
  set(address: string, destinations: string): unknown;
  /** set() when the address has none (and undefined); else what it has, unchanged. */
  setIfAbsent(address: string, destinations: string): string | undefined;
}

/** Alias rows with an end (their optional 4th column, expires_at): `now` drops the ended ones, `timed` gets the rest. */
export interface AliasTimes {
  now: number;
  timed: TimedAliases;
}

/**
 * Adds alias rows to `into`, each destination once, in row order; call finish() after the
 * last row. Linear in the rows: an address's first destination is written at once, and
 * the destinations of an address with several rows (a mailing list can have thousands)
 * are gathered in a set and written once at the end, not re-joined on every row.
 * A row whose expires_at has passed is left out; an address with a row still to end is
 * noted in `times.timed` with every destination's end (Infinity for rows without one).
 */
export function aliasRowAdder(into: AliasSink, times?: AliasTimes): { add(r: Row): void; finish(): void } {
  const lists = new Map<string, Set<string>>();
  const current = (address: string): Iterable<string> => lists.get(address) ?? into.get(address)?.split(',') ?? [];
  /** Before the row's destinations are added: what was there came from rows without an end. */
  const noteEnd = (address: string, dests: string[], end: number | undefined) => {
    let m = times!.timed.get(address);
    if (m === undefined) {
      if (end === undefined) return;
      m = new Map();
      for (const d of current(address)) m.set(d, Number.POSITIVE_INFINITY);
      times!.timed.set(address, m);
    }
    for (const d of dests) m.set(d, end === undefined ? Number.POSITIVE_INFINITY : Math.max(m.get(d) ?? 0, end));
  };
  return {
    add(r) {
      if (!truthy(r[2])) return;
      const end = times === undefined ? undefined : expiryOf(r[3]);
      if (end !== undefined && end <= times!.now) return;
      const address = fold(text(r[0]));
      const dest = fold(text(r[1]).trim());
      if (address === '' || dest === '') return;
      if (times !== undefined) noteEnd(address, dest.split(','), end);
      const list = lists.get(address);
      if (list !== undefined) {
        // A profile may return several destinations in one row, comma-joined.
        for (const d of dest.split(',')) list.add(d);
        return;
      }
      // One lookup a row: at ten million aliases, a get() and then a set() each missed the cache.
      const first = into.setIfAbsent(address, dest);
      if (first !== undefined && first !== dest) lists.set(address, new Set([...first.split(','), ...dest.split(',')]));
    },
    finish() {
      for (const [address, list] of lists) into.set(address, [...list].join(','));
      lists.clear();
      // Each timed address's destinations in the directory's order, for the timer to rebuild it.
      for (const [address, m] of times?.timed ?? []) {
        const ends = (into.get(address)?.split(',') ?? []).map((d): [string, number] => [d, m.get(d) ?? Number.POSITIVE_INFINITY]);
        if (ends.some(([, e]) => e !== Number.POSITIVE_INFINITY)) times!.timed.set(address, new Map(ends));
        else times!.timed.delete(address);
      }
    },
  };
}

/** Adds the rows of one kind in a full load to `data`; call finish() after the last. `times`: see aliasRowAdder. */
export function rowAdder(data: DirectoryData, kind: ChangeKind, times?: AliasTimes): { add(r: Row): void; finish(): void } {
  if (kind === 'alias') return aliasRowAdder(data.aliases, times);
  if (kind === 'route') return routeRowAdder(data);
  return { add: (r) => addRow(data, kind, r), finish() {} };
}

/**
 * Routing rows: one value per key, except the sources whose value is a list (send-as grants,
 * one row per granted mailbox), whose rows are joined as alias rows are.
 */
function routeRowAdder(data: DirectoryData): { add(r: Row): void; finish(): void } {
  const lists = aliasRowAdder(data.routes);
  return {
    add(r) {
      const [k, v] = routeRow(r);
      if (k === '') return;
      if (isListRoute(k)) lists.add([k, v, true]);
      else data.routes.set(k, v);
    },
    finish: () => lists.finish(),
  };
}

function addRow(data: DirectoryData, kind: Exclude<ChangeKind, 'alias' | 'route'>, r: Row): void {
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
    case 'master_user': {
      const [k, v] = masterUserRow(r);
      if (k !== '') data.masterUsers.set(k, v);
      break;
    }
  }
}

/**
 * Puts the entry `key` (folded) of `kind` from `data` into the directory, or removes it
 * there when `data` has none. A catch-up builds `data` from re-read rows with rowAdder, so
 * a load and a catch-up merge rows the same way.
 */
export function setEntry(directory: Directory, data: DirectoryData, kind: ChangeKind, key: string): void {
  switch (kind) {
    case 'domain':
      directory.setDomain(key, data.domains.get(key));
      break;
    case 'alias_domain':
      directory.setAliasDomain(key, data.aliasDomains.get(key));
      break;
    case 'mailbox':
      directory.setMailbox(key, data.mailboxes.get(key));
      break;
    case 'alias':
      directory.setAlias(key, data.aliases.get(key));
      break;
    case 'route':
      directory.setRoute(key, data.routes.get(key));
      break;
    case 'master_user':
      directory.setMasterUser(key, data.masterUsers.get(key));
      break;
  }
}
