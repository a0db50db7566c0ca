// The Laravel mail panel of seed 001 ("Postfix/Dovecot Integration with Admin Panel"): its
// tables domains (domain, active), email_accounts (email, username, password as Laravel's
// bcrypt `$2y$…`, quota, active) and aliases (source, destination, active), as the seed lists
// them and the panel's migrations create them. Follows the panel's email_accounts migration
// (`bigInteger('quota')->default(0); // 0 = unlimited, in bytes`) and its
// EmailAccountController, which turns the form's MB into bytes on create and update: quota
// is stored in bytes, 0 = unlimited, and is read as it is. An alias row may hold several
// destinations, comma-separated (the sync splits them, rows.ts).

import type { Profile } from '../profile.js';
import { emptyQuery } from './empty.js';

export const laravelProfile: Profile = {
  name: 'laravel',
  queries: {
    domain: 'SELECT lower(domain) AS name, active FROM domains',
    alias_domain: emptyQuery('alias_domain'),
    mailbox: 'SELECT lower(email) AS address, password, coalesce(quota, 0)::bigint AS quota_bytes, active FROM email_accounts',
    alias: 'SELECT lower(source) AS address, lower(destination) AS destination, active FROM aliases',
    route: emptyQuery('route'),
    master_user: emptyQuery('master_user'),
  },
  watches: [
    { table: 'domains', kind: 'domain', keyExpr: 'lower(r.domain)' },
    { table: 'email_accounts', kind: 'mailbox', keyExpr: 'lower(r.email)' },
    { table: 'aliases', kind: 'alias', keyExpr: 'lower(r.source)' },
  ],
  expects: {
    domains: { domain: 'text', active: 'boolean' },
    email_accounts: { email: 'text', password: 'text', quota: 'integer', active: 'boolean' },
    aliases: { source: 'text', destination: 'text', active: 'boolean' },
  },
};
