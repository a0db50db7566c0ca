// Who may send as whom, and copies, in the directory: every row of the README's table of
// cases, with the example directory written to the native schema and loaded by the sync
// (the migration's tables, the route query and the joining of grant rows included), grants
// and copies kept fresh as rows change, and grants from a custom profile. The pure
// directory's edge cases are in test/unit/senders.test.ts.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { triggersCommand } from '../../src/cli/triggers.js';
import { inTransaction } from '../../src/db/client.js';
import { migrate, migrations } from '../../src/db/schema.js';
import { nativeProfile } from '../../src/sync/profile.js';
import { parseConfigText } from '../../src/config.js';
import { checkProfile } from '../../src/sync/profile-check.js';
import { profileFor } from '../../src/sync/profile-select.js';
import type { Directory } from '../../src/directory/directory.js';
import type { Sync } from '../../src/sync/sync.js';
import { createTestDatabase, urlFor, waitFor, type TestDatabase } from '../helpers/db.js';
import { sendAsCases, sendAsSeedSql } from '../helpers/send-as-cases.js';
import { startTestSync } from '../helpers/sync.js';

const sorted = (v: string | undefined) => (v === undefined ? [] : v.split(',').sort());

describe('the README table of senders, from the native schema through the sync', () => {
  let db: TestDatabase;
  let sync: Sync;
  let dir: Directory;

  beforeAll(async () => {
    db = await createTestDatabase();
    await db.sql.query(sendAsSeedSql);
    ({ sync, directory: dir } = startTestSync({ databaseUrl: db.url }));
    await sync.firstLoad();
  });
  afterAll(async () => {
    await sync?.stop();
    await db?.drop();
  });

  const cases = sendAsCases();
  it('has the rows the issue asks for', () => {
    expect(cases.length).toBeGreaterThanOrEqual(20);
  });
  for (const c of cases) {
    it(`${c.sender}: ${c.logins.length === 0 ? 'nobody' : c.logins.join(', ')} (${c.rule})`, () => {
      expect(sorted(dir.lookup('senders', c.sender))).toEqual([...c.logins].sort());
    });
  }

  it('a grant added, deactivated and removed in SQL reaches the map', async () => {
    const bob = () => dir.lookup('senders', 'cfo@example.org');
    expect(bob()).toBeUndefined();
    await db.sql.query(
      `INSERT INTO mailmapd.send_as (mailbox, address) VALUES ('Bob@Example.org', 'CFO@example.org'), ('dave@example.org', 'cfo@example.org')`,
    );
    await waitFor(() => bob() !== undefined, 5000, 'the grants');
    expect(sorted(bob())).toEqual(['bob@example.org', 'dave@example.org']);
    await db.sql.query(`UPDATE mailmapd.send_as SET active = false WHERE mailbox = 'dave@example.org' AND address = 'cfo@example.org'`);
    await waitFor(() => bob() === 'bob@example.org', 5000, 'the deactivated grant');
    await db.sql.query(`DELETE FROM mailmapd.send_as WHERE address = 'cfo@example.org'`);
    await waitFor(() => bob() === undefined, 5000, 'the removed grants');
  });

  it("a mailbox's grants go with it", async () => {
    await db.sql.query(`INSERT INTO mailmapd.mailboxes (address, password) VALUES ('temp@example.org', '{PLAIN}x');
      INSERT INTO mailmapd.send_as (mailbox, address) VALUES ('temp@example.org', 'tempboss@example.org')`);
    await waitFor(() => dir.lookup('senders', 'tempboss@example.org') === 'temp@example.org', 5000, 'the grant');
    await db.sql.query(`DELETE FROM mailmapd.mailboxes WHERE address = 'temp@example.org'`);
    expect((await db.sql.query(`SELECT 1 FROM mailmapd.send_as WHERE mailbox = 'temp@example.org'`)).rowCount).toBe(0);
    await waitFor(() => dir.lookup('senders', 'tempboss@example.org') === undefined, 5000, 'the grant gone with its mailbox');
  });

  it('BCC copies: address, then without its extension, then @domain; by direction; kept fresh', async () => {
    await db.sql.query(`INSERT INTO mailmapd.bcc (address, direction, bcc) VALUES
      ('Alice@Example.org', 'sender', 'Alice-Sent@example.org'), ('@example.org', 'sender', 'all-sent@example.org'),
      ('alice@example.org', 'recipient', 'alice-in@example.org'), ('alice+x@example.org', 'recipient', 'alice-x@example.org')`);
    await waitFor(() => dir.lookup('recipient_bcc', 'alice+x@example.org') !== undefined, 5000, 'the copies');
    const cases: [string, string, string | undefined][] = [
      ['sender_bcc', 'alice@example.org', 'alice-sent@example.org'],
      ['sender_bcc', 'ALICE+tag@example.org', 'alice-sent@example.org'],
      ['sender_bcc', 'bob@example.org', 'all-sent@example.org'],
      ['sender_bcc', 'bob@elsewhere.test', undefined],
      ['sender_bcc', '', undefined],
      ['sender_bcc', '<>', undefined],
      ['recipient_bcc', 'alice@example.org', 'alice-in@example.org'],
      ['recipient_bcc', 'alice+x@example.org', 'alice-x@example.org'],
      ['recipient_bcc', 'alice+y@example.org', 'alice-in@example.org'],
      ['recipient_bcc', 'bob@example.org', undefined],
    ];
    for (const [map, key, want] of cases) expect(dir.lookup(map as 'sender_bcc', key), `${map} ${key}`).toBe(want);
    await db.sql.query(`UPDATE mailmapd.bcc SET active = false WHERE address = '@example.org'`);
    await waitFor(() => dir.lookup('sender_bcc', 'bob@example.org') === undefined, 5000, 'the deactivated copy');
    await db.sql.query(`DELETE FROM mailmapd.bcc WHERE address = 'alice@example.org' AND direction = 'recipient'`);
    await waitFor(() => dir.lookup('recipient_bcc', 'alice+y@example.org') === undefined, 5000, 'the removed copy');
    expect(dir.lookup('sender_bcc', 'alice@example.org')).toBe('alice-sent@example.org');
  });

  it('the schema folds and checks what other writers put in', async () => {
    const bad = [
      `INSERT INTO mailmapd.send_as (mailbox, address) VALUES ('nobody@example.org', 'x@example.org')`,
      `INSERT INTO mailmapd.send_as (mailbox, address) VALUES ('alice@example.org', 'no-at-sign')`,
      `INSERT INTO mailmapd.bcc (address, direction, bcc) VALUES ('a@example.org', 'both', 'b@example.org')`,
      `INSERT INTO mailmapd.bcc (address, direction, bcc) VALUES ('a@example.org', 'sender', '@example.org')`,
    ];
    for (const q of bad) await expect(db.sql.query(q), q).rejects.toThrow();
  });
});

// A panel with mailcow's sender_acl (logged_in_as, send_as, external), read through a custom
// profile: its grants come back in the routes section as `send_as:<address>` → a mailbox. An
// external row (an address elsewhere) is a grant too, as in mailcow's own query.
const mailcowLike = `
-- domains:
SELECT lower(domain) AS name, active = 1 AS active FROM mc.domain
-- mailboxes:
SELECT lower(username) AS address, password, 0::bigint AS quota_bytes, active = 1 AS active FROM mc.mailbox
-- routes:
SELECT 'send_as:' || lower(send_as) AS key, lower(logged_in_as) AS value FROM mc.sender_acl
-- watch mc.domain domains lower(r.domain)
-- watch mc.mailbox mailboxes lower(r.username)
-- watch mc.sender_acl routes 'send_as:' || lower(r.send_as)
`;

describe('a custom profile returns grants', () => {
  let db: TestDatabase;
  let sync: Sync | undefined;
  const dir = mkdtempSync(join(tmpdir(), 'mailmapd-sendas-profile-'));

  beforeAll(async () => {
    db = await createTestDatabase();
    await db.sql.query(`CREATE SCHEMA mc;
      CREATE TABLE mc.domain (domain text PRIMARY KEY, active smallint NOT NULL DEFAULT 1);
      CREATE TABLE mc.mailbox (username text PRIMARY KEY, password text, active smallint NOT NULL DEFAULT 1);
      CREATE TABLE mc.sender_acl (id serial PRIMARY KEY, logged_in_as text NOT NULL, send_as text NOT NULL, external smallint NOT NULL DEFAULT 0);
      INSERT INTO mc.domain (domain) VALUES ('example.org');
      INSERT INTO mc.mailbox (username, password) VALUES ('alice@example.org', '{PLAIN}x'), ('bob@example.org', '{PLAIN}x');
      INSERT INTO mc.sender_acl (logged_in_as, send_as) VALUES ('alice@example.org', 'Sales@example.org'), ('bob@example.org', 'sales@example.org'), ('bob@example.org', '@Partner.test');
      INSERT INTO mc.sender_acl (logged_in_as, send_as, external) VALUES ('alice@example.org', 'alice@gmail.example', 1);`);
  });
  afterAll(async () => {
    await sync?.stop();
    await db?.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('passes mailmapd check, installs its triggers, and keeps the senders map fresh', async () => {
    const file = join(dir, 'mailcow-like.sql');
    writeFileSync(file, mailcowLike);
    const profile = await profileFor(`custom:${file}`);
    expect(await checkProfile(db.sql, profile)).toEqual([]);
    const lines: string[] = [];
    const config = parseConfigText(`database_url = ${db.url}\nschema = custom:${file}\n`, 'test.conf');
    expect(await triggersCommand(config, ['install'], (l) => lines.push(l))).toBe(0);
    let directory: Directory;
    ({ sync, directory } = startTestSync({ databaseUrl: db.url, profile }));
    await sync.firstLoad();
    expect(sorted(directory.senders('sales+x@example.org'))).toEqual(['alice@example.org', 'bob@example.org']);
    expect(directory.senders('anyone@partner.test')).toBe('bob@example.org');
    expect(directory.senders('alice@gmail.example')).toBe('alice@example.org');
    await db.sql.query(`DELETE FROM mc.sender_acl WHERE logged_in_as = 'alice@example.org' AND send_as = 'Sales@example.org'`);
    await waitFor(() => directory.senders('sales@example.org') === 'bob@example.org', 5000, 'the removed grant');
    await db.sql.query(`UPDATE mc.mailbox SET active = 0 WHERE username = 'bob@example.org'`);
    await waitFor(() => directory.senders('sales@example.org') === undefined, 5000, 'the deactivated mailbox');
  });
});

describe('upgrading to the send-as tables', () => {
  let db: TestDatabase;
  const role = `mailmapd_sendas_reader_${process.pid}`;
  afterAll(async () => {
    await db?.drop();
    const admin = new pg.Client({ connectionString: urlFor('postgres') });
    await admin.connect();
    await admin.query(`DROP ROLE IF EXISTS ${role}`).finally(() => admin.end());
  });

  it('a role that read the directory before the upgrade reads the routes after it', async () => {
    db = await createTestDatabase({ migrate: false });
    const sendAs = migrations.find((m) => m.description.startsWith('send-as'))!;
    // The schema as it was before the send-as migration, read by a role granted the tables of that moment.
    for (const m of migrations.filter((x) => x.version < sendAs.version)) {
      await inTransaction(db.sql, async () => {
        await db.sql.query(m.sql);
        await db.sql.query(
          `CREATE TABLE IF NOT EXISTS mailmapd.schema_version (version integer PRIMARY KEY, description text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`,
        );
        await db.sql.query('INSERT INTO mailmapd.schema_version (version, description) VALUES ($1, $2)', [m.version, m.description]);
      });
    }
    await db.sql.query(`CREATE ROLE ${role} LOGIN; GRANT USAGE ON SCHEMA mailmapd TO ${role}; GRANT SELECT ON ALL TABLES IN SCHEMA mailmapd TO ${role}`);
    expect((await migrate(db.sql)).applied).toEqual([sendAs.version]);
    await db.sql.query(`INSERT INTO mailmapd.domains (name) VALUES ('example.org');
      INSERT INTO mailmapd.mailboxes (address, password) VALUES ('alice@example.org', '{PLAIN}x');
      INSERT INTO mailmapd.send_as (mailbox, address) VALUES ('alice@example.org', 'ceo@example.org')`);
    const url = new URL(db.url);
    url.username = role;
    url.password = '';
    const reader = new pg.Client({ connectionString: url.toString() });
    await reader.connect();
    try {
      const r = await reader.query(nativeProfile.queries.route);
      expect(r.rows).toEqual([{ key: 'send_as:ceo@example.org', value: 'alice@example.org' }]);
    } finally {
      await reader.end();
    }
  });
});
