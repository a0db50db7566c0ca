// Migration 8: domain limits that hold under REPEATABLE READ too. Migration 6's trigger
// takes an advisory lock per limited domain and then counts — but a REPEATABLE READ
// transaction counts in the snapshot it took before waiting for that lock, so eight
// concurrent panel sessions each saw the domain as it was before the others and all
// eight inserted into a domain of max_mailboxes = 3.
//
// Every write that a domain's limits are checked for now also bumps that domain's row in
// mailmapd.domain_limit_claims. Under READ COMMITTED that changes nothing (the count after
// the lock sees what the others committed); under REPEATABLE READ (and SERIALIZABLE) a
// writer whose snapshot predates another writer's committed claim cannot update the row
// and fails with serialization_failure (40001, "could not serialize access due to
// concurrent update"): the retry the application owes every such transaction then counts
// afresh. Raising a new limit on the domain claims the row too, so a limit lowered under a
// writer's snapshot is not missed either.
//
// The writers (a panel's role) have no right on the claims table, so the limit functions
// now run as their owner, the owner of schema mailmapd: they are trigger functions on
// mailmapd's own tables, which no one else owns, evaluate only its own text columns with a
// fixed search_path, cannot be called except as those triggers, and EXECUTE is revoked
// from PUBLIC.

export const domainLimitsSerialSql = `
CREATE TABLE mailmapd.domain_limit_claims (
  domain  text PRIMARY KEY,
  claims  bigint NOT NULL DEFAULT 1
);
REVOKE ALL ON mailmapd.domain_limit_claims FROM PUBLIC;

-- Waits for the domain's other writers, then claims its row: a serialization failure when
-- one of them committed after this transaction's snapshot (never under READ COMMITTED).
CREATE OR REPLACE FUNCTION mailmapd.claim_domain_limits(dom text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext('mailmapd.domain_limits'), hashtext(dom));
  INSERT INTO mailmapd.domain_limit_claims AS c (domain) VALUES (dom)
    ON CONFLICT (domain) DO UPDATE SET claims = c.claims + 1;
END
$fn$;
REVOKE ALL ON FUNCTION mailmapd.claim_domain_limits(text) FROM PUBLIC;

CREATE OR REPLACE FUNCTION mailmapd.check_domain_limits() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  dom text;
  d record;
  n bigint;
  adds boolean := TG_OP = 'INSERT' OR NEW.address IS DISTINCT FROM OLD.address;
BEGIN
  dom := split_part(NEW.address, '@', 2);
  SELECT name, max_mailboxes, max_aliases, max_quota_bytes INTO d FROM mailmapd.domains WHERE name = dom;
  IF NOT FOUND OR (d.max_mailboxes IS NULL AND d.max_aliases IS NULL AND d.max_quota_bytes IS NULL) THEN
    RETURN NEW;   -- no limit; a missing domain is the foreign key's (mailboxes) or nobody's (aliases) business
  END IF;
  IF TG_TABLE_NAME = 'mailboxes' THEN
    IF d.max_quota_bytes IS NOT NULL AND (NEW.quota_bytes = 0 OR NEW.quota_bytes > d.max_quota_bytes) THEN
      RAISE EXCEPTION 'domain % allows mailboxes of at most % bytes (max_quota_bytes); % asked for %',
        dom, d.max_quota_bytes, NEW.address, CASE WHEN NEW.quota_bytes = 0 THEN 'no limit' ELSE NEW.quota_bytes::text END
        USING ERRCODE = 'check_violation', CONSTRAINT = 'mailmapd_domain_limit';
    END IF;
    -- Only a write that a limit counts claims the row: a password change does not. A quota
    -- is checked against the limit this snapshot sees; a limit lowered meanwhile claimed
    -- the row, which this claim then runs into.
    IF (d.max_mailboxes IS NOT NULL AND adds)
       OR (d.max_quota_bytes IS NOT NULL AND (TG_OP = 'INSERT' OR NEW.quota_bytes IS DISTINCT FROM OLD.quota_bytes)) THEN
      PERFORM mailmapd.claim_domain_limits(dom);
    END IF;
    IF d.max_mailboxes IS NOT NULL AND adds THEN
      SELECT count(*) INTO n FROM mailmapd.mailboxes WHERE domain = dom;
      IF n >= d.max_mailboxes THEN
        RAISE EXCEPTION 'domain % allows at most % mailboxes (max_mailboxes)', dom, d.max_mailboxes
          USING ERRCODE = 'check_violation', CONSTRAINT = 'mailmapd_domain_limit';
      END IF;
    END IF;
  ELSIF d.max_aliases IS NOT NULL AND adds THEN
    PERFORM mailmapd.claim_domain_limits(dom);
    -- An alias is an address; another destination for an existing alias is no new alias.
    IF NOT EXISTS (SELECT 1 FROM mailmapd.aliases WHERE address = NEW.address) THEN
      SELECT count(DISTINCT address) INTO n FROM mailmapd.aliases WHERE split_part(address, '@', 2) = dom;
      IF n >= d.max_aliases THEN
        RAISE EXCEPTION 'domain % allows at most % aliases (max_aliases)', dom, d.max_aliases
          USING ERRCODE = 'check_violation', CONSTRAINT = 'mailmapd_domain_limit';
      END IF;
    END IF;
  END IF;
  RETURN NEW;
END
$fn$;
REVOKE ALL ON FUNCTION mailmapd.check_domain_limits() FROM PUBLIC;

CREATE OR REPLACE FUNCTION mailmapd.check_new_domain_limits() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  n bigint;
BEGIN
  PERFORM mailmapd.claim_domain_limits(NEW.name);
  IF NEW.max_mailboxes IS NOT NULL THEN
    SELECT count(*) INTO n FROM mailmapd.mailboxes WHERE domain = NEW.name;
    IF n > NEW.max_mailboxes THEN
      RAISE EXCEPTION 'domain % already has % mailboxes, more than max_mailboxes %', NEW.name, n, NEW.max_mailboxes
        USING ERRCODE = 'check_violation', CONSTRAINT = 'mailmapd_domain_limit';
    END IF;
  END IF;
  IF NEW.max_aliases IS NOT NULL THEN
    SELECT count(DISTINCT address) INTO n FROM mailmapd.aliases WHERE split_part(address, '@', 2) = NEW.name;
    IF n > NEW.max_aliases THEN
      RAISE EXCEPTION 'domain % already has % aliases, more than max_aliases %', NEW.name, n, NEW.max_aliases
        USING ERRCODE = 'check_violation', CONSTRAINT = 'mailmapd_domain_limit';
    END IF;
  END IF;
  IF NEW.max_quota_bytes IS NOT NULL THEN
    SELECT count(*) INTO n FROM mailmapd.mailboxes
     WHERE domain = NEW.name AND (quota_bytes = 0 OR quota_bytes > NEW.max_quota_bytes);
    IF n > 0 THEN
      RAISE EXCEPTION 'domain % has % mailboxes with a quota over max_quota_bytes % (or none)', NEW.name, n, NEW.max_quota_bytes
        USING ERRCODE = 'check_violation', CONSTRAINT = 'mailmapd_domain_limit';
    END IF;
  END IF;
  RETURN NEW;
END
$fn$;
REVOKE ALL ON FUNCTION mailmapd.check_new_domain_limits() FROM PUBLIC;
`;
