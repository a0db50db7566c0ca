// Migration 2, as released (never edit): superseded by migration 7 (invoker-triggers.ts),
// whose key functions run with the writer's rights and not as SECURITY DEFINER.
//
// Change triggers without dynamic SQL at write time. `mailmapd.watch_table` (run by the
// administrator who installs the schema or a panel's triggers; EXECUTE revoked from
// PUBLIC) writes one trigger function per watched table and kind with the key expression
// compiled into it as static SQL. Nothing a writer or a trigger argument supplies is ever
// executed as SQL.
//
// The generated functions are SECURITY DEFINER so that an admin panel's role can keep
// writing its tables without INSERT on mailmapd.changes; they are owned by the installing
// administrator, run with a fixed search_path, and EXECUTE on them is revoked from PUBLIC,
// so nobody else can attach them to a table of their own (PostgreSQL checks EXECUTE when
// a trigger is created, not each time it fires).
//
// The doorbell (NOTIFY) is rung only where two-phase commit is impossible
// (max_prepared_transactions = 0): PREPARE TRANSACTION refuses a transaction that has
// sent a NOTIFY, and a panel using 2PC must still be able to write. With 2PC enabled the
// daemon finds changes by polling the change log instead.

import { loggedKindsSql } from '../change-kinds.js';

/** Functions in schema mailmapd that change triggers may call; anything else is not ours. */
export const logFunctionPattern = '^(log_change|log_[a-z_]+_on_[0-9]+)$';

/** The body that drops the trigger functions of ours that no trigger calls, older versions' included. */
const dropUnusedBody = `
DECLARE
  f record;
BEGIN
  FOR f IN
    SELECT p.oid::regprocedure AS sig FROM pg_proc p
     WHERE p.pronamespace = 'mailmapd'::regnamespace AND p.proname ~ '${logFunctionPattern}'
       AND p.pronargs = 0 AND NOT EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgfoid = p.oid)
  LOOP
    EXECUTE format('DROP FUNCTION %s', f.sig);
  END LOOP;
END
`;

/** The same as one statement, for a database whose installed function may be older. */
export const dropUnusedLogFunctionsSql = `DO $do$${dropUnusedBody}$do$`;

export const staticTriggerSql = `
-- Triggers created by older versions call this generic function. It no longer executes
-- its arguments: it records "every entry of this kind changed" (a full re-read of that
-- kind, always correct) until \`mailmapd triggers install\` replaces those triggers, and
-- it is dropped as soon as no trigger uses it.
CREATE OR REPLACE FUNCTION mailmapd.log_change() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
  INSERT INTO mailmapd.changes (kind, key) VALUES (TG_ARGV[0], NULL);
  IF current_setting('max_prepared_transactions')::int = 0 THEN
    PERFORM pg_notify('mailmapd', TG_ARGV[0]);
  END IF;
  RETURN NULL;
END
$fn$;
REVOKE ALL ON FUNCTION mailmapd.log_change() FROM PUBLIC;

-- Drops the trigger functions of ours that no trigger calls any more.
CREATE OR REPLACE FUNCTION mailmapd.drop_unused_log_functions() RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$${dropUnusedBody}$fn$;
REVOKE ALL ON FUNCTION mailmapd.drop_unused_log_functions() FROM PUBLIC;

-- Removes the four change triggers of a kind from a table, and their function.
CREATE OR REPLACE FUNCTION mailmapd.unwatch_table(tbl regclass, kind text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  base text := 'mailmapd_' || kind;
BEGIN
  EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', base || '_ins', tbl);
  EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', base || '_upd', tbl);
  EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', base || '_del', tbl);
  EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', base || '_trunc', tbl);
  PERFORM mailmapd.drop_unused_log_functions();
END
$fn$;
REVOKE ALL ON FUNCTION mailmapd.unwatch_table(regclass, text) FROM PUBLIC;

-- Installs (or replaces) the four change triggers on a table: a statement-level trigger
-- function with the key expression compiled in (over the row alias r; one expression,
-- other tables schema-qualified). Transition tables make a 100k-row INSERT cost one
-- INSERT ... SELECT, not 100k. The trigger arguments only record kind and expression for
-- \`mailmapd triggers status\`; the function never reads them.
CREATE OR REPLACE FUNCTION mailmapd.watch_table(tbl regclass, kind text, key_expr text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  base text := 'mailmapd_' || kind;
  fn text := format('log_%s_on_%s', kind, tbl::oid);
  ins text;
  body text;
BEGIN
  IF kind IS NULL OR kind NOT IN (${loggedKindsSql}) THEN
    RAISE EXCEPTION 'mailmapd.watch_table: unknown kind %', kind;
  END IF;
  -- One expression, so that it cannot end the statement it is compiled into.
  IF key_expr IS NULL OR key_expr ~ ';' OR btrim(key_expr) = '' THEN
    RAISE EXCEPTION 'mailmapd.watch_table: a key expression is one SQL expression without ";"';
  END IF;
  ins := format('INSERT INTO mailmapd.changes (kind, key) SELECT DISTINCT %L, k FROM ', kind);
  body := format($body$
#variable_conflict use_column
DECLARE
  mailmapd_logged bigint := 0;
BEGIN
  IF TG_OP = 'TRUNCATE' THEN
    INSERT INTO mailmapd.changes (kind, key) VALUES (%1$L, NULL);
    mailmapd_logged := 1;
  ELSIF TG_OP = 'INSERT' THEN
    %2$s (SELECT (
%3$s
    ) AS k FROM new_rows r) s;
    GET DIAGNOSTICS mailmapd_logged = ROW_COUNT;
  ELSIF TG_OP = 'DELETE' THEN
    %2$s (SELECT (
%3$s
    ) AS k FROM old_rows r) s;
    GET DIAGNOSTICS mailmapd_logged = ROW_COUNT;
  ELSE
    %2$s (SELECT (
%3$s
    ) AS k FROM new_rows r UNION SELECT (
%3$s
    ) FROM old_rows r) s;
    GET DIAGNOSTICS mailmapd_logged = ROW_COUNT;
  END IF;
  -- A doorbell, never a key or a hash; not where PREPARE TRANSACTION must work.
  IF mailmapd_logged > 0 AND current_setting('max_prepared_transactions')::int = 0 THEN
    PERFORM pg_notify('mailmapd', %1$L);
  END IF;
  RETURN NULL;
END
$body$, kind, ins, key_expr);
  EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', base || '_ins', tbl);
  EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', base || '_upd', tbl);
  EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', base || '_del', tbl);
  EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', base || '_trunc', tbl);
  EXECUTE format('CREATE OR REPLACE FUNCTION mailmapd.%I() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS %L', fn, body);
  EXECUTE format('REVOKE ALL ON FUNCTION mailmapd.%I() FROM PUBLIC', fn);
  EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON %s REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION mailmapd.%I(%L, %L)', base || '_ins', tbl, fn, kind, key_expr);
  EXECUTE format('CREATE TRIGGER %I AFTER UPDATE ON %s REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION mailmapd.%I(%L, %L)', base || '_upd', tbl, fn, kind, key_expr);
  EXECUTE format('CREATE TRIGGER %I AFTER DELETE ON %s REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION mailmapd.%I(%L, %L)', base || '_del', tbl, fn, kind, key_expr);
  EXECUTE format('CREATE TRIGGER %I AFTER TRUNCATE ON %s FOR EACH STATEMENT EXECUTE FUNCTION mailmapd.%I(%L, %L)', base || '_trunc', tbl, fn, kind, key_expr);
  PERFORM mailmapd.drop_unused_log_functions();
END
$fn$;
REVOKE ALL ON FUNCTION mailmapd.watch_table(regclass, text, text) FROM PUBLIC;
`;

/** Migration 2: the native tables' triggers re-made by the new watch_table. */
export const migration2Sql = `
${staticTriggerSql}
SELECT mailmapd.watch_table('mailmapd.domains', 'domain', 'r.name');
SELECT mailmapd.watch_table('mailmapd.alias_domains', 'alias_domain', 'r.name');
SELECT mailmapd.watch_table('mailmapd.mailboxes', 'mailbox', 'r.address');
SELECT mailmapd.watch_table('mailmapd.aliases', 'alias', 'r.address');
`;
