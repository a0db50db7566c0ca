// A profile whose keys a join computes (Modoboa: a password lives on the user row, the
// mailbox address on the mailbox and domain rows). A password change held open while
// another transaction renames the mailbox computes its key in its own, older snapshot:
// the old address. When it commits last, the renamed mailbox must still get the new
// password, not keep the old one.

import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { changeLogSql } from '../../src/db/schema.js';
import { createDirectory } from '../../src/directory/directory.js';
import { modoboaProfile } from '../../src/sync/profiles/modoboa.js';
import type { Sync } from '../../src/sync/sync.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { startTestSync } from '../helpers/sync.js';

let db: TestDatabase;
let sync: Sync;
const directory = createDirectory({ recipientDelimiter: '+' });

beforeAll(async () => {
  db = await createTestDatabase({ migrate: false });
  await db.sql.query(`
    CREATE TABLE admin_user (id serial PRIMARY KEY, username varchar(254) NOT NULL UNIQUE, email varchar(254) NOT NULL DEFAULT '',
      password varchar(256) NOT NULL, is_active boolean NOT NULL DEFAULT true);
    CREATE TABLE admin_domain (id serial PRIMARY KEY, name varchar(100) NOT NULL UNIQUE, enabled boolean NOT NULL DEFAULT true,
      type varchar(20) NOT NULL DEFAULT 'domain');
    CREATE TABLE admin_domainalias (id serial PRIMARY KEY, name varchar(100) NOT NULL UNIQUE, target_id integer NOT NULL REFERENCES admin_domain(id),
      enabled boolean NOT NULL DEFAULT true);
    CREATE TABLE admin_mailbox (id serial PRIMARY KEY, address varchar(252) NOT NULL, quota integer NOT NULL DEFAULT 0,
      domain_id integer NOT NULL REFERENCES admin_domain(id), user_id integer NOT NULL UNIQUE REFERENCES admin_user(id));
    CREATE TABLE admin_alias (id serial PRIMARY KEY, address varchar(254) NOT NULL, enabled boolean NOT NULL DEFAULT true);
    CREATE TABLE modoboa_admin_aliasrecipient (id serial PRIMARY KEY, address varchar(254) NOT NULL, alias_id integer NOT NULL REFERENCES admin_alias(id));
    INSERT INTO admin_domain (id, name) VALUES (1, 'example.org');
    INSERT INTO admin_user (id, username, email, password) VALUES (2, 'alice@example.org', 'alice@example.org', '{PLAIN}old');
    INSERT INTO admin_mailbox (id, address, domain_id, user_id) VALUES (1, 'alice', 1, 2);
  `);
  await db.sql.query(changeLogSql);
  for (const w of modoboaProfile.watches ?? []) {
    const sql = w.keyExpr.replace(/\{\{\s*(\w+)\s*\}\}/g, 'public.$1');
    await db.sql.query('SELECT mailmapd.watch_table($1::regclass, $2, $3)', [`public.${w.table}`, w.kind, sql]);
  }
  sync = startTestSync({
    databaseUrl: db.url,
    profile: modoboaProfile,
    directory,
  }).sync;
  await sync.firstLoad();
});

afterAll(async () => {
  await sync?.stop();
  await db?.drop();
});

describe('a late commit on a joined profile', () => {
  it('a password change committed after a rename reaches the renamed mailbox', async () => {
    expect(directory.user('alice@example.org')).toMatchObject({ status: 'ok', password: '{PLAIN}old' });
    const slow = new pg.Client({ connectionString: db.url });
    await slow.connect();
    try {
      await slow.query('BEGIN');
      await slow.query(`UPDATE admin_user SET password = '{PLAIN}new' WHERE id = 2`);
      await db.sql.query(`UPDATE admin_mailbox SET address = 'alice2' WHERE id = 1`);
      await sync.kick();
      expect(directory.user('alice@example.org').status).toBe('unknown');
      expect(directory.user('alice2@example.org')).toMatchObject({ status: 'ok', password: '{PLAIN}old' });
      await slow.query('COMMIT');
    } finally {
      await slow.end();
    }
    await sync.kick();
    expect(directory.user('alice2@example.org')).toMatchObject({ status: 'ok', password: '{PLAIN}new' });
  });

  it('a change from a transaction that began after the last read costs no reload', async () => {
    const loads = sync.status().fullLoads;
    await db.sql.query(`UPDATE admin_user SET password = '{PLAIN}newer' WHERE id = 2`);
    await sync.kick();
    expect(directory.user('alice2@example.org')).toMatchObject({ password: '{PLAIN}newer' });
    expect(sync.status().fullLoads).toBe(loads);
  });
});
