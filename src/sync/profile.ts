// A profile says how to read a database into the directory's shape. Each query returns
// the columns the directory wants, key column first, folded to lower case:
//   domains:       name, active
//   alias_domains: name, target, active
//                  [, send_limit_day] — optional, not read: a domain's sending limits reach
//                  the daemon as the routing entry `send_limits:<domain>` (routes, below)
//   mailboxes:     address, password, quota_bytes, active
//                  [, disabled_services, maintenance, app_passwords] — optional: a profile
//                  without them gets every service, no maintenance, no app passwords
//                  [, send_limit_hour, send_limit_day] — optional, after the three above:
//                  the mailbox's own sending limits (NULL: its domain's)
//   master_users:  name, password, active
//   aliases:       address, destination, active
//                  [, expires_at] — optional timestamptz: from then on the row no longer
//                  answers, with no write needed (Modoboa's alias expire_at); NULL: never
//   routes:        key, value   (key `<source>:<name>`, see directory/routes.ts; a domain's
//                  sending limits are `send_limits:<domain>` → `hour,day,total`, each
//                  empty for NULL)
// The sync runs them whole for a full load and wrapped as
// `SELECT * FROM (<query>) q WHERE q.<key> = ANY($1)` to re-read the keys a change touched.

import type { ChangeKind } from '../directory/directory.js';
import { NATIVE } from '../config.js';

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

/** The type families `mailmapd check` tells apart in a panel's tables (profile-check.ts). */
export type ColumnType = 'text' | 'integer' | 'boolean' | 'timestamp' | 'json';

export interface Profile {
  name: string;
  /** Which layout of the panel this is (`modoboa`: its 1.0 or 2.x tables), for messages. */
  layout?: string;
  /**
   * The panel's tables and columns the queries and watches read, with their types, as the
   * panel's release creates them: `mailmapd check` names each one missing or of another type.
   */
  expects?: Record<string, Record<string, ColumnType>>;
  /**
   * A panel whose releases keep their data in different tables: the database is asked
   * which one it holds (profile-layout.ts), and that layout's profile is read.
   */
  layouts?: readonly Profile[];
  queries: Record<ChangeKind, string>;
  /** Foreign tables to put triggers on; the native schema's come from `migrate`. */
  watches?: Watch[];
  /** Where the profile came from, for messages (a custom file's path). */
  source?: string;
  /** The panel's own tables for what the daemon writes back (writeback/statements.ts). */
  writes?: { lastLogins?: string; quotaUsage?: string };
  /**
   * Where the policy service reads quota usage when the panel keeps its own table: address,
   * bytes by position; with `$1` (timestamptz, or null for all) it reads only what changed
   * since, without it the whole table now and then (smtpd-policy/follower.ts).
   */
  reads?: { quotaUsage?: string };
}

export const keyColumn: Record<ChangeKind, string> = {
  domain: 'name',
  alias_domain: 'name',
  mailbox: 'address',
  alias: 'address',
  route: 'key',
  master_user: 'name',
};

export const expectedColumns: Record<ChangeKind, readonly string[]> = {
  domain: ['name', 'active'],
  alias_domain: ['name', 'target', 'active'],
  mailbox: ['address', 'password', 'quota_bytes', 'active'],
  alias: ['address', 'destination', 'active'],
  route: ['key', 'value'],
  master_user: ['name', 'password', 'active'],
};

// Every routing table in one query; the sync re-reads changed keys through it, which scans
// these small tables rather than using their indexes — cheap next to a mailbox table.
const nativeRouteQuery = `SELECT 'domain_transport:' || name AS key, transport AS value FROM mailmapd.domains WHERE transport IS NOT NULL AND active
  UNION ALL SELECT 'relay_domain:' || name, coalesce(transport, '') FROM mailmapd.relay_domains WHERE active
  UNION ALL SELECT 'relay_recipient:' || address, '' FROM mailmapd.relay_recipients
  UNION ALL SELECT 'sender_relayhost:' || sender, relayhost FROM mailmapd.sender_relayhosts WHERE active AND relayhost IS NOT NULL
  UNION ALL SELECT 'sender_credentials:' || sender, credentials FROM mailmapd.sender_relayhosts WHERE active AND credentials IS NOT NULL
  UNION ALL SELECT 'send_as:' || address, mailbox FROM mailmapd.send_as WHERE active
  UNION ALL SELECT direction || '_bcc:' || address, bcc FROM mailmapd.bcc WHERE active
  UNION ALL SELECT 'send_limits:' || name, concat(mailbox_send_limit_hour, ',', mailbox_send_limit_day, ',', send_limit_day)
    FROM mailmapd.domains WHERE num_nonnulls(mailbox_send_limit_hour, mailbox_send_limit_day, send_limit_day) > 0`;

export const nativeProfile: Profile = {
  name: NATIVE,
  queries: {
    domain: 'SELECT name, active FROM mailmapd.domains',
    alias_domain: 'SELECT name, target, active FROM mailmapd.alias_domains',
    // The active app passwords ride along with their mailbox: [name, hash, services] each.
    mailbox: `SELECT m.address, m.password, m.quota_bytes, m.active, m.disabled_services, m.maintenance,
                     (SELECT json_agg(json_build_array(a.name, a.password, a.services) ORDER BY a.id)
                        FROM mailmapd.app_passwords a WHERE a.mailbox = m.address AND a.active) AS app_passwords,
                     m.send_limit_hour, m.send_limit_day
                FROM mailmapd.mailboxes m`,
    alias: 'SELECT address, destination, active FROM mailmapd.aliases',
    route: nativeRouteQuery,
    master_user: 'SELECT name, password, active FROM mailmapd.master_users',
  },
};

/** Each kind's section name in a custom profile and in `mailmapd check`'s report. */
export const sectionName: Record<ChangeKind, string> = {
  domain: 'domains',
  alias_domain: 'alias_domains',
  mailbox: 'mailboxes',
  alias: 'aliases',
  route: 'routes',
  master_user: 'master_users',
};

/**
 * Whether the directory is read from mailmapd's own tables, whose change triggers come with
 * `mailmapd migrate` (nothing for `triggers install` to do): `schema = native` as the config
 * says it, or the profile that name selects. The one such test.
 */
export function isNative(schema: string | { name: string; watches?: readonly unknown[] }): boolean {
  return typeof schema === 'string' ? schema === NATIVE : schema.name === NATIVE && schema.watches === undefined;
}
