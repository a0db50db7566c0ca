// PostfixAdmin (3.x, PostgreSQL): tables domain, alias_domain, mailbox, alias, as its
// upgrade.php creates them. Passwords are what $CONF['encrypt'] wrote: `{SHA512-CRYPT}…`
// with a dovecot:* setting, a bare `$1$`/`$6$` crypt string with md5crypt/php_crypt.
// mailbox.quota is in bytes (0 = none); alias.goto is a comma-separated list and every
// mailbox has an alias row pointing at itself. The pseudo-domain 'ALL' (superadmin
// rights) and backup-MX domains (relay, not mailbox domains) are left out.
// Every key is a column of the row itself: no join, so every trigger key is exact.

import type { Profile } from '../profile.js';

export const postfixadminProfile: Profile = {
  name: 'postfixadmin',
  queries: {
    domain: `SELECT lower(domain) AS name, active FROM domain WHERE domain <> 'ALL' AND NOT backupmx`,
    alias_domain: 'SELECT lower(alias_domain) AS name, lower(target_domain) AS target, active FROM alias_domain',
    mailbox: 'SELECT lower(username) AS address, password, quota AS quota_bytes, active FROM mailbox',
    alias: `SELECT lower(a.address) AS address, lower(btrim(g.dest)) AS destination, a.active
              FROM alias a CROSS JOIN LATERAL unnest(string_to_array(a.goto, ',')) AS g(dest)
             WHERE btrim(g.dest) <> ''`,
  },
  watches: [
    { table: 'domain', kind: 'domain', keyExpr: 'lower(r.domain)' },
    { table: 'alias_domain', kind: 'alias_domain', keyExpr: 'lower(r.alias_domain)' },
    { table: 'mailbox', kind: 'mailbox', keyExpr: 'lower(r.username)' },
    { table: 'alias', kind: 'alias', keyExpr: 'lower(r.address)' },
  ],
  // quota2 is what PostfixAdmin's mailbox list shows as usage (Dovecot's quota-clone or
  // dict quota fill it elsewhere). It has no place for a last login: those go to the native table.
  writes: {
    quotaUsage: `INSERT INTO quota2 AS t (username, bytes, messages)
      SELECT a, coalesce(b, 0), coalesce(m, 0) FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::timestamptz[]) AS u(a, b, m, at)
      ON CONFLICT (username) DO UPDATE SET bytes = excluded.bytes, messages = excluded.messages`,
  },
};
