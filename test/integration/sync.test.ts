// The directory follows the database: a full load, then every committed change of every
// table arrives, including across a killed LISTEN connection and bulk transactions.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDirectory } from '../../src/directory/directory.js';
import type { Sync } from '../../src/sync/sync.js';
import { createTestDatabase, waitFor, type TestDatabase } from '../helpers/db.js';
import { startTestSync } from '../helpers/sync.js';

let db: TestDatabase;
let sync: Sync;
const directory = createDirectory({ recipientDelimiter: '+' });

beforeAll(async () => {
  db = await createTestDatabase();
  await db.sql.query(`
    INSERT INTO mailmapd.domains (name) VALUES ('example.org'), ('Other.TEST');
    INSERT INTO mailmapd.mailboxes (address, password, quota_bytes) VALUES ('alice@example.org', '{PLAIN}a', 1000);
    INSERT INTO mailmapd.aliases (address, destination) VALUES ('info@example.org', 'alice@example.org');
    INSERT INTO mailmapd.aliases (address, destination, active) VALUES ('team@example.org', 'carol@elsewhere.test', true),
      ('team@example.org', 'dave@elsewhere.test', false), ('team@example.org', 'alice@example.org', true);
  `);
  sync = startTestSync({
    databaseUrl: db.url,
    directory,
    // Never within the run: every change must arrive by NOTIFY (or a reconnect's catch-up),
    // so the waits below are only "eventually" — how soon is bench/'s (npm run bench -- sync).
    pollIntervalMs: 3_600_000,
    reconnectMaxDelayMs: 500,
  }).sync;
  await sync.firstLoad();
});

afterAll(async () => {
  await sync?.stop();
  await db?.drop();
});

describe('sync from PostgreSQL', () => {
  it('loads every table, folding names', () => {
    expect(directory.domain('other.test')).toBe('other.test');
    expect(directory.mailbox('alice@example.org')).toBe('example.org/alice/');
    expect(directory.alias('info@example.org')).toBe('alice@example.org');
    expect(directory.alias('team@example.org')).toBe('carol@elsewhere.test,alice@example.org');
    expect(directory.user('alice@example.org')).toMatchObject({ status: 'ok', quotaBytes: 1000 });
  });

  it('applies inserts, updates, deactivations and deletes in each table by NOTIFY', async () => {
    await db.sql.query(`INSERT INTO mailmapd.domains (name) VALUES ('new.test')`);
    await waitFor(() => directory.domain('new.test') === 'new.test', 10_000, 'domain insert');

    await db.sql.query(`INSERT INTO mailmapd.alias_domains (name, target) VALUES ('alias.test', 'example.org')`);
    await waitFor(
      () => directory.mailbox('alice@alias.test') === undefined && directory.alias('alice@alias.test') === 'alice@example.org',
      10_000,
      'alias domain',
    );

    await db.sql.query(`INSERT INTO mailmapd.mailboxes (address, password) VALUES ('bob@new.test', '{PLAIN}b')`);
    await waitFor(() => directory.mailbox('bob@new.test') === 'new.test/bob/', 10_000, 'mailbox insert');

    await db.sql.query(`UPDATE mailmapd.mailboxes SET password = '{PLAIN}c' WHERE address = 'bob@new.test'`);
    await waitFor(
      () => {
        const u = directory.user('bob@new.test');
        return u.status === 'ok' && u.password === '{PLAIN}c';
      },
      10_000,
      'password change',
    );

    await db.sql.query(`UPDATE mailmapd.mailboxes SET active = false WHERE address = 'bob@new.test'`);
    await waitFor(() => directory.mailbox('bob@new.test') === undefined && directory.user('bob@new.test').status === 'disabled', 10_000, 'deactivation');

    await db.sql.query(`INSERT INTO mailmapd.aliases (address, destination) VALUES ('info@example.org', 'carol@elsewhere.test')`);
    await waitFor(() => directory.alias('info@example.org') === 'alice@example.org,carol@elsewhere.test', 10_000, 'second alias destination');

    await db.sql.query(`UPDATE mailmapd.aliases SET active = false WHERE destination = 'alice@example.org'`);
    await waitFor(() => directory.alias('info@example.org') === 'carol@elsewhere.test', 10_000, 'alias row deactivated');

    await db.sql.query(`DELETE FROM mailmapd.aliases WHERE address = 'info@example.org'`);
    await waitFor(() => directory.alias('info@example.org') === undefined, 10_000, 'alias delete');

    await db.sql.query(`UPDATE mailmapd.domains SET active = false WHERE name = 'example.org'`);
    await waitFor(() => directory.domain('example.org') === undefined && directory.mailbox('alice@example.org') === undefined, 10_000, 'domain deactivation');
    await db.sql.query(`UPDATE mailmapd.domains SET active = true WHERE name = 'example.org'`);

    await db.sql.query(`DELETE FROM mailmapd.alias_domains WHERE name = 'alias.test'`);
    await db.sql.query(`DELETE FROM mailmapd.mailboxes WHERE address = 'bob@new.test'`);
    await db.sql.query(`DELETE FROM mailmapd.domains WHERE name = 'new.test'`);
    await waitFor(
      () => directory.domain('new.test') === undefined && directory.user('bob@new.test').status === 'unknown' && directory.domain('alias.test') === undefined,
      10_000,
      'deletes',
    );
  });

  it('rejects bad rows at the database: upper case is folded, no @, unknown alias-domain target', async () => {
    await db.sql.query(`INSERT INTO mailmapd.mailboxes (address) VALUES ('Dave@Example.ORG')`);
    await waitFor(() => directory.mailbox('dave@example.org') === 'example.org/dave/', 10_000, 'folded mailbox');
    await expect(db.sql.query(`INSERT INTO mailmapd.mailboxes (address) VALUES ('nobody')`)).rejects.toThrow(/check constraint/);
    await expect(db.sql.query(`INSERT INTO mailmapd.mailboxes (address) VALUES ('x@nodomain.test')`)).rejects.toThrow(/foreign key/);
    await expect(db.sql.query(`INSERT INTO mailmapd.alias_domains (name, target) VALUES ('a.test', 'missing.test')`)).rejects.toThrow(/foreign key/);
  });

  it('loses nothing when the LISTEN connection is killed while changes are made', async () => {
    const before = sync.status().fullLoads;
    await db.sql.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND application_name = 'mailmapd'`, [db.name]);
    // Written while the daemon is (probably) disconnected: no NOTIFY reaches it.
    for (let i = 0; i < 20; i++) await db.sql.query(`INSERT INTO mailmapd.mailboxes (address) VALUES ($1)`, [`k${i}@example.org`]);
    await db.sql.query(`UPDATE mailmapd.mailboxes SET quota_bytes = 7 WHERE address = 'alice@example.org'`);
    await waitFor(
      () => {
        const u = directory.user('alice@example.org');
        return directory.mailbox('k19@example.org') !== undefined && u.status === 'ok' && u.quotaBytes === 7;
      },
      15_000,
      'changes after reconnect',
    );
    for (let i = 0; i < 20; i++) expect(directory.mailbox(`k${i}@example.org`)).toBe(`example.org/k${i}/`);
    expect(sync.status().fullLoads).toBe(before); // caught up, not reloaded
  });

  it('sees a change committed by a transaction that began before the previous catch-up', async () => {
    // Transaction ids are assigned out of commit order: the early one commits last.
    const early = new (await import('pg')).default.Client({ connectionString: db.url });
    await early.connect();
    try {
      await early.query('BEGIN');
      await early.query(`INSERT INTO mailmapd.mailboxes (address) VALUES ('early@example.org')`);
      await db.sql.query(`INSERT INTO mailmapd.mailboxes (address) VALUES ('late@example.org')`);
      await waitFor(() => directory.mailbox('late@example.org') !== undefined, 10_000, 'late');
      await early.query('COMMIT');
      await waitFor(() => directory.mailbox('early@example.org') !== undefined, 10_000, 'early');
    } finally {
      await early.end();
    }
  });

  it('a 100k-row insert in one transaction arrives complete', async () => {
    await db.sql.query(`INSERT INTO mailmapd.domains (name) VALUES ('bulk.test')`);
    await db.sql.query(`
      BEGIN;
      INSERT INTO mailmapd.mailboxes (address, password) SELECT 'u' || i || '@bulk.test', '{PLAIN}x' FROM generate_series(1, 100000) i;
      INSERT INTO mailmapd.aliases (address, destination) SELECT 'a' || i || '@bulk.test', 'u' || i || '@bulk.test' FROM generate_series(1, 100000) i;
      COMMIT;`);
    await waitFor(() => directory.counts().mailbox >= 100000 + 20, 90_000, 'bulk insert');
    expect(directory.mailbox('u1@bulk.test')).toBe('bulk.test/u1/');
    expect(directory.mailbox('u100000@bulk.test')).toBe('bulk.test/u100000/');
    expect(directory.alias('a99999@bulk.test')).toBe('u99999@bulk.test');
    expect(directory.counts().alias).toBeGreaterThanOrEqual(100000);
  }, 120_000);

  it('TRUNCATE reloads the kind', async () => {
    await db.sql.query(`TRUNCATE mailmapd.aliases`);
    await waitFor(() => directory.counts().alias === 0, 15_000, 'truncate');
  });

  it('no NOTIFY payload carries a key or a hash', async () => {
    const listener = new (await import('pg')).default.Client({ connectionString: db.url });
    await listener.connect();
    const payloads: string[] = [];
    listener.on('notification', (n) => payloads.push(n.payload ?? ''));
    await listener.query('LISTEN mailmapd');
    await db.sql.query(`UPDATE mailmapd.mailboxes SET password = '{PLAIN}secret-hash' WHERE address = 'alice@example.org'`);
    await waitFor(() => payloads.length > 0, 10_000, 'notification');
    await listener.end();
    expect(payloads).toEqual(['mailbox']);
  });
});
