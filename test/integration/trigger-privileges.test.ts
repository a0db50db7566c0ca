// The change triggers under roles with few rights. A role with nothing but USAGE on schema
// mailmapd (panels' roles commonly have it) must not be able to run SQL through them —
// once it could make itself superuser — while a panel's role that may only write its own
// tables keeps having every write logged. An older database upgrades in place: its
// native triggers are re-made, a panel's old triggers are reported outdated until
// `triggers install` replaces them, and the old generic function then disappears.

import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { triggersCommand } from '../../src/cli/triggers.js';
import { parseConfigText } from '../../src/config.js';
import { migrate, migrations } from '../../src/db/schema.js';
import { createTestDatabase, serverUrl, urlFor, type TestDatabase } from '../helpers/db.js';

const suffix = randomBytes(4).toString('hex');
const evil = `mm_evil_${suffix}`;
const writer = `mm_writer_${suffix}`;

// PostfixAdmin's tables, reduced to the columns its profile reads.
const panelDdl = `
  CREATE TABLE public.domain (domain varchar(255) PRIMARY KEY, transport varchar(255), backupmx boolean NOT NULL DEFAULT false, active boolean NOT NULL DEFAULT true);
  CREATE TABLE public.alias_domain (alias_domain varchar(255) PRIMARY KEY, target_domain varchar(255) NOT NULL, active boolean NOT NULL DEFAULT true);
  CREATE TABLE public.mailbox (username varchar(255) PRIMARY KEY, password varchar(255) NOT NULL, quota bigint NOT NULL DEFAULT 0, active boolean NOT NULL DEFAULT true);
  CREATE TABLE public.alias (address varchar(255) PRIMARY KEY, goto text NOT NULL, active boolean NOT NULL DEFAULT true);
`;

async function as(role: string, db: TestDatabase): Promise<pg.Client> {
  const u = new URL(urlFor(db.name));
  u.username = role;
  const c = new pg.Client({ connectionString: u.toString() });
  await c.connect();
  return c;
}

async function grantRoles(db: TestDatabase): Promise<void> {
  await db.sql.query(`GRANT USAGE ON SCHEMA mailmapd TO ${evil}, ${writer}`);
  await db.sql.query(`GRANT SELECT, INSERT, UPDATE, DELETE ON public.domain, public.alias_domain, public.mailbox, public.alias TO ${writer}`);
  await db.sql.query(`GRANT SELECT, INSERT, UPDATE, DELETE ON mailmapd.domains, mailmapd.mailboxes TO ${writer}`);
}

const isSuper = async (db: TestDatabase) => (await db.sql.query('SELECT rolsuper FROM pg_roles WHERE rolname = $1', [evil])).rows[0].rolsuper as boolean;

const changesFor = async (db: TestDatabase, kind: string) =>
  (await db.sql.query('SELECT key FROM mailmapd.changes WHERE kind = $1 ORDER BY id', [kind])).rows.map((r) => r.key as string | null);

/** The repro: a statement trigger on a temp table whose "key expression" escalates. */
async function tryEscalation(db: TestDatabase, fn: string): Promise<string | undefined> {
  const c = await as(evil, db);
  try {
    await c.query('CREATE TEMP TABLE t (x text)');
    const payload = `NULL::text AS k FROM new_rows r) s; ALTER ROLE ${evil} SUPERUSER; SELECT 1 FROM (SELECT 1`;
    await c.query(
      `CREATE TRIGGER t_log AFTER INSERT ON t REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ${fn}('mailbox', '${payload.replaceAll("'", "''")}')`,
    );
    await c.query(`INSERT INTO t VALUES ('x')`);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  } finally {
    await c.end();
  }
}

const noop = () => {};

beforeAll(async () => {
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  await admin.query(`CREATE ROLE ${evil} LOGIN; CREATE ROLE ${writer} LOGIN`);
  await admin.end();
});

afterAll(async () => {
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  await admin.query(`DROP ROLE IF EXISTS ${evil}; DROP ROLE IF EXISTS ${writer}`).catch(() => {});
  await admin.end();
});

describe('a freshly migrated database', () => {
  let db: TestDatabase;
  let config: ReturnType<typeof parseConfigText>;

  beforeAll(async () => {
    db = await createTestDatabase();
    await db.sql.query(panelDdl);
    config = parseConfigText(`database_url = ${db.url}\nschema = postfixadmin\n`, 'test.conf');
    expect(await triggersCommand(config, ['install'], noop)).toBe(0);
    await grantRoles(db);
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('a role with only USAGE on schema mailmapd cannot run SQL through the change triggers', async () => {
    const error = await tryEscalation(db, 'mailmapd.log_change');
    expect(await isSuper(db)).toBe(false);
    expect(error).toMatch(/does not exist|permission denied/);
    // Nor attach one of the generated trigger functions, nor generate one of its own.
    const fns = await db.sql.query(
      `SELECT p.oid::regprocedure::text AS f FROM pg_proc p WHERE p.pronamespace = 'mailmapd'::regnamespace AND p.proname LIKE 'log\\_%'`,
    );
    // One key function per watched table and kind, the native tables' and the panel's,
    // and the one function that writes the log.
    const watched = await db.sql.query(
      `SELECT count(DISTINCT tgfoid)::int AS n FROM pg_trigger WHERE tgname LIKE 'mailmapd\\_%' AND tgname NOT LIKE '%\\_write' AND NOT tgisinternal`,
    );
    expect(fns.rows.length).toBe(watched.rows[0].n);
    expect(fns.rows.length).toBeGreaterThanOrEqual(8);
    for (const { f } of [...fns.rows, { f: 'mailmapd.write_changes()' }]) {
      const e = await tryEscalation(db, (f as string).replace(/\(\)$/, ''));
      expect(e, f as string).toMatch(/permission denied/);
    }
    const c = await as(evil, db);
    try {
      await c.query('CREATE TEMP TABLE u (x text)');
      await expect(c.query(`SELECT mailmapd.watch_table('u', 'mailbox', 'r.x')`)).rejects.toThrow(/permission denied/);
      await expect(c.query(`SELECT mailmapd.unwatch_table('mailmapd.mailboxes', 'mailbox')`)).rejects.toThrow(/permission denied/);
    } finally {
      await c.end();
    }
    expect(await isSuper(db)).toBe(false);
  });

  it('a writer without any right on mailmapd.changes still has each write logged, by key', async () => {
    const c = await as(writer, db);
    try {
      await c.query(`INSERT INTO mailmapd.domains (name) VALUES ('native.example')`);
      await c.query(`INSERT INTO mailmapd.mailboxes (address) VALUES ('Ann@Native.example')`);
      await c.query(`INSERT INTO public.domain (domain) VALUES ('panel.example')`);
      await c.query(`INSERT INTO public.mailbox (username, password) VALUES ('Bea@panel.example', 'x'), ('cy@panel.example', 'x')`);
      await c.query(`UPDATE public.mailbox SET password = 'y' WHERE username = 'cy@panel.example'`);
      await c.query(`DELETE FROM public.mailbox WHERE username = 'Bea@panel.example'`);
      await expect(c.query(`INSERT INTO mailmapd.changes (kind, key) VALUES ('mailbox', 'x')`)).rejects.toThrow(/permission denied/);
    } finally {
      await c.end();
    }
    expect(await changesFor(db, 'domain')).toEqual(expect.arrayContaining(['native.example', 'panel.example']));
    const mailboxes = await changesFor(db, 'mailbox');
    expect(mailboxes.slice(-5).sort()).toEqual(['ann@native.example', 'bea@panel.example', 'bea@panel.example', 'cy@panel.example', 'cy@panel.example']);
  });

  it('refuses a key expression that would end the statement it is compiled into', async () => {
    await expect(db.sql.query(`SELECT mailmapd.watch_table('public.alias', 'alias', 'r.address); SELECT (1')`)).rejects.toThrow(/one SQL expression/);
    await expect(db.sql.query(`SELECT mailmapd.watch_table('public.alias', 'nonsense', 'r.address')`)).rejects.toThrow(/unknown kind/);
  });
});

describe('a database made by the previous version', () => {
  let db: TestDatabase;
  let config: ReturnType<typeof parseConfigText>;

  beforeAll(async () => {
    db = await createTestDatabase({ migrate: false });
    // Version 1 exactly as it was released, and a panel's triggers as its install made them.
    await db.sql.query(migrations[0]!.sql);
    await db.sql.query(`CREATE TABLE mailmapd.schema_version (version integer PRIMARY KEY, description text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now());
      INSERT INTO mailmapd.schema_version (version, description) VALUES (1, 'v1')`);
    await db.sql.query(panelDdl);
    await db.sql.query(`SELECT mailmapd.watch_table('public.domain', 'domain', 'lower(r.domain)');
      SELECT mailmapd.watch_table('public.alias_domain', 'alias_domain', 'lower(r.alias_domain)');
      SELECT mailmapd.watch_table('public.mailbox', 'mailbox', 'lower(r.username)');
      SELECT mailmapd.watch_table('public.alias', 'alias', 'lower(r.address)')`);
    config = parseConfigText(`database_url = ${db.url}\nschema = postfixadmin\n`, 'test.conf');
    await grantRoles(db);
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('migrate re-makes the native triggers; the old generic function no longer executes anything', async () => {
    expect((await migrate(db.sql)).applied).toEqual(migrations.filter((m) => m.version > 1).map((m) => m.version));
    const native = await db.sql.query(`SELECT t.tgname, p.proname FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
      WHERE t.tgrelid = 'mailmapd.mailboxes'::regclass AND t.tgname LIKE 'mailmapd\\_%' ORDER BY 1`);
    expect(native.rows.map((r) => r.tgname)).toEqual(['mailmapd_mailbox_del', 'mailmapd_mailbox_ins', 'mailmapd_mailbox_upd', 'mailmapd_mailbox_write']);
    expect(native.rows.map((r) => r.proname.replace(/\d+$/, 'N'))).toEqual(['log_mailbox_on_N', 'log_mailbox_on_N', 'log_mailbox_on_N', 'write_changes']);

    expect(await tryEscalation(db, 'mailmapd.log_change')).toMatch(/permission denied/);
    expect(await isSuper(db)).toBe(false);

    // The panel's old triggers still log (every key of the kind: a full re-read, never a loss).
    const c = await as(writer, db);
    await c.query(`INSERT INTO public.mailbox (username, password) VALUES ('old@panel.example', 'x')`);
    await c.query(`INSERT INTO mailmapd.domains (name) VALUES ('native.example')`);
    await c.end();
    expect((await changesFor(db, 'mailbox')).at(-1)).toBeNull();
    expect((await changesFor(db, 'domain')).at(-1)).toBe('native.example');
  });

  it('triggers status calls the old triggers outdated; install replaces them and the generic function goes', async () => {
    const lines: string[] = [];
    expect(await triggersCommand(config, ['status'], (l) => lines.push(l))).toBe(1);
    expect(lines.filter((l) => l.startsWith('outdated ')).length).toBe(4);

    expect(await triggersCommand(config, ['install'], noop)).toBe(0);
    lines.length = 0;
    expect(await triggersCommand(config, ['status'], (l) => lines.push(l))).toBe(0);
    expect(lines.every((l) => l.startsWith('ok '))).toBe(true);
    expect((await db.sql.query(`SELECT to_regprocedure('mailmapd.log_change()') IS NULL AS gone`)).rows[0].gone).toBe(true);

    const c = await as(writer, db);
    await c.query(`UPDATE public.mailbox SET password = 'y' WHERE username = 'old@panel.example'`);
    await c.end();
    expect((await changesFor(db, 'mailbox')).at(-1)).toBe('old@panel.example');

    expect(await triggersCommand(config, ['remove'], noop)).toBe(0);
    // What is left is the native tables' own.
    const left = await db.sql.query(`SELECT count(*)::int AS n FROM pg_proc p WHERE p.pronamespace = 'mailmapd'::regnamespace AND p.proname LIKE 'log\\_%'
      AND NOT EXISTS (SELECT 1 FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid WHERE t.tgfoid = p.oid AND c.relnamespace = 'mailmapd'::regnamespace)`);
    expect(left.rows[0].n).toBe(0);
  });
});
