// The write-back buffer on its own, against real PostgreSQL: the newest value per mailbox
// wins, many rows go in one statement, the bound drops (and counts) what does not fit
// while the primary is away, an unprivileged role can write, and a profile's own tables
// (PostfixAdmin's quota2, Modoboa's admin_quota) get the usage instead of the native table.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Registry } from 'prom-client';
import { randomBytes } from 'node:crypto';
import { createLogger } from '../../src/log.js';
import { modoboaProfile } from '../../src/sync/profiles/modoboa.js';
import { postfixadminProfile } from '../../src/sync/profiles/postfixadmin.js';
import { nativeProfile } from '../../src/sync/profile.js';
import { createWritebackMetrics, type WritebackMetrics } from '../../src/metrics.js';
import { nativeStatements, statementsFor } from '../../src/writeback/statements.js';
import { createWriter, type Writer, type WriterOptions } from '../../src/writeback/writer.js';
import { freePort } from '../helpers/daemon.js';
import { createTestDatabase, waitFor, type TestDatabase } from '../helpers/db.js';

let db: TestDatabase;
const writers: Writer[] = [];

function writer(over: Partial<WriterOptions> & { metrics: WritebackMetrics }): Writer {
  const w = createWriter({
    url: db.url,
    checkRecovery: true,
    statements: nativeStatements,
    logger: createLogger('error', () => {}),
    lastLoginIntervalMs: 60_000,
    maxPending: 1000,
    flushIntervalMs: 100,
    reconnectMaxDelayMs: 200,
    ...over,
  });
  writers.push(w);
  return w;
}

const value = async (m: { get(): Promise<{ values: { value: number; labels: Record<string, unknown> }[] }> }, labels: Record<string, string> = {}) =>
  (await m.get()).values.filter((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x)).reduce((a, v) => a + v.value, 0);

beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  for (const w of writers) await w.stop(1000);
  await db?.drop();
});

describe('the write-back buffer', () => {
  it('keeps the newest value per mailbox and writes many rows in one statement', async () => {
    const metrics = createWritebackMetrics(new Registry());
    const w = writer({ metrics, flushIntervalMs: 60_000, batchRows: 500, maxPending: 5000 });
    for (let i = 0; i < 1200; i++) w.usage(`u${i}@example.org`, i, 1);
    w.usage('u7@example.org', 7000, 70); // replaces the waiting value
    w.usage('u8@example.org', undefined, 80); // a figure not reported keeps the waiting one
    expect(w.pending()).toBe(1200);
    await w.flush();
    expect(w.pending()).toBe(0);
    const r = await db.sql.query<{ n: number }>('SELECT count(*)::int AS n FROM mailmapd.quota_usage');
    expect(r.rows[0]!.n).toBe(1200);
    const u7 = await db.sql.query(`SELECT bytes, messages FROM mailmapd.quota_usage WHERE address IN ('u7@example.org', 'u8@example.org') ORDER BY address`);
    expect(u7.rows).toEqual([
      { bytes: '7000', messages: '70' },
      { bytes: '8', messages: '80' },
    ]);
    // 1200 rows in batches of 500: three statements.
    const h = (await metrics.batchSeconds.get()).values.find((v) => (v as { metricName?: string }).metricName === 'mailmapd_writeback_batch_seconds_count');
    expect(h?.value).toBe(3);
    expect(await value(metrics.written, { kind: 'quota_usage' })).toBe(1200);
  });

  it('an older value never replaces a newer one written by another daemon', async () => {
    const metrics = createWritebackMetrics(new Registry());
    const a = writer({ metrics, flushIntervalMs: 60_000 });
    a.login('old@example.org', 'imap', '192.0.2.1');
    await new Promise((r) => setTimeout(r, 20));
    const b = writer({ metrics, flushIntervalMs: 60_000 });
    b.login('old@example.org', 'pop3', '192.0.2.2');
    await b.flush();
    await a.flush();
    const r = await db.sql.query(`SELECT service, host(remote_ip) AS ip FROM mailmapd.last_logins WHERE address = 'old@example.org'`);
    expect(r.rows).toEqual([{ service: 'pop3', ip: '192.0.2.2' }]);
  });

  it('writes a client address that is no IP (a unix socket, a name) as NULL, beside the others in one batch', async () => {
    // The address is checked when the batch is written, not on the login: one that inet
    // refuses must not fail the statement for every row with it.
    const metrics = createWritebackMetrics(new Registry());
    const w = writer({ metrics, flushIntervalMs: 60_000 });
    w.login('ip-none@example.org', 'smtp', undefined);
    w.login('ip-empty@example.org', 'smtp', '');
    w.login('ip-name@example.org', 'imap', 'mail.example.org');
    w.login('ip-v6@example.org', 'imap', '2001:db8::1');
    await w.flush();
    const r = await db.sql.query(`SELECT address, host(remote_ip) AS ip FROM mailmapd.last_logins WHERE address LIKE 'ip-%' ORDER BY address`);
    expect(r.rows).toEqual([
      { address: 'ip-empty@example.org', ip: null },
      { address: 'ip-name@example.org', ip: null },
      { address: 'ip-none@example.org', ip: null },
      { address: 'ip-v6@example.org', ip: '2001:db8::1' },
    ]);
    expect(await value(metrics.dropped)).toBe(0);
  });

  it('with last_login_interval 0 records every login, the newest waiting one winning', async () => {
    const metrics = createWritebackMetrics(new Registry());
    const w = writer({ metrics, flushIntervalMs: 60_000, lastLoginIntervalMs: 0 });
    w.login('every@example.org', 'imap', '192.0.2.1');
    w.login('every@example.org', 'pop3', '192.0.2.2');
    expect(w.pending()).toBe(1);
    await w.flush();
    w.login('every@example.org', 'smtp', '192.0.2.3'); // at once after a write: recorded again
    expect(w.pending()).toBe(1);
    await w.flush();
    const r = await db.sql.query(`SELECT service, host(remote_ip) AS ip FROM mailmapd.last_logins WHERE address = 'every@example.org'`);
    expect(r.rows).toEqual([{ service: 'smtp', ip: '192.0.2.3' }]);
    expect(await value(metrics.written, { kind: 'last_login' })).toBe(2);
  });

  it('holds values while the primary is unreachable, up to the bound, and counts what it drops', async () => {
    const metrics = createWritebackMetrics(new Registry());
    const w = writer({ metrics, url: `postgres://postgres@127.0.0.1:${await freePort()}/none`, maxPending: 100 });
    for (let i = 0; i < 150; i++) w.login(`l${i}@example.org`, 'imap', undefined);
    for (let i = 0; i < 100; i++) w.login(`l${i}@example.org`, 'imap', undefined); // within the interval: not again
    await w.flush();
    expect(w.pending()).toBe(100);
    expect(await value(metrics.pending)).toBe(100);
    expect(await value(metrics.dropped, { kind: 'last_login', reason: 'buffer_full' })).toBe(50);
    // A value for a mailbox already waiting still replaces it: the bound is on mailboxes.
    w.usage('l1@example.org', 1, 1);
    expect(await value(metrics.dropped, { kind: 'quota_usage' })).toBe(0);
  });

  it('writes as a role that may only insert and update its two tables', async () => {
    const role = `mailmapd_wb_${randomBytes(4).toString('hex')}`;
    await db.sql.query(`CREATE ROLE ${role} LOGIN;
      GRANT CONNECT ON DATABASE ${db.name} TO ${role};
      GRANT USAGE ON SCHEMA mailmapd TO ${role};
      GRANT SELECT, INSERT, UPDATE ON mailmapd.last_logins, mailmapd.quota_usage TO ${role}`);
    try {
      const u = new URL(db.url);
      u.username = role;
      const metrics = createWritebackMetrics(new Registry());
      const w = writer({ metrics, url: u.toString() });
      w.login('role@example.org', 'submission', '::1');
      await waitFor(async () => (await db.sql.query(`SELECT 1 FROM mailmapd.last_logins WHERE address = 'role@example.org'`)).rowCount === 1, 5000, 'the row');
      expect(await value(metrics.dropped)).toBe(0);
      await w.stop();
    } finally {
      await db.sql.query(`DROP OWNED BY ${role}; DROP ROLE ${role}`);
    }
  });
});

describe('profiles write to their own tables', () => {
  it("PostfixAdmin's quota2", async () => {
    await db.sql.query(`CREATE TABLE quota2 (username varchar(100) PRIMARY KEY, bytes bigint NOT NULL DEFAULT 0, messages integer NOT NULL DEFAULT 0)`);
    const metrics = createWritebackMetrics(new Registry());
    const w = writer({ metrics, statements: statementsFor(postfixadminProfile), flushIntervalMs: 60_000 });
    w.usage('pa@example.org', 5000, 5);
    await w.flush();
    w.usage('pa@example.org', 6000, 6);
    await w.flush();
    expect((await db.sql.query('SELECT username, bytes, messages FROM quota2')).rows).toEqual([{ username: 'pa@example.org', bytes: '6000', messages: 6 }]);
    expect(statementsFor(postfixadminProfile).lastLogins).toBe(nativeStatements.lastLogins);
  });

  it("Modoboa's admin_quota, whose insert trigger adds: the row is set, not added to", async () => {
    await db.sql.query(`CREATE TABLE admin_quota (username varchar(254) PRIMARY KEY, bytes bigint NOT NULL DEFAULT 0, messages integer NOT NULL DEFAULT 0);
      INSERT INTO admin_quota (username, bytes, messages) VALUES ('mo@example.org', 100, 1)`);
    const metrics = createWritebackMetrics(new Registry());
    const w = writer({ metrics, statements: statementsFor(modoboaProfile), flushIntervalMs: 60_000 });
    w.usage('mo@example.org', 4000, 4);
    await w.flush();
    expect((await db.sql.query('SELECT username, bytes, messages FROM admin_quota')).rows).toEqual([
      { username: 'mo@example.org', bytes: '4000', messages: 4 },
    ]);
    expect(statementsFor(nativeProfile)).toEqual(nativeStatements);
  });
});
