// Modoboa, as the Dovecot queries of a Modoboa 0.x installation read it: admin_domain (name, enabled, type),
// admin_domainalias (name, target_id, enabled), admin_mailbox (address = the local part,
// domain_id, user_id, quota in MB), admin_user (email, password `{SHA512-CRYPT}…` or
// another Dovecot scheme, is_active), admin_alias (address, enabled) with its recipients
// in modoboa_admin_aliasrecipient (address, alias_id) — Modoboa's own table name.
// Modoboa ≥ 1.0 calls the user table core_user and adds admin_alias.expire_at: use a
// custom profile (config/schema.custom.example.sql) for that layout. Only domains of
// type 'domain' are mailbox domains (relay domains are Postfix's business).
//
// A mailbox's address is a join (local part @ domain name), so a change to a user or a
// domain row changes mailbox keys that are not in the row. Those watches compute the
// affected keys with a set-returning expression — exactly the mailboxes of that user or
// domain, or none — rather than a NULL key, which would make every daemon reload every
// table for a password change. A mailbox row whose domain row is already gone (a
// database-level cascade) yields NULL: a full reload, which is always correct.

import type { Profile } from '../profile.js';
import { emptyQuery } from './empty.js';

const mailboxKey = `lower(mb.address || '@' || d.name)`;

export const modoboaProfile: Profile = {
  name: 'modoboa',
  queries: {
    domain: `SELECT lower(name) AS name, enabled AS active FROM admin_domain WHERE type = 'domain'`,
    alias_domain: `SELECT lower(da.name) AS name, lower(d.name) AS target, da.enabled AS active
                     FROM admin_domainalias da JOIN admin_domain d ON d.id = da.target_id`,
    mailbox: `SELECT ${mailboxKey} AS address, u.password, mb.quota::bigint * 1048576 AS quota_bytes, u.is_active AS active
                FROM admin_mailbox mb
                JOIN admin_domain d ON d.id = mb.domain_id
                JOIN admin_user u ON u.id = mb.user_id`,
    alias: `SELECT lower(al.address) AS address, lower(alr.address) AS destination, al.enabled AS active
              FROM admin_alias al JOIN modoboa_admin_aliasrecipient alr ON alr.alias_id = al.id`,
    route: emptyQuery('route'),
    master_user: emptyQuery('master_user'),
  },
  watches: [
    { table: 'admin_domain', kind: 'domain', keyExpr: 'lower(r.name)' },
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
      table: 'admin_user',
      kind: 'mailbox',
      keyExpr: `unnest(ARRAY(SELECT ${mailboxKey} FROM {{admin_mailbox}} mb JOIN {{admin_domain}} d ON d.id = mb.domain_id WHERE mb.user_id = r.id))`,
    },
    {
      table: 'admin_domain',
      kind: 'mailbox',
      keyExpr: `unnest(ARRAY(SELECT lower(mb.address || '@' || r.name) FROM {{admin_mailbox}} mb WHERE mb.domain_id = r.id))`,
    },
    { table: 'admin_alias', kind: 'alias', keyExpr: 'lower(r.address)' },
    {
      table: 'modoboa_admin_aliasrecipient',
      kind: 'alias',
      keyExpr: 'lower((SELECT al.address FROM {{admin_alias}} al WHERE al.id = r.alias_id))',
    },
  ],
  // Modoboa creates an admin_quota row with each mailbox and its insert trigger adds to an
  // existing row (for Dovecot's dict quota): usage is written by updating the row in place.
  writes: {
    quotaUsage: `UPDATE admin_quota AS t SET bytes = coalesce(u.b, t.bytes), messages = coalesce(u.m, t.messages)
      FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::timestamptz[]) AS u(a, b, m, at)
      WHERE lower(t.username) = u.a`,
  },
};
