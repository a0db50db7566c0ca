// Accounts: per-service access, maintenance, app passwords and master users.
//
// App passwords are part of their mailbox's directory entry (the mailbox query aggregates
// the active ones), so their trigger logs kind `mailbox` with the mailbox as key: the
// daemon re-reads the mailbox and its credential cache forgets it, exactly as for a
// password change. Master users are a directory kind of their own.

/** Services a mailbox may be denied; `receive` makes the address no recipient at all. */
export const serviceNames = ['imap', 'pop3', 'smtp', 'submission', 'sieve', 'receive'] as const;
export type ServiceName = (typeof serviceNames)[number];

const serviceList = serviceNames.map((s) => `'${s}'`).join(', ');

/** Lets the change log take every kind of this version; idempotent, also for panels' change logs. */
export const widenChangeKindsSql = `
-- The change log learns the new kind. Other migrations may have widened the list too, so
-- it is read from the constraint in place and extended, never rewritten from a fixed list.
DO $do$
DECLARE
  c record;
  kinds text[] := ARRAY['domain', 'alias_domain', 'mailbox', 'alias', 'master_user'];
BEGIN
  FOR c IN SELECT conname, pg_get_constraintdef(oid) AS def FROM pg_constraint
            WHERE conrelid = 'mailmapd.changes'::regclass AND contype = 'c' AND pg_get_constraintdef(oid) ~ '\\mkind\\M'
  LOOP
    kinds := kinds || ARRAY(SELECT m[1] FROM regexp_matches(c.def, '''([a-z_]+)''', 'g') AS m);
    EXECUTE format('ALTER TABLE mailmapd.changes DROP CONSTRAINT %I', c.conname);
  END LOOP;
  EXECUTE format('ALTER TABLE mailmapd.changes ADD CONSTRAINT changes_kind_check CHECK (kind = ANY (%L::text[]))',
                 (SELECT array_agg(DISTINCT k ORDER BY k) FROM unnest(kinds) AS k));
END
$do$;
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

${widenChangeKindsSql}
SELECT mailmapd.watch_table('mailmapd.app_passwords', 'mailbox', 'r.mailbox');
SELECT mailmapd.watch_table('mailmapd.master_users', 'master_user', 'r.name');
`;
