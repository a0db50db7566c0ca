// Modoboa, in both layouts its databases are found in; `schema = modoboa` reads the one the
// database holds (profile-layout.ts: the first whose tables all exist), and `mailmapd check`
// says which.
//
// Modoboa 2.x (followed: 2.9.3, github.com/modoboa/modoboa): the tables of
// modoboa/core/models.py (core_user) and modoboa/admin/models/{domain,domain_alias,mailbox,
// alias}.py, modoboa/transport/models.py; the queries follow its own maps,
// modoboa/admin/postfix_maps.py, modoboa/relaydomains/postfix_maps.py,
// modoboa/transport/postfix_maps.py, and the Dovecot queries of doc-ng/installation/dovecot.md:
// - domains of type 'domain' are mailbox domains, 'relaydomain' ones relay domains (with
//   the transport_transport row whose pattern is the domain: service:next_hop);
// - a mailbox is admin_mailbox (local part) @ its domain, with core_user's password
//   (`{SHA512-CRYPT}$6$rounds=70000$…`, `{BLF-CRYPT}$2b$…`, …) and is_active; quota in MB
//   (Dovecot's `*:bytes=<quota>M`, 0 = none); is_send_only keeps it out of IMAP, POP3 and
//   delivery (its password_query and user_query); a pending admin_mailboxoperation
//   (rename, delete) is sql-maintain.cf's 450: maintenance;
// - aliases: admin_alias with its modoboa_admin_aliasrecipient rows, enabled, and expire_at
//   (sql-aliases.cf: `expire_at IS NULL OR expire_at > now()`; nothing in Modoboa disables
//   an expired alias, so the directory drops it when its time comes). The internal aliases
//   Modoboa makes are rows like any other: `alice@d → alice@d` per mailbox (enabled with
//   its user) and `@alias.d → @d` per domain alias.
// - message_limit (messages a day, Modoboa's policyd) is passed as send_limit_day of the
//   mailbox and, as the routing entry `send_limits:<domain>`, the domain's total for the
//   policy service.
//
// Modoboa 1.0 (followed: 1.0.1, the release of the seed's document — doc/integration/
// imap_and_smtp.rst as of 2013-09-23 — its modoboa/admin/models.py, migration 0036's frozen
// models, and modoboa/core/commands/postfix_maps.py, the `modoboa-admin.py postfix_maps` the
// seed runs): users in admin_user (`core_user` came with 1.1.0); no domain type (relay
// domains came with 1.1); admin_alias.address is the local part ('*' = catch-all) of its
// domain, its targets are mailboxes (admin_alias_mboxes), other aliases (admin_alias_aliases,
// from_alias_id → to_alias_id) and outside addresses (extmboxes, comma-separated); no
// internal aliases, no expire_at, no send-only mailboxes. Its passwords: `{CRYPT}`, `{MD5}`,
// a bare md5crypt `$1$…`, `{SHA256}`, `{PLAIN}`.
//
// A mailbox's address is a join (local part @ domain name), so a change to a user or a
// domain row changes mailbox keys that are not in the row. Those watches compute the
// affected keys with a set-returning expression — exactly the mailboxes of that user or
// domain, or none — rather than a NULL key, which would make every daemon reload every
// table for a password change. A mailbox row whose domain row is already gone (a
// database-level cascade) yields NULL: a full reload, which is always correct.

import type { Profile, Watch } from '../profile.js';
import { emptyQuery } from './empty.js';

const mailboxKey = `lower(mb.address || '@' || d.name)`;

/** Mailbox query of either layout: `users` is the user table. */
const mailboxQuery = (users: string, sendOnly: string, limit: string) => `SELECT ${mailboxKey} AS address, u.password,
         mb.quota::bigint * 1048576 AS quota_bytes, u.is_active AS active,
         CASE WHEN ${sendOnly} THEN '{imap,pop3,receive}'::text[] ELSE '{}'::text[] END AS disabled_services,
         EXISTS (SELECT 1 FROM admin_mailboxoperation op WHERE op.mailbox_id = mb.id) AS maintenance,
         NULL::json AS app_passwords, NULL::int AS send_limit_hour, ${limit} AS send_limit_day
    FROM admin_mailbox mb
    JOIN admin_domain d ON d.id = mb.domain_id
    JOIN ${users} u ON u.id = mb.user_id`;

const aliasDomainQuery = `SELECT lower(da.name) AS name, lower(d.name) AS target, da.enabled AS active
  FROM admin_domainalias da JOIN admin_domain d ON d.id = da.target_id`;

/** The watches both layouts share: domains, domain aliases, mailboxes (through their joins). */
function mailboxWatches(users: string): Watch[] {
  return [
    { table: 'admin_domainalias', kind: 'alias_domain', keyExpr: 'lower(r.name)' },
    {
      table: 'admin_domain',
      kind: 'alias_domain',
      keyExpr: 'unnest(ARRAY(SELECT lower(da.name) FROM {{admin_domainalias}} da WHERE da.target_id = r.id))',
    },
    {
      table: 'admin_mailbox',
      kind: 'mailbox',
      keyExpr: `lower(r.address || '@' || (SELECT d.name FROM {{admin_domain}} d WHERE d.id = r.domain_id))`,
    },
    {
      table: users,
      kind: 'mailbox',
      keyExpr: `unnest(ARRAY(SELECT ${mailboxKey} FROM {{admin_mailbox}} mb JOIN {{admin_domain}} d ON d.id = mb.domain_id WHERE mb.user_id = r.id))`,
    },
    {
      table: 'admin_domain',
      kind: 'mailbox',
      keyExpr: `unnest(ARRAY(SELECT lower(mb.address || '@' || r.name) FROM {{admin_mailbox}} mb WHERE mb.domain_id = r.id))`,
    },
    {
      table: 'admin_mailboxoperation',
      kind: 'mailbox',
      keyExpr: `unnest(ARRAY(SELECT ${mailboxKey} FROM {{admin_mailbox}} mb JOIN {{admin_domain}} d ON d.id = mb.domain_id WHERE mb.id = r.mailbox_id))`,
    },
  ];
}

// Modoboa creates an admin_quota row with each mailbox and its insert trigger adds to an
// existing row (for Dovecot's dict quota): usage is written by updating the row in place.
// Both layouts have the table with these columns.
const writes: Profile['writes'] = {
  quotaUsage: `UPDATE admin_quota AS t SET bytes = coalesce(u.b, t.bytes), messages = coalesce(u.m, t.messages)
      FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::timestamptz[]) AS u(a, b, m, at)
      WHERE lower(t.username) = u.a`,
};

/** The relay domain's and a domain's transport, as sql-transport.cf answers for the domain's name. */
const transportOf = (domain: string) => `(SELECT t.service || ':' || t.next_hop FROM transport_transport t WHERE lower(t.pattern) = lower(${domain}) LIMIT 1)`;

export const modoboa2Profile: Profile = {
  name: 'modoboa',
  layout: 'Modoboa 2.x (core_user)',
  queries: {
    domain: `SELECT lower(name) AS name, enabled AS active, message_limit AS send_limit_day FROM admin_domain WHERE type = 'domain'`,
    alias_domain: aliasDomainQuery,
    mailbox: mailboxQuery('core_user', 'mb.is_send_only', 'mb.message_limit'),
    alias: `SELECT lower(al.address) AS address, lower(alr.address) AS destination, al.enabled AS active, al.expire_at AS expires_at
              FROM admin_alias al JOIN modoboa_admin_aliasrecipient alr ON alr.alias_id = al.id`,
    route: `SELECT 'relay_domain:' || lower(d.name) AS key, coalesce(${transportOf('d.name')}, '') AS value
              FROM admin_domain d WHERE d.type = 'relaydomain' AND d.enabled
            UNION ALL
            SELECT 'domain_transport:' || lower(d.name), ${transportOf('d.name')}
              FROM admin_domain d WHERE d.type = 'domain' AND d.enabled AND ${transportOf('d.name')} IS NOT NULL
            UNION ALL
            SELECT 'send_limits:' || lower(d.name), ',,' || d.message_limit
              FROM admin_domain d WHERE d.type = 'domain' AND d.message_limit IS NOT NULL`,
    master_user: emptyQuery('master_user'),
  },
  watches: [
    { table: 'admin_domain', kind: 'domain', keyExpr: 'lower(r.name)' },
    ...mailboxWatches('core_user'),
    { table: 'admin_alias', kind: 'alias', keyExpr: 'lower(r.address)' },
    {
      table: 'modoboa_admin_aliasrecipient',
      kind: 'alias',
      keyExpr: 'lower((SELECT al.address FROM {{admin_alias}} al WHERE al.id = r.alias_id))',
    },
    {
      table: 'admin_domain',
      kind: 'route',
      keyExpr: `unnest(ARRAY['relay_domain:' || lower(r.name), 'domain_transport:' || lower(r.name), 'send_limits:' || lower(r.name)])`,
    },
    {
      table: 'transport_transport',
      kind: 'route',
      keyExpr: `unnest(ARRAY['relay_domain:' || lower(r.pattern), 'domain_transport:' || lower(r.pattern)])`,
    },
  ],
  expects: {
    core_user: { id: 'integer', email: 'text', password: 'text', is_active: 'boolean' },
    admin_domain: { id: 'integer', name: 'text', enabled: 'boolean', type: 'text', message_limit: 'integer', transport_id: 'integer' },
    admin_domainalias: { name: 'text', target_id: 'integer', enabled: 'boolean' },
    admin_mailbox: {
      id: 'integer',
      address: 'text',
      quota: 'integer',
      message_limit: 'integer',
      is_send_only: 'boolean',
      domain_id: 'integer',
      user_id: 'integer',
    },
    admin_mailboxoperation: { mailbox_id: 'integer' },
    admin_alias: { id: 'integer', address: 'text', enabled: 'boolean', expire_at: 'timestamp' },
    modoboa_admin_aliasrecipient: { address: 'text', alias_id: 'integer' },
    transport_transport: { pattern: 'text', service: 'text', next_hop: 'text' },
    admin_quota: { username: 'text', bytes: 'integer', messages: 'integer' },
  },
  writes,
};

/** An alias's key in Modoboa 1.0: its local part ('*': the catch-all) @ its domain's name. */
const alias10Key = (al: string, domain: string) => `lower(CASE WHEN ${al}.address = '*' THEN '@' ELSE ${al}.address || '@' END || ${domain})`;

export const modoboa10Profile: Profile = {
  name: 'modoboa',
  layout: 'Modoboa 1.0 (admin_user)',
  queries: {
    domain: 'SELECT lower(name) AS name, enabled AS active FROM admin_domain',
    alias_domain: aliasDomainQuery,
    mailbox: mailboxQuery('admin_user', 'false', 'NULL::int'),
    // sql-aliases.cf's three parts (mailboxes, aliases, outside addresses); its
    // sql-catchall-aliases.cf is the '*' alias.
    alias: `SELECT ${alias10Key('al', 'd.name')} AS address, lower(mb.address || '@' || md.name) AS destination, al.enabled AS active
              FROM admin_alias al JOIN admin_domain d ON d.id = al.domain_id
              JOIN admin_alias_mboxes am ON am.alias_id = al.id
              JOIN admin_mailbox mb ON mb.id = am.mailbox_id JOIN admin_domain md ON md.id = mb.domain_id
            UNION ALL
            SELECT ${alias10Key('al', 'd.name')}, ${alias10Key('t', 'td.name')}, al.enabled
              FROM admin_alias al JOIN admin_domain d ON d.id = al.domain_id
              JOIN admin_alias_aliases aa ON aa.from_alias_id = al.id
              JOIN admin_alias t ON t.id = aa.to_alias_id JOIN admin_domain td ON td.id = t.domain_id
            UNION ALL
            SELECT ${alias10Key('al', 'd.name')}, lower(btrim(x.dest)), al.enabled
              FROM admin_alias al JOIN admin_domain d ON d.id = al.domain_id
              CROSS JOIN LATERAL unnest(string_to_array(al.extmboxes, ',')) AS x(dest)
             WHERE btrim(x.dest) <> ''`,
    route: emptyQuery('route'),
    master_user: emptyQuery('master_user'),
  },
  watches: [
    { table: 'admin_domain', kind: 'domain', keyExpr: 'lower(r.name)' },
    ...mailboxWatches('admin_user'),
    { table: 'admin_alias', kind: 'alias', keyExpr: alias10Key('r', '(SELECT d.name FROM {{admin_domain}} d WHERE d.id = r.domain_id)') },
    {
      table: 'admin_alias_mboxes',
      kind: 'alias',
      keyExpr: `(SELECT ${alias10Key('al', 'd.name')} FROM {{admin_alias}} al JOIN {{admin_domain}} d ON d.id = al.domain_id WHERE al.id = r.alias_id)`,
    },
    {
      table: 'admin_alias_aliases',
      kind: 'alias',
      keyExpr: `(SELECT ${alias10Key('al', 'd.name')} FROM {{admin_alias}} al JOIN {{admin_domain}} d ON d.id = al.domain_id WHERE al.id = r.from_alias_id)`,
    },
    // A mailbox or an alias renamed changes the destinations of the aliases that point to it.
    {
      table: 'admin_mailbox',
      kind: 'alias',
      keyExpr: `unnest(ARRAY(SELECT ${alias10Key('al', 'd.name')} FROM {{admin_alias_mboxes}} am JOIN {{admin_alias}} al ON al.id = am.alias_id
        JOIN {{admin_domain}} d ON d.id = al.domain_id WHERE am.mailbox_id = r.id))`,
    },
    // A domain renamed or switched: its own aliases (named with the row's own name, which
    // the old and the new row each give), and the aliases elsewhere that point into it.
    {
      table: 'admin_domain',
      kind: 'alias',
      keyExpr: `unnest(ARRAY(SELECT ${alias10Key('al', 'r.name')} FROM {{admin_alias}} al WHERE al.domain_id = r.id
        UNION SELECT ${alias10Key('al', 'd.name')} FROM {{admin_alias}} al JOIN {{admin_domain}} d ON d.id = al.domain_id
         WHERE al.id IN (SELECT am.alias_id FROM {{admin_alias_mboxes}} am JOIN {{admin_mailbox}} mb ON mb.id = am.mailbox_id WHERE mb.domain_id = r.id)
            OR al.id IN (SELECT aa.from_alias_id FROM {{admin_alias_aliases}} aa JOIN {{admin_alias}} t ON t.id = aa.to_alias_id WHERE t.domain_id = r.id)))`,
    },
  ],
  expects: {
    admin_user: { id: 'integer', email: 'text', password: 'text', is_active: 'boolean' },
    admin_domain: { id: 'integer', name: 'text', enabled: 'boolean' },
    admin_domainalias: { name: 'text', target_id: 'integer', enabled: 'boolean' },
    admin_mailbox: { id: 'integer', address: 'text', quota: 'integer', domain_id: 'integer', user_id: 'integer' },
    admin_mailboxoperation: { mailbox_id: 'integer' },
    admin_alias: { id: 'integer', address: 'text', domain_id: 'integer', extmboxes: 'text', enabled: 'boolean' },
    admin_alias_mboxes: { alias_id: 'integer', mailbox_id: 'integer' },
    admin_alias_aliases: { from_alias_id: 'integer', to_alias_id: 'integer' },
    admin_quota: { username: 'text', bytes: 'integer', messages: 'integer' },
  },
  writes,
};

/** `schema = modoboa`: Modoboa 2.x's queries until the database says it holds 1.0's tables. */
export const modoboaProfile: Profile = { ...modoboa2Profile, layout: undefined, layouts: [modoboa2Profile, modoboa10Profile] };
