// Who may send as whom, and copies: send-as grants (a mailbox may use an address, or every
// address of a domain, as its MAIL FROM) and BCC copies by sender or by recipient.
//
// Both reach the daemon as entries of the `route` kind, like the routing tables of migration
// 6: `send_as:<address>` → the granted mailboxes (one row per grant; the sync joins them),
// `sender_bcc:<address>` and `recipient_bcc:<address>` → the copy address. No new kind, so no
// profile needs a new query and the sync needs no new code.
//
// `active` is not in the contract's columns; it has a default, so a writer that knows only
// the contract's columns writes active grants, and a panel may switch one off without
// deleting it.
//
// The native profile's route query reads the new tables beside sender_relayhosts: a role
// that could read that query before (the directory's reader, granted SELECT table by table
// or ON ALL TABLES IN SCHEMA, which covers only the tables of that moment) must be able to
// read it after the upgrade, or the daemon could load no route at all. So every role (and
// PUBLIC) with SELECT on sender_relayhosts gets SELECT on the new tables; nobody else does.

export const sendAsSql = `
CREATE TABLE mailmapd.send_as (
  mailbox    text NOT NULL REFERENCES mailmapd.mailboxes (address) ON UPDATE CASCADE ON DELETE CASCADE,
  address    text NOT NULL CHECK (address = lower(address) AND address ~ '^[^@\\s,]*@[^@\\s,]+$'),
  active     boolean NOT NULL DEFAULT true,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (mailbox, address)
);
-- The sync re-reads grants by address.
CREATE INDEX send_as_address ON mailmapd.send_as (address);

CREATE TABLE mailmapd.bcc (
  address    text NOT NULL CHECK (address = lower(address) AND address ~ '^[^@\\s,]*@[^@\\s,]+$'),
  direction  text NOT NULL CHECK (direction IN ('sender', 'recipient')),
  bcc        text NOT NULL CHECK (bcc = lower(bcc) AND bcc ~ '^[^@\\s,]+@[^@\\s,]+$'),
  active     boolean NOT NULL DEFAULT true,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (address, direction)
);

CREATE FUNCTION mailmapd.fold_send_as_names() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
  CASE TG_TABLE_NAME
    WHEN 'send_as' THEN NEW.mailbox := lower(btrim(NEW.mailbox)); NEW.address := lower(btrim(NEW.address));
    WHEN 'bcc' THEN NEW.address := lower(btrim(NEW.address)); NEW.direction := lower(btrim(NEW.direction)); NEW.bcc := lower(btrim(NEW.bcc));
  END CASE;
  RETURN NEW;
END
$fn$;
CREATE TRIGGER fold_names BEFORE INSERT OR UPDATE ON mailmapd.send_as FOR EACH ROW EXECUTE FUNCTION mailmapd.fold_send_as_names();
CREATE TRIGGER fold_names BEFORE INSERT OR UPDATE ON mailmapd.bcc FOR EACH ROW EXECUTE FUNCTION mailmapd.fold_send_as_names();

DO $grant$
DECLARE
  g record;
BEGIN
  FOR g IN
    SELECT DISTINCT a.grantee FROM pg_class c, aclexplode(c.relacl) a
     WHERE c.oid = 'mailmapd.sender_relayhosts'::regclass AND a.privilege_type = 'SELECT' AND a.grantee <> c.relowner
  LOOP
    IF g.grantee = 0 THEN
      GRANT SELECT ON mailmapd.send_as, mailmapd.bcc TO PUBLIC;
    ELSE
      EXECUTE format('GRANT SELECT ON mailmapd.send_as, mailmapd.bcc TO %s', g.grantee::regrole);  -- regrole prints the name quoted as needed
    END IF;
  END LOOP;
END
$grant$;

SELECT mailmapd.watch_table('mailmapd.send_as', 'route', $$'send_as:' || r.address$$);
SELECT mailmapd.watch_table('mailmapd.bcc', 'route', $$r.direction || '_bcc:' || r.address$$);
`;
