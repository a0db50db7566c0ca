// The directory's two big tables, mailboxes and aliases, as Map-like views of a byte table
// (byte-table.ts): the same get/set/has/delete the sync and the tests use on a Map, with
// the data kept off the JavaScript heap.

import { createByteTable, type ByteTable } from './byte-table.js';

export interface MailboxRecord {
  /** `{SCHEME}hash` or a bare crypt string; null when the row has none (cannot log in). */
  password: string | null;
  /** 0 = no limit. */
  quotaBytes: number;
  active: boolean;
}

export interface MailboxTable {
  readonly size: number;
  /** A fresh record each call: changing it changes nothing in the table. */
  get(address: string): MailboxRecord | undefined;
  /** Whether the mailbox exists and is active, without building its record (the lookup path). */
  isActive(address: string): boolean;
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
  delete(address: string): boolean;
  keys(): IterableIterator<string>;
  /** The byte table underneath, for the on-disk snapshot's raw records. */
  readonly raw: ByteTable;
}

const ACTIVE = 1;

export function createMailboxTable(): MailboxTable {
  const t = createByteTable({ numbers: true });
  const table: MailboxTable = {
    get size() {
      return t.size;
    },
    get(address) {
      const id = t.find(address);
      if (id < 0) return undefined;
      return { password: t.value(id), quotaBytes: t.num(id), active: (t.flags(id) & ACTIVE) !== 0 };
    },
    isActive(address) {
      const id = t.find(address);
      return id >= 0 && (t.flags(id) & ACTIVE) !== 0;
    },
    has: (address) => t.find(address) >= 0,
    set(address, r) {
      t.put(address, r.password, r.quotaBytes, r.active ? ACTIVE : 0);
      return table;
    },
    delete: (address) => t.delete(address),
    keys: () => t.keys(),
    raw: t,
  };
  return table;
}

export function createAliasTable(): AliasTable {
  const t = createByteTable();
  const table: AliasTable = {
    get size() {
      return t.size;
    },
    get(address) {
      const id = t.find(address);
      return id < 0 ? undefined : (t.value(id) ?? undefined);
    },
    has: (address) => t.find(address) >= 0,
    set(address, destinations) {
      t.put(address, destinations, 0, 0);
      return table;
    },
    delete: (address) => t.delete(address),
    keys: () => t.keys(),
    raw: t,
  };
  return table;
}
