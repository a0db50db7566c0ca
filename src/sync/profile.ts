// A profile says how to read a database into the directory's shape. Each query returns
// the columns the directory wants, key column first, folded to lower case:
//   domains:       name, active
//   alias_domains: name, target, active
//   mailboxes:     address, password, quota_bytes, active
//   aliases:       address, destination, active
// The sync runs them whole for a full load and wrapped as
// `SELECT * FROM (<query>) q WHERE q.<key> = ANY($1)` to re-read the keys a change touched.

import type { ChangeKind } from '../directory/directory.js';

/**
 * One table whose changes must reach the daemon: `mailmapd triggers install` puts the
 * change triggers on it. `keyExpr` is evaluated per changed row with the row as `r` and
 * must give exactly the lower-cased key column of `kind`'s query; NULL means "reload
 * everything", a set-returning expression (`unnest(ARRAY(...))`) may give several keys or
 * none. The trigger runs with search_path = pg_catalog, so other tables are named as
 * `{{table}}`, which install replaces with the table's schema-qualified name.
 */
export interface Watch {
  table: string;
  kind: ChangeKind;
  keyExpr: string;
}

export interface Profile {
  name: string;
  queries: Record<ChangeKind, string>;
  /** Foreign tables to put triggers on; the native schema's come from `migrate`. */
  watches?: Watch[];
  /** Where the profile came from, for messages (a custom file's path). */
  source?: string;
  /** The panel's own tables for what the daemon writes back (writeback/statements.ts). */
  writes?: { lastLogins?: string; quotaUsage?: string };
}

export const keyColumn: Record<ChangeKind, string> = {
  domain: 'name',
  alias_domain: 'name',
  mailbox: 'address',
  alias: 'address',
};

export const expectedColumns: Record<ChangeKind, readonly string[]> = {
  domain: ['name', 'active'],
  alias_domain: ['name', 'target', 'active'],
  mailbox: ['address', 'password', 'quota_bytes', 'active'],
  alias: ['address', 'destination', 'active'],
};

export const changeKinds: readonly ChangeKind[] = ['domain', 'alias_domain', 'mailbox', 'alias'];

export const nativeProfile: Profile = {
  name: 'native',
  queries: {
    domain: 'SELECT name, active FROM mailmapd.domains',
    alias_domain: 'SELECT name, target, active FROM mailmapd.alias_domains',
    mailbox: 'SELECT address, password, quota_bytes, active FROM mailmapd.mailboxes',
    alias: 'SELECT address, destination, active FROM mailmapd.aliases',
  },
};
