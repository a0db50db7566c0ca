// Migration 10: DKIM keys, one row per (domain, selector), and the doorbell that tells every
// daemon to rewrite its signer's files (src/dkim/keeper.ts).
//
// Private keys are the one secret here that must not be readable by every role that reads
// the directory. PostgreSQL has no "deny", so the table grants what is public (the columns
// that DNS publishes anyway) to every role that may use schema mailmapd, and private_key
// to nobody: a role reads it only when granted it by name
// (`GRANT SELECT (private_key) ON mailmapd.dkim_keys TO …`, the daemon's role where it
// writes dkim_dir) or when it owns the table. A table-wide `GRANT SELECT ON ALL TABLES IN
// SCHEMA mailmapd` does grant it; the README says so and `mailmapd check` names such roles.
//
// Keys are not a directory kind: the change log would copy nothing useful, and a standby
// must see changes too, where NOTIFY never arrives. So a statement trigger bumps one
// counter (mailmapd.dkim_state, replicated like any row) that the daemons poll, and rings
// `NOTIFY mailmapd_dkim` with an empty payload where two-phase commit is off.

export const dkimKeysSql = `
CREATE TABLE mailmapd.dkim_keys (
  domain      text NOT NULL CHECK (domain = lower(domain) AND domain ~ '^[a-z0-9_]([a-z0-9_-]{0,62})?(\\.[a-z0-9_]([a-z0-9_-]{0,62})?)*$'),
  selector    text NOT NULL CHECK (selector = lower(selector) AND selector ~ '^[a-z0-9]([a-z0-9-]{0,62})?(\\.[a-z0-9]([a-z0-9-]{0,62})?)*$'),
  algorithm   text NOT NULL CHECK (algorithm IN ('rsa-2048', 'ed25519')),
  private_key text NOT NULL,
  public_key  text NOT NULL CHECK (public_key ~ '^[A-Za-z0-9+/]+=*$'),
  active      boolean NOT NULL DEFAULT true,
  created     timestamptz NOT NULL DEFAULT now(),
  -- When the key stopped signing (set by the trigger below when active goes false): mail
  -- signed with it may be verified until a while after, so it stays published.
  retired     timestamptz,
  PRIMARY KEY (domain, selector)
);

CREATE FUNCTION mailmapd.dkim_keys_retire() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
  IF NEW.active THEN
    NEW.retired := NULL;
  ELSIF TG_OP = 'UPDATE' AND OLD.active AND NEW.retired IS NULL THEN
    NEW.retired := now();
  END IF;
  RETURN NEW;
END
$fn$;
CREATE TRIGGER retire BEFORE INSERT OR UPDATE ON mailmapd.dkim_keys FOR EACH ROW EXECUTE FUNCTION mailmapd.dkim_keys_retire();

CREATE TABLE mailmapd.dkim_state (
  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  version   bigint NOT NULL DEFAULT 0
);
INSERT INTO mailmapd.dkim_state (singleton) VALUES (true);

-- SECURITY DEFINER so that a panel's role that writes keys needs no right on dkim_state;
-- static SQL, a fixed search_path, EXECUTE revoked from PUBLIC.
CREATE FUNCTION mailmapd.dkim_keys_changed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
  UPDATE mailmapd.dkim_state SET version = version + 1;
  IF current_setting('max_prepared_transactions')::int = 0 THEN
    PERFORM pg_notify('mailmapd_dkim', '');   -- a doorbell: never a key
  END IF;
  RETURN NULL;
END
$fn$;
REVOKE ALL ON FUNCTION mailmapd.dkim_keys_changed() FROM PUBLIC;
CREATE TRIGGER changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON mailmapd.dkim_keys
  FOR EACH STATEMENT EXECUTE FUNCTION mailmapd.dkim_keys_changed();

REVOKE ALL ON mailmapd.dkim_keys FROM PUBLIC;
GRANT SELECT (domain, selector, algorithm, public_key, active, created, retired) ON mailmapd.dkim_keys TO PUBLIC;
GRANT SELECT ON mailmapd.dkim_state TO PUBLIC;
`;
