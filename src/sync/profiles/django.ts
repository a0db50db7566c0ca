// The fayvad Django mail app (seed 000, "Postfix/Dovecot Django Integration"; followed: that
// document and the app's mail/models.py as it describes it — migration
// 0007_add_password_hash; the files themselves were not found among public sources): mail_domain (name,
// enabled) and mail_emailaccount (email, password_hash as SHA512-CRYPT — a bare `$6$`
// string or `{SHA512-CRYPT}…` — and is_active). Names such an app leaves to
// Django's defaults: mail_domain.name, mail_emailaccount.email. It has no quota column
// (quota 0 = none) and no alias table: its virtual_aliases.cf only maps each account to
// itself, which the directory does for every mailbox anyway, so the alias query is empty.

import type { Profile } from '../profile.js';
import { emptyQuery } from './empty.js';

export const djangoProfile: Profile = {
  name: 'django',
  queries: {
    domain: 'SELECT lower(name) AS name, enabled AS active FROM mail_domain',
    alias_domain: emptyQuery('alias_domain'),
    mailbox: 'SELECT lower(email) AS address, password_hash AS password, 0::bigint AS quota_bytes, is_active AS active FROM mail_emailaccount',
    alias: emptyQuery('alias'),
    route: emptyQuery('route'),
    master_user: emptyQuery('master_user'),
  },
  watches: [
    { table: 'mail_domain', kind: 'domain', keyExpr: 'lower(r.name)' },
    { table: 'mail_emailaccount', kind: 'mailbox', keyExpr: 'lower(r.email)' },
  ],
  expects: {
    mail_domain: { name: 'text', enabled: 'boolean' },
    mail_emailaccount: { email: 'text', password_hash: 'text', is_active: 'boolean' },
  },
};
