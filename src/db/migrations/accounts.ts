// Accounts: per-service access, maintenance, app passwords and master users.
//
// App passwords are part of their mailbox's directory entry (the mailbox query aggregates
// the active ones), so their trigger logs kind `mailbox` with the mailbox as key: the
// daemon re-reads the mailbox and its credential cache forgets it, exactly as for a
// password change. Master users are a directory kind of their own.

import { changeKindsSql } from '../change-kinds.js';

/** Services a mailbox may be denied; `receive` makes the address no recipient at all. */
export const serviceNames = ['imap', 'pop3', 'smtp', 'submission', 'sieve', 'receive'] as const;
export type ServiceName = (typeof serviceNames)[number];

const serviceList = serviceNames.map((s) => `'${s}'`).join(', ');

/**
 * What `mailboxes.disabled_services` may hold: the services, and `password` — the mailbox's
 * own password refused for every login, leaving its app passwords and OAuth2 bearer tokens
 * (an organisation that requires tokens; Mailu's AUTH_REQUIRE_TOKENS).
 */
export const mailboxDenials = [...serviceNames, 'password'] as const;

/** Migration 9: `password` joins the names disabled_services may hold. */
export const passwordDenialSql = `
ALTER TABLE mailmapd.mailboxes DROP CONSTRAINT IF EXISTS mailboxes_disabled_services_check;
ALTER TABLE mailmapd.mailboxes ADD CONSTRAINT mailboxes_disabled_services_check
  CHECK (disabled_services <@ ARRAY[${mailboxDenials.map((s) => `'${s}'`).join(', ')}]::text[] AND array_position(disabled_services, NULL) IS NULL);
`;

export const accountsSql = `
ALTER TABLE mailmapd.mailboxes
  ADD COLUMN disabled_services text[] NOT NULL DEFAULT '{}'
    CHECK (disabled_services <@ ARRAY[${serviceList}]::text[] AND array_position(disabled_services, NULL) IS NULL),
  ADD COLUMN maintenance boolean NOT NULL DEFAULT false;

CREATE TABLE mailmapd.app_passwords (
  id       bigserial PRIMARY KEY,
  mailbox  text NOT NULL REFERENCES mailmapd.mailboxes (address) ON UPDATE CASCADE ON DELETE CASCADE,
  name     text NOT NULL CHECK (name <> '' AND name !~ '[[:cntrl:]]'),
  password text NOT NULL,
  services text[] NOT NULL DEFAULT '{}'
    CHECK (services <@ ARRAY[${serviceList}]::text[] AND array_position(services, NULL) IS NULL),
  active   boolean NOT NULL DEFAULT true,
  created  timestamptz DEFAULT now(),
  UNIQUE (mailbox, name)
);

-- Panels write the mailbox as they got it: fold it like the mailbox's own address.
CREATE FUNCTION mailmapd.fold_app_password() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
  NEW.mailbox := lower(btrim(NEW.mailbox));
  RETURN NEW;
END
$fn$;
CREATE TRIGGER fold_names BEFORE INSERT OR UPDATE ON mailmapd.app_passwords FOR EACH ROW EXECUTE FUNCTION mailmapd.fold_app_password();

-- A master name never holds "@": it cannot be mistaken for a mailbox address.
CREATE TABLE mailmapd.master_users (
  name     text PRIMARY KEY CHECK (name = lower(name) AND name ~ '^[^@\\s*]+$'),
  password text NOT NULL,
  active   boolean NOT NULL DEFAULT true
);

${changeKindsSql}
SELECT mailmapd.watch_table('mailmapd.app_passwords', 'mailbox', 'r.mailbox');
SELECT mailmapd.watch_table('mailmapd.master_users', 'master_user', 'r.name');
`;
