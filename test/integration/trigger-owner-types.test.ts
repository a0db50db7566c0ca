// A panel's role that owns the watched tables decides their columns' types, and so the
// casts a key expression (`lower(r.username)`) calls. Those once ran inside the change
// trigger with the installing administrator's rights: the repro made the panel's
// role superuser (triggers installed by a superuser) or gave it every right on
// mailmapd.mailboxes (installed by the owner of schema mailmapd). The key is now computed
// with the writer's rights, and only text reaches the function that writes the log.

import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { triggersCommand } from '../../src/cli/triggers.js';
import { parseConfigText } from '../../src/config.js';
import { migrate } from '../../src/db/schema.js';
import { createTestDatabase, serverUrl, urlFor, type TestDatabase } from '../helpers/db.js';

const suffix = randomBytes(4).toString('hex');
const pfa = `mm_pfa_${suffix}`;
const owner = `mm_owner_${suffix}`;

async function as(role: string, db: TestDatabase): Promise<pg.Client> {
  const u = new URL(urlFor(db.name));
  u.username = role;
  const c = new pg.Client({ connectionString: u.toString() });
  await c.connect();
  return c;
}

/** PostfixAdmin's tables in schema pfa, made by (and so owned by) the panel's role. */
async function panelTables(db: TestDatabase): Promise<void> {
  await db.sql.query(`CREATE SCHEMA pfa AUTHORIZATION ${pfa}; ALTER DATABASE ${db.name} SET search_path = pfa, public`);
  const c = await as(pfa, db);
  try {
    await c.query(`
      CREATE TABLE pfa.domain (domain varchar(255) PRIMARY KEY, transport varchar(255), backupmx boolean NOT NULL DEFAULT false, active boolean NOT NULL DEFAULT true);
      CREATE TABLE pfa.alias_domain (alias_domain varchar(255) PRIMARY KEY, target_domain varchar(255) NOT NULL, active boolean NOT NULL DEFAULT true);
      CREATE TABLE pfa.mailbox (username varchar(255) PRIMARY KEY, password varchar(255) NOT NULL, quota bigint NOT NULL DEFAULT 0, active boolean NOT NULL DEFAULT true);
      CREATE TABLE pfa.alias (address varchar(255) PRIMARY KEY, goto text NOT NULL, active boolean NOT NULL DEFAULT true);
      CREATE TABLE pfa.who (name text)`);
  } finally {
    await c.end();
  }
}

/** The repro, run as the panel's role: `escalate` is what its cast tries. */
async function repro(db: TestDatabase, escalate: string): Promise<string | undefined> {
  const c = await as(pfa, db);
  try {
    await c.query(`create type pfa.ct as (v text)`);
    await c.query(`create function pfa.g(pfa.ct) returns text language plpgsql
      as $$begin execute '${escalate.replaceAll("'", "''")}'; return ($1).v; end$$`);
    await c.query(`create cast (pfa.ct as text) with function pfa.g(pfa.ct) as implicit`);
    await c.query(`alter table pfa.mailbox alter column username type pfa.ct using row(username)::pfa.ct`);
    await c.query(`insert into pfa.mailbox values (row('evil@example.org')::pfa.ct, 'x')`);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  } finally {
    await c.end();
  }
}

/** The same cast, harmless except that it records whose rights it runs with. */
async function recordingCast(db: TestDatabase): Promise<string[]> {
  const c = await as(pfa, db);
  try {
    await c.query(`create or replace function pfa.g(pfa.ct) returns text language plpgsql
      as $$begin insert into pfa.who values (current_user); return ($1).v; end$$`);
    await c.query(`insert into pfa.mailbox values (row('Kind@example.org')::pfa.ct, 'x')`);
    return (await c.query<{ name: string }>('SELECT DISTINCT name FROM pfa.who')).rows.map((r) => r.name);
  } finally {
    await c.end();
  }
}

const lastMailboxChange = async (db: TestDatabase) =>
  (await db.sql.query(`SELECT key FROM mailmapd.changes WHERE kind = 'mailbox' ORDER BY id DESC LIMIT 1`)).rows[0]?.key as string | null | undefined;

beforeAll(async () => {
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  await admin.query(`CREATE ROLE ${pfa} LOGIN; CREATE ROLE ${owner} LOGIN`);
  await admin.end();
});

afterAll(async () => {
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  await admin.query(`DROP ROLE IF EXISTS ${pfa}; DROP ROLE IF EXISTS ${owner}`).catch(() => {});
  await admin.end();
});

describe('triggers installed by a superuser on tables the panel owns', () => {
  let db: TestDatabase;

  beforeAll(async () => {
    db = await createTestDatabase({ migrate: false });
    await panelTables(db);
    const config = parseConfigText(`database_url = ${db.url}\nschema = postfixadmin\n`, 'test.conf');
    expect(await triggersCommand(config, ['install'], () => {})).toBe(0);
  });
  afterAll(async () => {
    await db?.drop();
  });

  it("the panel's cast runs with the panel's rights: it does not become superuser", async () => {
    const error = await repro(db, `alter role ${pfa} superuser`);
    expect(error).toMatch(/must be superuser|permission denied/);
    const r = await db.sql.query('SELECT rolsuper FROM pg_roles WHERE rolname = $1', [pfa]);
    expect(r.rows[0].rolsuper).toBe(false);
  });

  it('a harmless cast still has the write logged, by key, computed as the writer', async () => {
    expect(await recordingCast(db)).toEqual([pfa]);
    expect(await lastMailboxChange(db)).toBe('kind@example.org');
  });
});

describe('triggers installed by the owner of schema mailmapd (no superuser)', () => {
  let db: TestDatabase;

  beforeAll(async () => {
    db = await createTestDatabase({ migrate: false });
    await db.sql.query(`GRANT CREATE ON DATABASE ${db.name} TO ${owner}`);
    const o = await as(owner, db);
    try {
      await migrate(o);
    } finally {
      await o.end();
    }
    await panelTables(db);
    const c = await as(pfa, db);
    await c.query(`GRANT USAGE ON SCHEMA pfa TO ${owner}; GRANT SELECT, TRIGGER ON ALL TABLES IN SCHEMA pfa TO ${owner}`);
    await c.end();
    const u = new URL(db.url);
    u.username = owner;
    const config = parseConfigText(`database_url = ${u}\nschema = postfixadmin\n`, 'test.conf');
    expect(await triggersCommand(config, ['install'], () => {})).toBe(0);
  });
  afterAll(async () => {
    await db?.drop();
  });

  it("the panel's cast cannot use the schema owner's rights: no GRANT ALL ON mailmapd.mailboxes", async () => {
    const error = await repro(db, `grant all on mailmapd.mailboxes to ${pfa}`);
    expect(error).toMatch(/permission denied/);
    const r = await db.sql.query(`SELECT has_table_privilege($1, 'mailmapd.mailboxes', 'INSERT') AS w`, [pfa]);
    expect(r.rows[0].w).toBe(false);
  });

  it('a harmless cast still has the write logged, by key, computed as the writer', async () => {
    expect(await recordingCast(db)).toEqual([pfa]);
    expect(await lastMailboxChange(db)).toBe('kind@example.org');
  });
});
