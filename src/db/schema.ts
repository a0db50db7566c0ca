// The native `mailmapd` schema, as an ordered list of migrations. `mailmapd migrate`
// applies the ones a database has not seen yet, each in its own transaction, under an
// advisory lock so that two hosts migrating at once do not race. Never edit a released
// migration: append a new one.
//
// The change log (mailmapd.changes) is what makes the sync lossless: every trigger
// appends the keys it touched together with the writing transaction's id, and the daemon
// reads "every change whose transaction it has not seen yet" by comparing those ids with
// the snapshot of its previous read. NOTIFY is only the doorbell, and carries no key.

import type pg from 'pg';
import { changeKindsSql } from './change-kinds.js';
import { routingSql } from './migrations/006-routing.js';
import { migration2Sql, staticTriggerSql } from './migrations/static-triggers.js';
import { pathSafeNamesSql } from './migrations/path-safe-names.js';
import { accountsSql, passwordDenialSql } from './migrations/accounts.js';
import { writebackTablesSql } from './migrations/writeback.js';
import { invokerTriggerSql, migration7Sql } from './migrations/invoker-triggers.js';
import { domainLimitsSerialSql } from './migrations/domain-limits-serial.js';
import { sendAsSql } from './migrations/send-as.js';
import { dkimKeysSql } from './migrations/dkim.js';
import { sendCountTablesSql, sendLimitsSql } from './migrations/send-limits.js';
import { sharedLimiterSql } from './migrations/shared-limiter.js';
import { inTransaction } from './client.js';

export interface Migration {
  version: number;
  description: string;
  sql: string;
}

/** The change-log plumbing as migration 1 made it; never edit (see changeLogSql). */
const changeLogSqlV1 = `
CREATE SCHEMA IF NOT EXISTS mailmapd;

CREATE TABLE IF NOT EXISTS mailmapd.changes (
  id   bigserial PRIMARY KEY,
  xid  xid8 NOT NULL DEFAULT pg_current_xact_id(),
  kind text NOT NULL CHECK (kind IN ('domain', 'alias_domain', 'mailbox', 'alias')),
  key  text,                                   -- NULL: every entry of that kind
  at   timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX IF NOT EXISTS changes_xid ON mailmapd.changes (xid);
CREATE INDEX IF NOT EXISTS changes_at ON mailmapd.changes (at);

-- The newest transaction id whose changes may have been pruned: a daemon whose last
-- snapshot does not see it as committed may have missed something and reloads in full.
CREATE TABLE IF NOT EXISTS mailmapd.sync_state (
  singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  pruned_xid xid8 NOT NULL DEFAULT '0'
);
INSERT INTO mailmapd.sync_state (singleton) VALUES (true) ON CONFLICT DO NOTHING;

-- One statement-level trigger function for every watched table. TG_ARGV[0] is the
-- directory kind, TG_ARGV[1] an SQL expression over the row alias r giving the key.
-- Transition tables make a 100k-row INSERT cost one INSERT ... SELECT, not 100k.
CREATE OR REPLACE FUNCTION mailmapd.log_change() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  kind text := TG_ARGV[0];
  key_expr text := TG_ARGV[1];
  n bigint := 0;
BEGIN
  IF TG_OP = 'TRUNCATE' THEN
    INSERT INTO mailmapd.changes (kind, key) VALUES (kind, NULL);
    n := 1;
  ELSIF TG_OP = 'INSERT' THEN
    EXECUTE format('INSERT INTO mailmapd.changes (kind, key) SELECT DISTINCT %L, k FROM (SELECT %s AS k FROM new_rows r) s', kind, key_expr);
    GET DIAGNOSTICS n = ROW_COUNT;
  ELSIF TG_OP = 'DELETE' THEN
    EXECUTE format('INSERT INTO mailmapd.changes (kind, key) SELECT DISTINCT %L, k FROM (SELECT %s AS k FROM old_rows r) s', kind, key_expr);
    GET DIAGNOSTICS n = ROW_COUNT;
  ELSE
    EXECUTE format('INSERT INTO mailmapd.changes (kind, key) SELECT DISTINCT %L, k FROM (SELECT %s AS k FROM new_rows r UNION SELECT %s FROM old_rows r) s', kind, key_expr, key_expr);
    GET DIAGNOSTICS n = ROW_COUNT;
  END IF;
  IF n > 0 THEN
    PERFORM pg_notify('mailmapd', kind);   -- a doorbell: never a key, never a hash
  END IF;
  RETURN NULL;
END
$fn$;

-- Removes the four change triggers of a kind from a table.
CREATE OR REPLACE FUNCTION mailmapd.unwatch_table(tbl regclass, kind text) RETURNS void
LANGUAGE plpgsql AS $fn$
DECLARE
  base text := 'mailmapd_' || kind;
BEGIN
  EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', base || '_ins', tbl);
  EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', base || '_upd', tbl);
  EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', base || '_del', tbl);
  EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', base || '_trunc', tbl);
END
$fn$;

-- Installs (or replaces) the four change triggers on a table. Used by the native schema
-- and by \`mailmapd triggers install\` for admin panels' own tables.
CREATE OR REPLACE FUNCTION mailmapd.watch_table(tbl regclass, kind text, key_expr text) RETURNS void
LANGUAGE plpgsql AS $fn$
DECLARE
  base text := 'mailmapd_' || kind;
BEGIN
  PERFORM mailmapd.unwatch_table(tbl, kind);
  EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON %s REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION mailmapd.log_change(%L, %L)', base || '_ins', tbl, kind, key_expr);
  EXECUTE format('CREATE TRIGGER %I AFTER UPDATE ON %s REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION mailmapd.log_change(%L, %L)', base || '_upd', tbl, kind, key_expr);
  EXECUTE format('CREATE TRIGGER %I AFTER DELETE ON %s REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION mailmapd.log_change(%L, %L)', base || '_del', tbl, kind, key_expr);
  EXECUTE format('CREATE TRIGGER %I AFTER TRUNCATE ON %s FOR EACH STATEMENT EXECUTE FUNCTION mailmapd.log_change(%L, %L)', base || '_trunc', tbl, kind, key_expr);
END
$fn$;
`;

export const migrations: Migration[] = [
  {
    version: 1,
    description: 'domains, alias domains, mailboxes, aliases, change log and triggers',
    sql: `
${changeLogSqlV1}

-- Other applications write these tables directly: fold names to lower case on the way in
-- rather than reject mixed-case writes, and let the CHECKs stop what cannot be repaired.
CREATE OR REPLACE FUNCTION mailmapd.fold_names() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
  CASE TG_TABLE_NAME
    WHEN 'domains' THEN NEW.name := lower(btrim(NEW.name));
    WHEN 'alias_domains' THEN NEW.name := lower(btrim(NEW.name)); NEW.target := lower(btrim(NEW.target));
    WHEN 'mailboxes' THEN NEW.address := lower(btrim(NEW.address));
    WHEN 'aliases' THEN NEW.address := lower(btrim(NEW.address)); NEW.destination := lower(btrim(NEW.destination));
  END CASE;
  RETURN NEW;
END
$fn$;

CREATE TABLE mailmapd.domains (
  name       text PRIMARY KEY CHECK (name = lower(name) AND name ~ '^[^@\\s,]+$'),
  active     boolean NOT NULL DEFAULT true,
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE mailmapd.alias_domains (
  name       text PRIMARY KEY CHECK (name = lower(name) AND name ~ '^[^@\\s,]+$'),
  target     text NOT NULL REFERENCES mailmapd.domains (name) ON UPDATE CASCADE ON DELETE CASCADE,
  active     boolean NOT NULL DEFAULT true,
  created_at timestamptz NOT NULL DEFAULT now(),
  CHECK (name <> target)
);

CREATE TABLE mailmapd.mailboxes (
  address     text PRIMARY KEY CHECK (address = lower(address) AND address ~ '^[^@\\s,]+@[^@\\s,]+$'),
  domain      text GENERATED ALWAYS AS (split_part(address, '@', 2)) STORED
              REFERENCES mailmapd.domains (name) ON UPDATE RESTRICT ON DELETE RESTRICT,
  password    text,
  quota_bytes bigint NOT NULL DEFAULT 0 CHECK (quota_bytes >= 0),
  active      boolean NOT NULL DEFAULT true,
  created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX mailboxes_domain ON mailmapd.mailboxes (domain);

CREATE TABLE mailmapd.aliases (
  id          bigserial PRIMARY KEY,
  address     text NOT NULL CHECK (address = lower(address) AND address ~ '^[^@\\s,]*@[^@\\s,]+$'),
  destination text NOT NULL CHECK (destination = lower(destination) AND destination ~ '^[^@\\s,]*@[^@\\s,]+$'),
  active      boolean NOT NULL DEFAULT true,
  created_at  timestamptz NOT NULL DEFAULT now(),
  UNIQUE (address, destination)
);

CREATE TRIGGER fold_names BEFORE INSERT OR UPDATE ON mailmapd.domains FOR EACH ROW EXECUTE FUNCTION mailmapd.fold_names();
CREATE TRIGGER fold_names BEFORE INSERT OR UPDATE ON mailmapd.alias_domains FOR EACH ROW EXECUTE FUNCTION mailmapd.fold_names();
CREATE TRIGGER fold_names BEFORE INSERT OR UPDATE ON mailmapd.mailboxes FOR EACH ROW EXECUTE FUNCTION mailmapd.fold_names();
CREATE TRIGGER fold_names BEFORE INSERT OR UPDATE ON mailmapd.aliases FOR EACH ROW EXECUTE FUNCTION mailmapd.fold_names();

SELECT mailmapd.watch_table('mailmapd.domains', 'domain', 'r.name');
SELECT mailmapd.watch_table('mailmapd.alias_domains', 'alias_domain', 'r.name');
SELECT mailmapd.watch_table('mailmapd.mailboxes', 'mailbox', 'r.address');
SELECT mailmapd.watch_table('mailmapd.aliases', 'alias', 'r.address');
`,
  },
  {
    version: 2,
    description: 'change triggers compiled per table: no dynamic SQL, no PUBLIC EXECUTE; NOTIFY only without 2PC; path-safe names',
    sql: migration2Sql + pathSafeNamesSql,
  },
  { version: 4, description: 'accounts: disabled services, maintenance, app passwords, master users', sql: accountsSql },
  {
    version: 5,
    description: 'last logins and quota usage, written back by the daemon',
    sql: writebackTablesSql,
  },
  {
    version: 6,
    description: 'routing: transports, relay domains and recipients, sender relay hosts, domain limits',
    sql: `${changeKindsSql}\n${routingSql}`,
  },
  {
    version: 7,
    description: "change triggers: key expressions evaluated with the writer's rights, only the change log written as its owner",
    sql: migration7Sql,
  },
  { version: 8, description: 'domain limits hold under REPEATABLE READ: a stale count is a serialization failure', sql: domainLimitsSerialSql },
  {
    version: 9,
    description: "accounts: the mailbox password may be refused (disabled_services 'password'), leaving app passwords and tokens",
    sql: passwordDenialSql,
  },
  { version: 10, description: 'send-as grants and BCC copies', sql: sendAsSql },
  { version: 11, description: 'DKIM keys, private keys readable only where granted', sql: dkimKeysSql },
  { version: 12, description: 'sending limits, send counts and usage', sql: sendLimitsSql },
  { version: 13, description: 'brute-force limiter counts shared by every host', sql: sharedLimiterSql },
];

/**
 * The change-log plumbing, shared by the native schema and the foreign-schema triggers
 * (`mailmapd triggers install` runs it in one transaction, so the first part's generic
 * function never outlives it).
 */
export const changeLogSql = changeLogSqlV1 + staticTriggerSql + changeKindsSql + invokerTriggerSql + sendCountTablesSql + sharedLimiterSql;

// migrate() applies them in array order and records the highest: versions must ascend.
migrations.forEach((m, i) => {
  if (i > 0 && m.version <= migrations[i - 1]!.version) throw new Error(`migration ${m.version} is listed after ${migrations[i - 1]!.version}`);
});

export const latestVersion = migrations[migrations.length - 1]!.version;

const lockKey = 0x6d61696c; // "mail": one advisory lock for every mailmapd migration

export interface MigrateResult {
  from: number;
  to: number;
  applied: number[];
}

export async function currentVersion(client: pg.ClientBase): Promise<number> {
  const exists = await client.query(`SELECT to_regclass('mailmapd.schema_version') IS NOT NULL AS e`);
  if (exists.rows[0]?.e !== true) return 0;
  const r = await client.query<{ v: number }>('SELECT coalesce(max(version), 0) AS v FROM mailmapd.schema_version');
  return r.rows[0]?.v ?? 0;
}

export async function migrate(client: pg.ClientBase): Promise<MigrateResult> {
  await client.query('SELECT pg_advisory_lock($1)', [lockKey]);
  try {
    const from = await currentVersion(client);
    const applied: number[] = [];
    for (const m of migrations) {
      if (m.version <= from) continue;
      try {
        await inTransaction(client, async () => {
          await client.query(m.sql);
          await client.query(`CREATE TABLE IF NOT EXISTS mailmapd.schema_version (
          version integer PRIMARY KEY, description text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
          await client.query('INSERT INTO mailmapd.schema_version (version, description) VALUES ($1, $2)', [m.version, m.description]);
        });
      } catch (err) {
        throw new Error(`migration ${m.version} (${m.description}) failed: ${(err as Error).message}`);
      }
      applied.push(m.version);
    }
    if (from > latestVersion) {
      throw new Error(`the database schema is version ${from}, newer than this mailmapd (${latestVersion}); upgrade mailmapd`);
    }
    return { from, to: Math.max(from, latestVersion), applied };
  } finally {
    await client.query('SELECT pg_advisory_unlock($1)', [lockKey]);
  }
}
