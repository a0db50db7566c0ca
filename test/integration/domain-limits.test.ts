// Domain limits (mailmapd.domains.max_mailboxes, max_aliases, max_quota_bytes) are enforced
// by the schema for every writer — a panel's unprivileged role as much as the CLI — with an
// error naming the domain and the limit, which the CLI prints as one line with exit code 2.

import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliPath } from '../helpers/daemon.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

describe('domain limits', () => {
  let db: TestDatabase;
  let panel: pg.Client;
  let panelPool: pg.Pool;
  const role = `mailmapd_panel_${randomBytes(4).toString('hex')}`;

  beforeAll(async () => {
    db = await createTestDatabase();
    // A panel's role as panels have it: it may write the tables, nothing more.
    await db.sql.query(`CREATE ROLE ${role} LOGIN`);
    await db.sql.query(`GRANT USAGE ON SCHEMA mailmapd TO ${role};
      GRANT SELECT, INSERT, UPDATE, DELETE ON mailmapd.domains, mailmapd.mailboxes, mailmapd.aliases TO ${role};
      GRANT USAGE ON ALL SEQUENCES IN SCHEMA mailmapd TO ${role}`);
    const url = new URL(db.url);
    url.username = role;
    panel = new pg.Client({ connectionString: url.toString() });
    await panel.connect();
    panelPool = new pg.Pool({ connectionString: url.toString(), max: 8 });
    await db.sql.query(`INSERT INTO mailmapd.domains (name, max_mailboxes, max_aliases, max_quota_bytes) VALUES
      ('small.test', 2, 2, 1073741824), ('free.test', NULL, NULL, NULL)`);
  });

  afterAll(async () => {
    await panel?.end();
    await panelPool?.end();
    await db?.drop();
    const admin = new pg.Client({ connectionString: new URL('/postgres', db.url).toString() });
    await admin.connect();
    await admin.query(`DROP ROLE IF EXISTS ${role}`);
    await admin.end();
  });

  const refused = async (sql: string, message: RegExp) => {
    const err = await panel.query(sql).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err, sql).toBeInstanceOf(Error);
    expect(err!.message).toMatch(message);
  };

  it('refuses a mailbox over max_mailboxes, naming the domain and the limit', async () => {
    await panel.query(`INSERT INTO mailmapd.mailboxes (address, quota_bytes) VALUES ('a@small.test', 1000), ('b@small.test', 1000)`);
    await refused(`INSERT INTO mailmapd.mailboxes (address, quota_bytes) VALUES ('c@small.test', 1000)`, /domain small\.test allows at most 2 mailboxes/);
    // Renaming within the domain is no new mailbox; an unlimited domain takes any number.
    await panel.query(`UPDATE mailmapd.mailboxes SET quota_bytes = 2000 WHERE address = 'a@small.test'`);
    await panel.query(`INSERT INTO mailmapd.mailboxes (address) SELECT 'u' || i || '@free.test' FROM generate_series(1, 50) i`);
  });

  it('refuses a quota over max_quota_bytes, and "no limit" where a limit is set', async () => {
    await panel.query(`DELETE FROM mailmapd.mailboxes WHERE address = 'b@small.test'`);
    await refused(
      `INSERT INTO mailmapd.mailboxes (address, quota_bytes) VALUES ('big@small.test', 2147483648)`,
      /domain small\.test allows mailboxes of at most 1073741824 bytes/,
    );
    await refused(
      `INSERT INTO mailmapd.mailboxes (address) VALUES ('nolimit@small.test')`,
      /domain small\.test allows mailboxes of at most 1073741824 bytes .* no limit/,
    );
    await refused(`UPDATE mailmapd.mailboxes SET quota_bytes = 0 WHERE address = 'a@small.test'`, /max_quota_bytes/);
  });

  it('counts alias addresses, not destinations, against max_aliases', async () => {
    await panel.query(`INSERT INTO mailmapd.aliases (address, destination) VALUES
      ('x@small.test', 'a@small.test'), ('x@small.test', 'b@elsewhere.test'), ('y@small.test', 'a@small.test')`);
    await panel.query(`INSERT INTO mailmapd.aliases (address, destination) VALUES ('y@small.test', 'c@elsewhere.test')`);
    await refused(`INSERT INTO mailmapd.aliases (address, destination) VALUES ('z@small.test', 'a@small.test')`, /domain small\.test allows at most 2 aliases/);
  });

  it('refuses a limit below what the domain already holds', async () => {
    await db.sql.query(`INSERT INTO mailmapd.mailboxes (address, quota_bytes) VALUES ('b@small.test', 1000)`);
    await refused(
      `UPDATE mailmapd.domains SET max_mailboxes = 1 WHERE name = 'small.test'`,
      /domain small\.test already has 2 mailboxes, more than max_mailboxes 1/,
    );
    await refused(
      `UPDATE mailmapd.domains SET max_quota_bytes = 10 WHERE name = 'free.test'`,
      /domain free\.test has 50 mailboxes with a quota over max_quota_bytes/,
    );
  });

  it('writers racing for the last place: exactly one wins', async () => {
    await db.sql.query(`INSERT INTO mailmapd.domains (name, max_mailboxes) VALUES ('race.test', 1)`);
    const results = await Promise.allSettled(
      Array.from({ length: 8 }, (_, i) => panelPool.query(`INSERT INTO mailmapd.mailboxes (address) VALUES ('r${i}@race.test')`)),
    );
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const n = await db.sql.query(`SELECT count(*)::int AS n FROM mailmapd.mailboxes WHERE domain = 'race.test'`);
    expect(n.rows[0].n).toBe(1);
  });

  it('eight REPEATABLE READ sessions racing into a domain of three: at most three written, the rest refused', async () => {
    await db.sql.query(`INSERT INTO mailmapd.domains (name, max_mailboxes) VALUES ('rr.test', 3)`);
    const url = new URL(db.url);
    url.username = role;
    const sessions = await Promise.all(
      Array.from({ length: 8 }, async () => {
        const c = new pg.Client({ connectionString: url.toString() });
        await c.connect();
        return c;
      }),
    );
    try {
      // Each snapshot is taken before any of them inserts, as a panel's read-then-write does.
      for (const c of sessions) await c.query(`BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM mailmapd.mailboxes WHERE domain = 'rr.test'`);
      const results = await Promise.allSettled(
        sessions.map(async (c, i) => {
          try {
            await c.query(`INSERT INTO mailmapd.mailboxes (address) VALUES ('rr${i}@rr.test')`);
            await c.query('COMMIT');
          } catch (err) {
            await c.query('ROLLBACK');
            throw err;
          }
        }),
      );
      const n = await db.sql.query(`SELECT count(*)::int AS n FROM mailmapd.mailboxes WHERE domain = 'rr.test'`);
      expect(n.rows[0].n).toBeLessThanOrEqual(3);
      expect(n.rows[0].n).toBeGreaterThanOrEqual(1);
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(n.rows[0].n);
      for (const r of results) {
        if (r.status === 'rejected') expect((r.reason as { code?: string }).code, String(r.reason)).toMatch(/^(40001|23514)$/);
      }
    } finally {
      for (const c of sessions) await c.end();
    }
    // A retry counts afresh: the domain fills up to its limit and no further.
    for (let i = 0; i < 8; i++) {
      await panel
        .query(`BEGIN ISOLATION LEVEL REPEATABLE READ; INSERT INTO mailmapd.mailboxes (address) VALUES ('again${i}@rr.test'); COMMIT`)
        .catch(() => panel.query('ROLLBACK'));
    }
    const m = await db.sql.query(`SELECT count(*)::int AS n FROM mailmapd.mailboxes WHERE domain = 'rr.test'`);
    expect(m.rows[0].n).toBe(3);
  });

  it('the CLI prints the limit as one line and exits 2, leaving the database unchanged', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mailmapd-limits-'));
    const config = join(dir, 'mailmapd.conf');
    writeFileSync(config, `database_url = ${db.url}\npassword_scheme = SHA512-CRYPT\n`);
    const r = spawnSync(process.execPath, [cliPath, '-c', config, 'mailbox', 'add', 'c@small.test', '--quota', '1000'], {
      input: 'secret-pw\n',
      encoding: 'utf8',
    });
    expect(r.status, r.stderr).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/domain small\.test allows at most 2 mailboxes/);
  });
});
