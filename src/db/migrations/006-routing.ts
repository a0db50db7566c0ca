// Migration 6: what Postfix routes by besides mailboxes and aliases — per-domain transports,
// relay domains (backup MX) with their recipients, sender-dependent relay hosts and their
// credentials — and per-domain limits that every writer meets, not only the CLI.
//
// The routing tables reach the daemon as one directory kind, `route`, whose keys say which
// table they come from (`relay_domain:example.net`): one query, one change-log kind, and the
// sync needs no new code for five small maps.

export const routingSql = `
ALTER TABLE mailmapd.domains
  ADD COLUMN IF NOT EXISTS transport text CHECK (transport IS NULL OR transport ~ '^[^\\s,]+$'),
  ADD COLUMN IF NOT EXISTS max_mailboxes integer CHECK (max_mailboxes IS NULL OR max_mailboxes >= 0),
  ADD COLUMN IF NOT EXISTS max_aliases integer CHECK (max_aliases IS NULL OR max_aliases >= 0),
  ADD COLUMN IF NOT EXISTS max_quota_bytes bigint CHECK (max_quota_bytes IS NULL OR max_quota_bytes > 0);

CREATE TABLE mailmapd.relay_domains (
  name       text PRIMARY KEY CHECK (name = lower(name) AND name ~ '^[^@\\s,/]+$'),
  transport  text CHECK (transport IS NULL OR transport ~ '^[^\\s,]+$'),
  active     boolean NOT NULL DEFAULT true,
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE mailmapd.relay_recipients (
  address    text PRIMARY KEY CHECK (address = lower(address) AND address ~ '^[^@\\s,]*@[^@\\s,]+$'),
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE mailmapd.sender_relayhosts (
  sender      text PRIMARY KEY CHECK (sender = lower(sender) AND sender ~ '^[^@\\s,]*@[^@\\s,]+$'),
  relayhost   text CHECK (relayhost IS NULL OR relayhost ~ '^[^\\s,]+$'),
  -- user:password for the relay host's SMTP AUTH, handed to Postfix's smtp client only.
  credentials text CHECK (credentials IS NULL OR credentials ~ '^[^\\s:]+:.+$'),
  active      boolean NOT NULL DEFAULT true,
  created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE OR REPLACE FUNCTION mailmapd.fold_routing_names() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
  CASE TG_TABLE_NAME
    WHEN 'relay_domains' THEN NEW.name := lower(btrim(NEW.name));
    WHEN 'relay_recipients' THEN NEW.address := lower(btrim(NEW.address));
    WHEN 'sender_relayhosts' THEN NEW.sender := lower(btrim(NEW.sender));
  END CASE;
  RETURN NEW;
END
$fn$;
CREATE TRIGGER fold_names BEFORE INSERT OR UPDATE ON mailmapd.relay_domains FOR EACH ROW EXECUTE FUNCTION mailmapd.fold_routing_names();
CREATE TRIGGER fold_names BEFORE INSERT OR UPDATE ON mailmapd.relay_recipients FOR EACH ROW EXECUTE FUNCTION mailmapd.fold_routing_names();
CREATE TRIGGER fold_names BEFORE INSERT OR UPDATE ON mailmapd.sender_relayhosts FOR EACH ROW EXECUTE FUNCTION mailmapd.fold_routing_names();

-- Domain limits, checked in the writer's own rights (no SECURITY DEFINER: it reads only the
-- tables being written). A transaction-scoped advisory lock per limited domain — which needs
-- no privilege, unlike locking the domain's row — makes two writers adding the domain's last
-- allowed mailbox at once take turns, and the count after it sees what the other committed
-- (under READ COMMITTED, every statement of a function takes a fresh snapshot). Only limited
-- domains pay for the count; an unlimited domain's bulk insert costs one key lookup a row.
CREATE OR REPLACE FUNCTION mailmapd.check_domain_limits() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
  dom text;
  d record;
  n bigint;
BEGIN
  dom := split_part(NEW.address, '@', 2);
  SELECT name, max_mailboxes, max_aliases, max_quota_bytes INTO d FROM mailmapd.domains WHERE name = dom;
  IF NOT FOUND OR (d.max_mailboxes IS NULL AND d.max_aliases IS NULL AND d.max_quota_bytes IS NULL) THEN
    RETURN NEW;   -- no limit; a missing domain is the foreign key's (mailboxes) or nobody's (aliases) business
  END IF;
  PERFORM pg_advisory_xact_lock(hashtext('mailmapd.domain_limits'), hashtext(dom));
  IF TG_TABLE_NAME = 'mailboxes' THEN
    IF d.max_quota_bytes IS NOT NULL AND (NEW.quota_bytes = 0 OR NEW.quota_bytes > d.max_quota_bytes) THEN
      RAISE EXCEPTION 'domain % allows mailboxes of at most % bytes (max_quota_bytes); % asked for %',
        dom, d.max_quota_bytes, NEW.address, CASE WHEN NEW.quota_bytes = 0 THEN 'no limit' ELSE NEW.quota_bytes::text END
        USING ERRCODE = 'check_violation', CONSTRAINT = 'mailmapd_domain_limit';
    END IF;
    IF d.max_mailboxes IS NOT NULL AND (TG_OP = 'INSERT' OR NEW.address IS DISTINCT FROM OLD.address) THEN
      SELECT count(*) INTO n FROM mailmapd.mailboxes WHERE domain = dom;
      IF n >= d.max_mailboxes THEN
        RAISE EXCEPTION 'domain % allows at most % mailboxes (max_mailboxes)', dom, d.max_mailboxes
          USING ERRCODE = 'check_violation', CONSTRAINT = 'mailmapd_domain_limit';
      END IF;
    END IF;
  ELSIF d.max_aliases IS NOT NULL AND (TG_OP = 'INSERT' OR NEW.address IS DISTINCT FROM OLD.address) THEN
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
-- "limits" sorts after "fold_names" and triggers fire in name order: they see folded addresses.
CREATE TRIGGER limits BEFORE INSERT OR UPDATE ON mailmapd.mailboxes FOR EACH ROW EXECUTE FUNCTION mailmapd.check_domain_limits();
CREATE TRIGGER limits BEFORE INSERT OR UPDATE ON mailmapd.aliases FOR EACH ROW EXECUTE FUNCTION mailmapd.check_domain_limits();

-- A limit set below what the domain already holds is refused too: the limit would be a lie.
CREATE OR REPLACE FUNCTION mailmapd.check_new_domain_limits() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
  n bigint;
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext('mailmapd.domain_limits'), hashtext(NEW.name));
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
CREATE TRIGGER limits BEFORE UPDATE OF max_mailboxes, max_aliases, max_quota_bytes ON mailmapd.domains
  FOR EACH ROW EXECUTE FUNCTION mailmapd.check_new_domain_limits();

SELECT mailmapd.watch_table('mailmapd.domains', 'route', $$'domain_transport:' || r.name$$);
SELECT mailmapd.watch_table('mailmapd.relay_domains', 'route', $$'relay_domain:' || r.name$$);
SELECT mailmapd.watch_table('mailmapd.relay_recipients', 'route', $$'relay_recipient:' || r.address$$);
SELECT mailmapd.watch_table('mailmapd.sender_relayhosts', 'route', $$unnest(ARRAY['sender_relayhost:' || r.sender, 'sender_credentials:' || r.sender])$$);
`;
