// Change triggers in which nothing a table's owner controls runs with another role's
// rights. A key expression (`lower(r.username)`) is evaluated over columns whose type,
// casts, operators, row-level security and views the owner of the watched table decides:
// evaluated inside a SECURITY DEFINER function, an owner's implicit cast ran as the
// installing administrator (a superuser, or the owner of schema mailmapd) and made the
// panel's role superuser. So each watched table now has two kinds of trigger:
//
// - `mailmapd_<kind>_ins|upd|del`: the per-table function `mailmapd.log_<kind>_on_<oid>`,
//   SECURITY INVOKER, with the key expression compiled in. It runs with the rights of
//   whoever writes the table — which that writer has anyway — and leaves the keys, as
//   text, in the transaction-local setting `mailmapd.keys_<kind>`.
// - `mailmapd_<kind>_write`: `mailmapd.write_changes()`, the one SECURITY DEFINER
//   function. It evaluates nothing of the table: it takes that text as a text[] (built-in
//   input), appends it to mailmapd.changes with the transaction's id, and rings the
//   doorbell. A trigger function cannot be called except as a trigger, and EXECUTE is
//   revoked from PUBLIC, so only the installing administrator can attach it, to the
//   tables it watches. Statement triggers fire in name order: `_write` after `_upd`.
//
// A writer can set `mailmapd.keys_<kind>` too, but only to name keys of a kind it writes
// anyway: the daemon then re-reads those keys, which is what a write would have done.
// Keys are appended, never replaced, so that a nested write (a cascade, a panel's own
// trigger) between the two cannot drop the outer statement's keys; whichever `_write`
// fires first logs them, in the same transaction.

import { loggedKindsSql } from '../change-kinds.js';

/** The native tables' watches (migrations 2, 4 and 6), re-made by migration 7. */
const nativeWatches: Array<[string, string, string]> = [
  ['mailmapd.domains', 'domain', 'r.name'],
  ['mailmapd.alias_domains', 'alias_domain', 'r.name'],
  ['mailmapd.mailboxes', 'mailbox', 'r.address'],
  ['mailmapd.aliases', 'alias', 'r.address'],
  ['mailmapd.app_passwords', 'mailbox', 'r.mailbox'],
  ['mailmapd.master_users', 'master_user', 'r.name'],
  ['mailmapd.domains', 'route', `'domain_transport:' || r.name`],
  ['mailmapd.relay_domains', 'route', `'relay_domain:' || r.name`],
  ['mailmapd.relay_recipients', 'route', `'relay_recipient:' || r.address`],
  ['mailmapd.sender_relayhosts', 'route', `unnest(ARRAY['sender_relayhost:' || r.sender, 'sender_credentials:' || r.sender])`],
];

/** The trigger name suffixes one watch makes: `mailmapd_<kind>_<suffix>`. */
export const watchSuffixes = ['ins', 'upd', 'del', 'write'] as const;

/** Functions in schema mailmapd that change triggers of any version may call. */
export const triggerFunctionPattern = '^(log_change|write_changes|log_[a-z_]+_on_[0-9]+)$';

export const invokerTriggerSql = `
CREATE OR REPLACE FUNCTION mailmapd.write_changes() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  w_kind text := TG_ARGV[0];
  w_setting text := 'mailmapd.keys_' || TG_ARGV[0];
  w_pending text;
  w_logged bigint := 0;
BEGIN
  IF TG_OP = 'TRUNCATE' THEN
    INSERT INTO mailmapd.changes (kind, key) VALUES (w_kind, NULL);
    w_logged := 1;
  ELSE
    w_pending := current_setting(w_setting, true);
    IF w_pending IS NOT NULL AND w_pending <> '' THEN
      PERFORM set_config(w_setting, '', true);
      INSERT INTO mailmapd.changes (kind, key) SELECT DISTINCT w_kind, k FROM unnest(w_pending::text[]) AS u(k);
      GET DIAGNOSTICS w_logged = ROW_COUNT;
    END IF;
  END IF;
  -- A doorbell, never a key or a hash; not where PREPARE TRANSACTION must work.
  IF w_logged > 0 AND current_setting('max_prepared_transactions')::int = 0 THEN
    PERFORM pg_notify('mailmapd', w_kind);
  END IF;
  RETURN NULL;
END
$fn$;
REVOKE ALL ON FUNCTION mailmapd.write_changes() FROM PUBLIC;

-- Removes the change triggers of a kind from a table (older versions' _trunc included).
CREATE OR REPLACE FUNCTION mailmapd.unwatch_table(tbl regclass, kind text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  base text := 'mailmapd_' || kind;
  s text;
BEGIN
  FOREACH s IN ARRAY ARRAY['ins', 'upd', 'del', 'trunc', 'write'] LOOP
    EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', base || '_' || s, tbl);
  END LOOP;
  PERFORM mailmapd.drop_unused_log_functions();
END
$fn$;
REVOKE ALL ON FUNCTION mailmapd.unwatch_table(regclass, text) FROM PUBLIC;

-- Installs (or replaces) the change triggers of a kind on a table: the invoker function
-- with the key expression compiled in (over the row alias r; one expression, other tables
-- schema-qualified) and the definer one that writes the log. Transition tables make a
-- 100k-row INSERT cost one SELECT, not 100k. The trigger arguments only record kind and
-- expression for \`mailmapd triggers status\`; the key function never reads them.
CREATE OR REPLACE FUNCTION mailmapd.watch_table(tbl regclass, kind text, key_expr text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  base text := 'mailmapd_' || kind;
  fn text := format('log_%s_on_%s', kind, tbl::oid);
  keys text;
  body text;
BEGIN
  IF kind IS NULL OR kind NOT IN (${loggedKindsSql}) THEN
    RAISE EXCEPTION 'mailmapd.watch_table: unknown kind %', kind;
  END IF;
  -- One expression, so that it cannot end the statement it is compiled into.
  IF key_expr IS NULL OR key_expr ~ ';' OR btrim(key_expr) = '' THEN
    RAISE EXCEPTION 'mailmapd.watch_table: a key expression is one SQL expression without ";"';
  END IF;
  keys := 'mailmapd_keys := ARRAY(SELECT DISTINCT s.k::text FROM (SELECT (' || chr(10) || key_expr || chr(10) || ') AS k FROM ';
  body := format($body$
#variable_conflict use_column
DECLARE
  mailmapd_keys text[];
BEGIN
  IF TG_OP = 'INSERT' THEN
    %2$s new_rows r) s);
  ELSIF TG_OP = 'DELETE' THEN
    %2$s old_rows r) s);
  ELSE
    %2$s new_rows r UNION ALL SELECT (
%3$s
    ) FROM old_rows r) s);
  END IF;
  IF cardinality(mailmapd_keys) > 0 THEN
    PERFORM set_config(%1$L, (coalesce(nullif(current_setting(%1$L, true), ''), '{}')::text[] || mailmapd_keys)::text, true);
  END IF;
  RETURN NULL;
END
$body$, 'mailmapd.keys_' || kind, keys, key_expr);
  PERFORM mailmapd.unwatch_table(tbl, kind);
  EXECUTE format('CREATE OR REPLACE FUNCTION mailmapd.%I() RETURNS trigger LANGUAGE plpgsql SECURITY INVOKER SET search_path = pg_catalog, pg_temp AS %L', fn, body);
  EXECUTE format('REVOKE ALL ON FUNCTION mailmapd.%I() FROM PUBLIC', fn);
  EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON %s REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION mailmapd.%I(%L, %L)', base || '_ins', tbl, fn, kind, key_expr);
  EXECUTE format('CREATE TRIGGER %I AFTER UPDATE ON %s REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION mailmapd.%I(%L, %L)', base || '_upd', tbl, fn, kind, key_expr);
  EXECUTE format('CREATE TRIGGER %I AFTER DELETE ON %s REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION mailmapd.%I(%L, %L)', base || '_del', tbl, fn, kind, key_expr);
  EXECUTE format('CREATE TRIGGER %I AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON %s FOR EACH STATEMENT EXECUTE FUNCTION mailmapd.write_changes(%L, %L)', base || '_write', tbl, kind, key_expr);
END
$fn$;
REVOKE ALL ON FUNCTION mailmapd.watch_table(regclass, text, text) FROM PUBLIC;
`;

/** Migration 7: the native tables' triggers re-made, their key functions as invokers. */
export const migration7Sql = `
${invokerTriggerSql}
${nativeWatches.map(([t, k, e]) => `SELECT mailmapd.watch_table('${t}', '${k}', $$${e}$$);`).join('\n')}
`;
