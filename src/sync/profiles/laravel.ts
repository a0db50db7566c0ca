// A typical home-grown Laravel mail panel: domains (domain, active), email_accounts (email,
// username, password as Laravel's bcrypt `$2y$…`, quota, active), aliases (source,
// destination, active). Such a panel does not say quota's unit: it is taken as MB, the unit
// such panels show and hand to Dovecot as `*:storage=…M` (0 = none).

import type { Profile } from '../profile.js';
import { emptyQuery } from './empty.js';

export const laravelProfile: Profile = {
  name: 'laravel',
  queries: {
    domain: 'SELECT lower(domain) AS name, active FROM domains',
    alias_domain: emptyQuery('alias_domain'),
    mailbox: 'SELECT lower(email) AS address, password, coalesce(quota, 0)::bigint * 1048576 AS quota_bytes, active FROM email_accounts',
    alias: 'SELECT lower(source) AS address, lower(destination) AS destination, active FROM aliases',
    route: emptyQuery('route'),
    master_user: emptyQuery('master_user'),
  },
  watches: [
    { table: 'domains', kind: 'domain', keyExpr: 'lower(r.domain)' },
    { table: 'email_accounts', kind: 'mailbox', keyExpr: 'lower(r.email)' },
    { table: 'aliases', kind: 'alias', keyExpr: 'lower(r.source)' },
  ],
};
