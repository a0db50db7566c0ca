// App passwords and master users in the login decision, and the accounts schema itself:
// thirty app passwords cost one worker job per login, a change to any of them drops the
// mailbox from the credential cache, slow panel-written ones still work, and migration 4
// upgrades a database that holds data in place — checked with an unprivileged role too.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAuthenticator } from '../../src/auth/authenticator.js';
import { generateAppPassword } from '../../src/cli/app-password.js';
import { migrate, migrations } from '../../src/db/schema.js';
import { createDirectory, emptyData } from '../../src/directory/directory.js';
import { createLogger } from '../../src/log.js';
import { createMetrics } from '../../src/metrics.js';
import { hashPassword } from '../../src/password/hash.js';
import { createHashPool, type HashPool } from '../../src/password/pool.js';
import { nativeProfile } from '../../src/sync/profile.js';
import { postfixadminProfile } from '../../src/sync/profiles/postfixadmin.js';
import { mailboxRow } from '../../src/sync/rows.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

let pool: HashPool;
beforeAll(() => {
  pool = createHashPool({ workers: 1, queueLimit: 100, defaultScheme: 'CRYPT', metrics: createMetrics(false), logger: createLogger('error', () => {}) });
});
afterAll(() => pool.close());

describe('app passwords in the login decision', () => {
  it('thirty generated app passwords: one worker job per login, whichever password is used', async () => {
    const apps = await Promise.all(
      Array.from({ length: 30 }, async (_, i) => {
        const pw = generateAppPassword();
        return { pw, stored: { name: `d${i}`, password: await hashPassword(pw, 'SSHA256'), services: i === 29 ? ['imap'] : [] } };
      }),
    );
    const directory = createDirectory({ recipientDelimiter: '+' });
    const data = emptyData();
    data.domains.set('example.org', true);
    data.mailboxes.set('a@example.org', {
      password: await hashPassword('main-pw', 'SHA512-CRYPT'),
      quotaBytes: 0,
      active: true,
      appPasswords: apps.map((a) => a.stored),
    });
    directory.replaceAll(data);
    const auth = createAuthenticator({
      directory,
      pool,
      logger: createLogger('error', () => {}),
      metrics: createMetrics(false),
      userdb: { mailHome: '/m/%d/%n', mailUid: 1, mailGid: 1 },
      cacheSize: 100,
    });
    const jobs = async (fn: () => Promise<unknown>) => {
      const before = pool.completed;
      await fn();
      return pool.completed - before;
    };
    const imap = { service: 'imap' };
    expect(await jobs(async () => expect(await auth.authenticate('a@example.org', apps[5]!.pw, imap)).toMatchObject({ result: 'ok' }))).toBe(1);
    expect(await jobs(async () => expect(await auth.authenticate('a@example.org', 'wrong', imap)).toMatchObject({ result: 'fail' }))).toBe(1);
    expect(await jobs(async () => expect(await auth.authenticate('a@example.org', 'main-pw', imap)).toMatchObject({ result: 'ok' }))).toBe(1);
    // Verified once: the next login with it hashes nothing.
    expect(await jobs(async () => expect(await auth.authenticate('a@example.org', 'main-pw', imap)).toMatchObject({ result: 'ok' }))).toBe(0);
    // The last one is for IMAP only.
    expect(await auth.authenticate('a@example.org', apps[29]!.pw, imap)).toMatchObject({ result: 'ok' });
    expect(await auth.authenticate('a@example.org', apps[29]!.pw, { service: 'smtp' })).toMatchObject({ result: 'fail', why: 'mismatch' });

    // Removing an app password forgets the cached login made with it at once.
    expect(await auth.authenticate('a@example.org', apps[5]!.pw, imap)).toMatchObject({ result: 'ok' });
    const rest = apps.filter((_, i) => i !== 5).map((a) => a.stored);
    directory.setMailbox('a@example.org', { ...data.mailboxes.get('a@example.org')!, appPasswords: rest });
    expect(await auth.authenticate('a@example.org', apps[5]!.pw, imap)).toMatchObject({ result: 'fail' });
    auth.close();
  });

  it('an app password a panel stored with a slow scheme is checked too, after the mailbox password', async () => {
    const directory = createDirectory({ recipientDelimiter: '+' });
    const data = emptyData();
    data.domains.set('example.org', true);
    data.mailboxes.set('b@example.org', {
      password: '{PLAIN}main-pw',
      quotaBytes: 0,
      active: true,
      appPasswords: [{ name: 'tablet', password: await hashPassword('tablet-pw', 'SHA512-CRYPT'), services: [] }],
    });
    directory.replaceAll(data);
    const auth = createAuthenticator({
      directory,
      pool,
      logger: createLogger('error', () => {}),
      metrics: createMetrics(false),
      userdb: { mailHome: '/m/%d/%n', mailUid: 1, mailGid: 1 },
      cacheSize: 0,
    });
    expect(await auth.authenticate('b@example.org', 'tablet-pw', { service: 'pop3' })).toMatchObject({ result: 'ok' });
    expect(await auth.authenticate('b@example.org', 'main-pw', { service: 'pop3' })).toMatchObject({ result: 'ok' });
    expect(await auth.authenticate('b@example.org', 'nope', { service: 'pop3' })).toMatchObject({ result: 'fail' });
    auth.close();
  });
});

describe('the accounts schema', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase({ migrate: false });
  });
  afterAll(() => db.drop());

  it('migrate upgrades a version-1 database with data in place', async () => {
    // A database as the first release left it, with a mailbox in it.
    await db.sql.query('BEGIN');
    await db.sql.query(migrations[0]!.sql);
    await db.sql.query(
      `CREATE TABLE mailmapd.schema_version (version integer PRIMARY KEY, description text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`,
    );
    await db.sql.query(`INSERT INTO mailmapd.schema_version (version, description) VALUES (1, 'first')`);
    await db.sql.query('COMMIT');
    await db.sql.query(
      `INSERT INTO mailmapd.domains (name) VALUES ('example.org'); INSERT INTO mailmapd.mailboxes (address, password) VALUES ('old@example.org', '{PLAIN}pw')`,
    );
    const r = await migrate(db.sql);
    expect(r.applied).toContain(4);
    const row = await db.sql.query({ text: `SELECT * FROM (${nativeProfile.queries.mailbox}) q WHERE q.address = 'old@example.org'`, rowMode: 'array' });
    expect(mailboxRow(row.rows[0]!)).toEqual(['old@example.org', { password: '{PLAIN}pw', quotaBytes: 0, active: true }]);
  });

  it("a panel's role writes app passwords (folded) and master users; bad services and names are refused", async () => {
    await db.sql.query(`DROP ROLE IF EXISTS ${db.name}_panel`);
    await db.sql.query(`CREATE ROLE ${db.name}_panel LOGIN`);
    await db.sql.query(
      `GRANT USAGE ON SCHEMA mailmapd TO ${db.name}_panel; GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA mailmapd TO ${db.name}_panel; GRANT USAGE ON ALL SEQUENCES IN SCHEMA mailmapd TO ${db.name}_panel`,
    );
    const pg = (await import('pg')).default;
    const url = new URL(db.url);
    url.username = `${db.name}_panel`;
    const panel = new pg.Client({ connectionString: url.toString() });
    await panel.connect();
    try {
      await panel.query(
        `INSERT INTO mailmapd.app_passwords (mailbox, name, password, services) VALUES ('OLD@Example.org', 'phone', '{SSHA256}x', '{imap,smtp}')`,
      );
      await panel.query(`INSERT INTO mailmapd.master_users (name, password) VALUES ('support', '{PLAIN}m')`);
      await expect(
        panel.query(`INSERT INTO mailmapd.app_passwords (mailbox, name, password, services) VALUES ('old@example.org', 'x', '{SSHA256}x', '{ftp}')`),
      ).rejects.toThrow(/check constraint/);
      await expect(panel.query(`UPDATE mailmapd.mailboxes SET disabled_services = '{imap,bogus}'`)).rejects.toThrow(/check constraint/);
      await expect(panel.query(`INSERT INTO mailmapd.master_users (name, password) VALUES ('a@b', 'x')`)).rejects.toThrow(/check constraint/);
      const changes = await db.sql.query(`SELECT kind, key FROM mailmapd.changes WHERE kind IN ('mailbox', 'master_user') ORDER BY id DESC LIMIT 2`);
      expect(changes.rows).toEqual([
        { kind: 'master_user', key: 'support' },
        { kind: 'mailbox', key: 'old@example.org' },
      ]);
      const row = await db.sql.query({ text: `SELECT * FROM (${nativeProfile.queries.mailbox}) q WHERE q.address = 'old@example.org'`, rowMode: 'array' });
      expect(mailboxRow(row.rows[0]!)[1].appPasswords).toEqual([{ name: 'phone', password: '{SSHA256}x', services: ['imap', 'smtp'] }]);
    } finally {
      await panel.end();
      await db.sql.query(`DROP OWNED BY ${db.name}_panel; DROP ROLE ${db.name}_panel`);
    }
  });
});

describe('PostfixAdmin: smtp_active', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase({ migrate: false });
  });
  afterAll(() => db.drop());

  it('smtp_active = false disables smtp and submission; a schema without the column still reads', async () => {
    await db.sql.query(
      `CREATE TABLE mailbox (username varchar(255) PRIMARY KEY, password varchar(255) NOT NULL, quota bigint NOT NULL DEFAULT 0, active boolean NOT NULL DEFAULT true)`,
    );
    await db.sql.query(`INSERT INTO mailbox (username, password) VALUES ('a@example.org', '{PLAIN}a')`);
    const read = async () => (await db.sql.query({ text: postfixadminProfile.queries.mailbox, rowMode: 'array' })).rows.map((r) => mailboxRow(r)[1]);
    expect(await read()).toEqual([{ password: '{PLAIN}a', quotaBytes: 0, active: true }]);
    await db.sql.query(`ALTER TABLE mailbox ADD COLUMN smtp_active boolean NOT NULL DEFAULT true`);
    expect(await read()).toEqual([{ password: '{PLAIN}a', quotaBytes: 0, active: true }]);
    await db.sql.query(`UPDATE mailbox SET smtp_active = false`);
    expect(await read()).toEqual([{ password: '{PLAIN}a', quotaBytes: 0, active: true, disabledServices: ['smtp', 'submission'] }]);
  });
});
