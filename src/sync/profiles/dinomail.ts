// DinoMail (github.com/nanoy42/dinomail, Django; followed: its src/core/models.py and the
// seed's "Linking DinoMail to postfix and dovecot", whose pgsql queries read these tables):
// dinomail_virtualdomain (name), dinomail_virtualuser (email, password, quota in bytes —
// "The quota is stored in bytes", nullable), dinomail_virtualalias (source, destination). Passwords carry their Dovecot scheme (`{SSHA512}…` by default,
// DINOMAIL_PASSWORD_SCHEME chooses another). DinoMail has no active flags and no alias
// domains: every row is active, and the alias-domain query is empty.

import type { Profile } from '../profile.js';
import { emptyQuery } from './empty.js';

export const dinomailProfile: Profile = {
  name: 'dinomail',
  queries: {
    domain: 'SELECT lower(name) AS name, true AS active FROM dinomail_virtualdomain',
    alias_domain: emptyQuery('alias_domain'),
    mailbox: 'SELECT lower(email) AS address, password, coalesce(quota, 0)::bigint AS quota_bytes, true AS active FROM dinomail_virtualuser',
    alias: 'SELECT lower(source) AS address, lower(destination) AS destination, true AS active FROM dinomail_virtualalias',
    route: emptyQuery('route'),
    master_user: emptyQuery('master_user'),
  },
  watches: [
    { table: 'dinomail_virtualdomain', kind: 'domain', keyExpr: 'lower(r.name)' },
    { table: 'dinomail_virtualuser', kind: 'mailbox', keyExpr: 'lower(r.email)' },
    { table: 'dinomail_virtualalias', kind: 'alias', keyExpr: 'lower(r.source)' },
  ],
  expects: {
    dinomail_virtualdomain: { name: 'text' },
    dinomail_virtualuser: { email: 'text', password: 'text', quota: 'integer' },
    dinomail_virtualalias: { source: 'text', destination: 'text' },
  },
};
