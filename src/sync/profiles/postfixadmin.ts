// PostfixAdmin (3.x, PostgreSQL): tables domain, alias_domain, mailbox, alias, as its
// upgrade.php creates them. Passwords are what $CONF['encrypt'] wrote: `{SHA512-CRYPT}…`
// with a dovecot:* setting, a bare `$1$`/`$6$` crypt string with md5crypt/php_crypt.
// mailbox.quota is in bytes (0 = none); alias.goto is a comma-separated list and every
// mailbox has an alias row pointing at itself. The pseudo-domain 'ALL' (superadmin
// rights) is left out; backup-MX domains are relay domains (routes), not mailbox domains.
// Every key is a column of the row itself: no join, so every trigger key is exact.
// Accounts: PostfixAdmin 3.3's mailbox.smtp_active = false disables smtp and submission; it
// is read through to_jsonb(row) so that older schemas without the column keep working.
// Its mailbox_app_password table (3.3.9+) is not read — the query cannot name a table that
// older installs lack; a custom profile can aggregate it into app_passwords. No
// maintenance flag and no master users in PostfixAdmin.

import { emptyQuery } from './empty.js';
import type { Profile } from '../profile.js';

export const postfixadminProfile: Profile = {
  name: 'postfixadmin',
  queries: {
    domain: `SELECT lower(domain) AS name, active FROM domain WHERE domain <> 'ALL' AND NOT backupmx`,
    alias_domain: 'SELECT lower(alias_domain) AS name, lower(target_domain) AS target, active FROM alias_domain',
    mailbox: `SELECT lower(username) AS address, password, quota AS quota_bytes, active,
                     CASE WHEN to_jsonb(m) ->> 'smtp_active' IN ('false', '0', 'f') THEN '{smtp,submission}'::text[] ELSE '{}'::text[] END AS disabled_services
                FROM mailbox m`,
    alias: `SELECT lower(a.address) AS address, lower(btrim(g.dest)) AS destination, a.active
              FROM alias a CROSS JOIN LATERAL unnest(string_to_array(a.goto, ',')) AS g(dest)
             WHERE btrim(g.dest) <> ''`,
    // domain.transport is what PostfixAdmin's own transport_maps query answers; its default
    // 'virtual' means "the mailbox transport", which here is virtual_transport (Dovecot LMTP),
    // so only a real transport is answered. Backup-MX domains are relay domains.
    route: `SELECT 'domain_transport:' || lower(domain) AS key, transport AS value FROM domain
             WHERE domain <> 'ALL' AND NOT backupmx AND active AND coalesce(transport, '') NOT IN ('', 'virtual', 'virtual:')
            UNION ALL
            SELECT 'relay_domain:' || lower(domain), CASE WHEN coalesce(transport, '') IN ('', 'virtual', 'virtual:') THEN '' ELSE transport END
              FROM domain WHERE backupmx AND active`,
    master_user: emptyQuery('master_user'),
  },
  watches: [
    { table: 'domain', kind: 'domain', keyExpr: 'lower(r.domain)' },
    { table: 'domain', kind: 'route', keyExpr: "unnest(ARRAY['domain_transport:' || lower(r.domain), 'relay_domain:' || lower(r.domain)])" },
    { table: 'alias_domain', kind: 'alias_domain', keyExpr: 'lower(r.alias_domain)' },
    { table: 'mailbox', kind: 'mailbox', keyExpr: 'lower(r.username)' },
    { table: 'alias', kind: 'alias', keyExpr: 'lower(r.address)' },
  ],
  expects: {
    domain: { domain: 'text', active: 'boolean', backupmx: 'boolean', transport: 'text' },
    alias_domain: { alias_domain: 'text', target_domain: 'text', active: 'boolean' },
    mailbox: { username: 'text', password: 'text', quota: 'integer', active: 'boolean' },
    alias: { address: 'text', goto: 'text', active: 'boolean' },
  },
  // quota2 is what PostfixAdmin's mailbox list shows as usage (Dovecot's quota-clone or
  // dict quota fill it elsewhere). It has no place for a last login: those go to the native table.
  writes: {
    quotaUsage: `INSERT INTO quota2 AS t (username, bytes, messages)
      SELECT a, coalesce(b, 0), coalesce(m, 0) FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::timestamptz[]) AS u(a, b, m, at)
      ON CONFLICT (username) DO UPDATE SET bytes = excluded.bytes, messages = excluded.messages`,
  },
  // The same table for the policy service's quota at RCPT; it has no change time, so it is
  // read whole now and then.
  reads: { quotaUsage: 'SELECT lower(username) AS address, bytes FROM quota2' },
};
