// The directory's two big tables, mailboxes and aliases, as Map-like views of a byte table
// (byte-table.ts): the same get/set/has/delete the sync and the tests use on a Map, with
// the data kept off the JavaScript heap. The addresses in them (keys, and an alias's
// destinations) are stored as a local part and a domain id (packed-address.ts), a
// password hash without its scheme's prefix (hash-prefix.ts): what a caller sees is the
// plain text either way.

import { packValue, unpackValue, type AppPassword, type SendLimits } from './account.js';
import { createByteTable, LATIN1_VALUE, type ByteTable } from './byte-table.js';
import { createDomainIds, type DomainIds } from './domain-ids.js';
import { packHash, unpackHash } from './hash-prefix.js';
import { packAddress, packFound, packList, unpackAddress, unpackList } from './packed-address.js';

export interface MailboxRecord {
  /** `{SCHEME}hash` or a bare crypt string; null when the row has none (cannot log in). */
  password: string | null;
  /** 0 = no limit. */
  quotaBytes: number;
  active: boolean;
  /** Services the mailbox may not use (`imap`, …, `receive`); absent: none. */
  disabledServices?: readonly string[];
  /** While true the mailbox answers TEMP to Postfix and its logins fail temporarily. */
  maintenance?: boolean;
  /** Its active app passwords; absent: none. */
  appPasswords?: readonly AppPassword[];
  /** Its own sending limits; absent: its domain's. */
  sendLimits?: SendLimits;
}

export interface MailboxTable {
  readonly size: number;
  /** A fresh record each call: changing it changes nothing in the table. */
  get(address: string): MailboxRecord | undefined;
  /** Whether the mailbox exists and is active, without building its record (the lookup path). */
  isActive(address: string): boolean;
  /** The lookup path's view: 0 = absent or inactive, else RECIPIENT, or MAINTENANCE. */
  delivery(address: string): number;
  has(address: string): boolean;
  set(address: string, record: MailboxRecord): MailboxTable;
  delete(address: string): boolean;
  keys(): IterableIterator<string>;
  /** The byte table underneath, for the on-disk snapshot's raw records. */
  readonly raw: ByteTable;
}

/** Address (or `@domain`) → its active destinations, comma-joined, as Postfix wants them. */
export interface AliasTable {
  readonly size: number;
  get(address: string): string | undefined;
  has(address: string): boolean;
  set(address: string, destinations: string): AliasTable;
  /** set() when the address has no entry (and undefined); else its destinations, unchanged (a load's rows in one lookup each). */
  setIfAbsent(address: string, destinations: string): string | undefined;
  delete(address: string): boolean;
  keys(): IterableIterator<string>;
  /** The byte table underneath, for the on-disk snapshot's raw records. */
  readonly raw: ByteTable;
}

const ACTIVE = 1;
const MAINTENANCE_FLAG = 2;
const NO_RECEIVE = 4;

/** delivery(): an active mailbox that receives mail. */
export const RECIPIENT = 1;
/** delivery(): an active mailbox in maintenance (TEMP to Postfix). */
export const MAINTENANCE = 2;

/** The entry id of `address` in `t`, or -1; a domain no entry names is not looked for. */
function findAddress(t: ByteTable, ids: DomainIds, address: string): number {
  const key = packFound(address, ids);
  return key === undefined ? -1 : t.find(key);
}

/** Every key of `t`, unpacked. */
function* addresses(t: ByteTable, ids: DomainIds): IterableIterator<string> {
  for (const k of t.keys()) yield unpackAddress(k, ids);
}

// A packed value (account.ts: NUL and JSON) is kept as it is; a bare password is packed (hash-prefix.ts).
const storedValue = (v: string | null): { stored: string | null; latin1: boolean } =>
  v === null || v.startsWith('\u0000') ? { stored: v, latin1: false } : packHash(v);
const plainValue = (v: string | null): string | null => (v === null || v.startsWith('\u0000') ? v : unpackHash(v));

/** `ids`: the domain ids its addresses are stored with, shared with the alias table of the same data. */
export function createMailboxTable(ids: DomainIds = createDomainIds()): MailboxTable {
  const t = createByteTable({ numbers: true });
  const find = (address: string) => findAddress(t, ids, address);
  const table: MailboxTable = {
    get size() {
      return t.size;
    },
    get(address) {
      const id = find(address);
      if (id < 0) return undefined;
      const flags = t.flags(id);
      const { password, disabledServices, appPasswords, sendLimits } = unpackValue(plainValue(t.value(id)));
      const r: MailboxRecord = { password, quotaBytes: t.num(id), active: (flags & ACTIVE) !== 0 };
      // Only what is set, so a plain mailbox reads back exactly as it was written.
      if (disabledServices.length > 0) r.disabledServices = disabledServices;
      if ((flags & MAINTENANCE_FLAG) !== 0) r.maintenance = true;
      if (appPasswords.length > 0) r.appPasswords = appPasswords;
      if (sendLimits !== undefined) r.sendLimits = sendLimits;
      return r;
    },
    delivery(address) {
      const id = find(address);
      if (id < 0) return 0;
      const flags = t.flags(id);
      if ((flags & ACTIVE) === 0 || (flags & NO_RECEIVE) !== 0) return 0;
      return (flags & MAINTENANCE_FLAG) !== 0 ? MAINTENANCE : RECIPIENT;
    },
    isActive(address) {
      const id = find(address);
      return id >= 0 && (t.flags(id) & ACTIVE) !== 0;
    },
    has: (address) => find(address) >= 0,
    set(address, r) {
      const disabledServices = r.disabledServices ?? [];
      const flags = (r.active ? ACTIVE : 0) | (r.maintenance === true ? MAINTENANCE_FLAG : 0) | (disabledServices.includes('receive') ? NO_RECEIVE : 0);
      const extras = { disabledServices, appPasswords: r.appPasswords ?? [], sendLimits: r.sendLimits };
      const { stored, latin1 } = storedValue(packValue(r.password, extras));
      t.put(packAddress(address, ids), stored, r.quotaBytes, latin1 ? flags | LATIN1_VALUE : flags);
      return table;
    },
    delete(address) {
      const key = packFound(address, ids);
      return key !== undefined && t.delete(key);
    },
    keys: () => addresses(t, ids),
    raw: t,
  };
  return table;
}

/** `ids`: as createMailboxTable's. */
export function createAliasTable(ids: DomainIds = createDomainIds()): AliasTable {
  const t = createByteTable();
  const find = (address: string) => findAddress(t, ids, address);
  /** The destinations of entry `id` (-1: none), unpacked. */
  const destinations = (id: number): string | undefined => {
    const v = id < 0 ? null : t.value(id);
    return v === null ? undefined : unpackList(v, ids);
  };
  const table: AliasTable = {
    get size() {
      return t.size;
    },
    get: (address) => destinations(find(address)),
    has: (address) => find(address) >= 0,
    set(address, destinations) {
      t.put(packAddress(address, ids), packList(destinations, ids), 0, 0);
      return table;
    },
    setIfAbsent: (address, list) => destinations(t.putIfAbsent(packAddress(address, ids), packList(list, ids), 0, 0)),
    delete(address) {
      const key = packFound(address, ids);
      return key !== undefined && t.delete(key);
    },
    keys: () => addresses(t, ids),
    raw: t,
  };
  return table;
}
