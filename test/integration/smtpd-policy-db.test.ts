// The policy service's counts and usage shared through PostgreSQL: two daemons' send counts
// meet in send_counts (each written through its write-back, each read back by the other's
// follower), send_usage shows them for panels, `send-usage` prints and resets them; quota
// usage written by any host reaches the follower without reloading anything; the native
// profile carries the limits from the rows into the directory's records.

import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseSendUsageArgs, sendUsageCommand } from '../../src/cli/send-usage.js';
import { createLogger } from '../../src/log.js';
import { createCountWriter } from '../../src/smtpd-policy/count-writer.js';
import { createFollower, type Follower } from '../../src/smtpd-policy/follower.js';
import { createSendCounts, minuteOf, type SendCounts } from '../../src/smtpd-policy/send-counts.js';
import { nativeQuotaUsageRead } from '../../src/smtpd-policy/statements.js';
import { quotaUsageReadFor } from '../../src/smtpd-policy/start.js';
import { postfixadminProfile } from '../../src/sync/profiles/postfixadmin.js';
import { createDirectory, emptyData } from '../../src/directory/directory.js';
import { nativeProfile } from '../../src/sync/profile.js';
import { rowAdder } from '../../src/sync/rows.js';
import { createWritebackMetrics } from '../../src/metrics.js';
import { nativeStatements } from '../../src/writeback/statements.js';
import { createWriter, type Writer } from '../../src/writeback/writer.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

let db: TestDatabase;
const stops: (() => Promise<void>)[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  for (const s of stops) await s();
  await db?.drop();
});

interface Host {
  counts: SendCounts;
  usage: Map<string, number>;
  writer: Writer;
  follower: Follower;
}

function host(quotaUsage = { sql: nativeQuotaUsageRead, fullEvery: 1 }): Host {
  const counts = createSendCounts();
  const usage = new Map<string, number>();
  const logger = createLogger('error', () => {});
  const writer = createWriter({
    url: db.url,
    checkRecovery: true,
    statements: nativeStatements,
    logger,
    metrics: createWritebackMetrics(new Registry()),
    lastLoginIntervalMs: 60_000,
    maxPending: 1000,
    // Flushed by the test, not by the timer.
    flushIntervalMs: 3_600_000,
    reconnectMaxDelayMs: 200,
    sources: [createCountWriter(counts)],
  });
  const follower = createFollower({
    url: db.url,
    intervalMs: 3_600_000,
    reconnectMaxDelayMs: 200,
    usage,
    counts,
    quotaUsage,
    logger,
  });
  stops.push(
    () => follower.stop(),
    () => writer.stop(),
  );
  return { counts, usage, writer, follower };
}

const out = () => {
  const lines: string[] = [];
  return { lines, out: (l: string) => void lines.push(l) };
};

describe('send counts shared by every host', () => {
  it('two daemons see each other’s counts, send_usage shows them, and a reset reaches both', async () => {
    const a = host();
    const b = host();
    const m = minuteOf(Date.now());
    a.counts.add('alice@example.org', m, 5);
    a.counts.add('@example.org', m, 5);
    await a.writer.flush();
    expect(a.counts.pending()).toBe(0);
    await b.follower.poll();
    expect(b.counts.sum('alice@example.org', m, 60)).toBe(5);

    b.counts.add('bob@example.org', m, 3);
    b.counts.add('@example.org', m, 3);
    await b.writer.flush();
    await a.follower.poll();
    expect(a.counts.sum('@example.org', m, 1440)).toBe(8);
    // A's own count is not counted twice once it is back from the database.
    expect(a.counts.sum('alice@example.org', m, 60)).toBe(5);

    const usage = await db.sql.query('SELECT address, hour, day FROM mailmapd.send_usage ORDER BY address');
    expect(usage.rows).toEqual([
      { address: '@example.org', hour: 8, day: 8 },
      { address: 'alice@example.org', hour: 5, day: 5 },
      { address: 'bob@example.org', hour: 3, day: 3 },
    ]);

    const o = out();
    await sendUsageCommand(db.sql, parseSendUsageArgs([]), o.out);
    expect(o.lines).toEqual(['@example.org hour=8 day=8', 'alice@example.org hour=5 day=5', 'bob@example.org hour=3 day=3']);
    const one = out();
    await sendUsageCommand(db.sql, parseSendUsageArgs(['Alice@Example.org']), one.out);
    expect(one.lines).toEqual(['alice@example.org hour=5 day=5']);

    await sendUsageCommand(db.sql, parseSendUsageArgs(['reset', '@example.org']), out().out);
    await a.follower.poll();
    await b.follower.poll();
    expect(a.counts.sum('@example.org', m, 1440)).toBe(0);
    expect(b.counts.sum('@example.org', m, 1440)).toBe(0);
    const after = out();
    await sendUsageCommand(db.sql, parseSendUsageArgs(['@example.org']), after.out);
    expect(after.lines).toEqual(['@example.org hour=0 day=0']);
  });

  it('keeps counting while the write fails and hands the counts over once it works', async () => {
    const a = host();
    const m = minuteOf(Date.now());
    await db.sql.query('ALTER TABLE mailmapd.send_counts RENAME TO send_counts_away');
    try {
      a.counts.add('carol@example.org', m, 4);
      await a.writer.flush();
      expect(a.counts.sum('carol@example.org', m, 60)).toBe(4);
    } finally {
      await db.sql.query('ALTER TABLE mailmapd.send_counts_away RENAME TO send_counts');
    }
  });

  it('rejects a usage error before reaching the database', () => {
    expect(() => parseSendUsageArgs(['reset'])).toThrow(/usage/);
    expect(() => parseSendUsageArgs(['a@b', 'c@d'])).toThrow(/usage/);
  });
});

describe('quota usage followed', () => {
  it('a usage written by any host reaches the follower, and a change after it too', async () => {
    const a = host();
    const write = (bytes: number) => db.sql.query(nativeStatements.quotaUsage, [['dave@example.org'], [bytes], [1], [new Date()]]);
    await write(100);
    await a.follower.poll();
    expect(a.usage.get('dave@example.org')).toBe(100);
    await write(5000);
    await a.follower.poll();
    expect(a.usage.get('dave@example.org')).toBe(5000);
  });

  it('reads quota usage while send_counts is missing (a database not migrated yet), and the counts once it is there', async () => {
    const a = host();
    await db.sql.query('ALTER TABLE mailmapd.send_counts RENAME TO send_counts_later');
    try {
      await db.sql.query(nativeStatements.quotaUsage, [['erin@example.org'], [42], [1], [new Date()]]);
      await a.follower.poll();
      expect(a.usage.get('erin@example.org')).toBe(42);
    } finally {
      await db.sql.query('ALTER TABLE mailmapd.send_counts_later RENAME TO send_counts');
    }
    await db.sql.query(`INSERT INTO mailmapd.send_counts (address, minute, count) VALUES ('erin@example.org', $1, 9)`, [minuteOf(Date.now())]);
    await a.follower.poll();
    expect(a.counts.sum('erin@example.org', minuteOf(Date.now()), 60)).toBe(9);
  });

  it("PostfixAdmin's quota2, which has no change time, is read whole every few polls", async () => {
    const read = quotaUsageReadFor(postfixadminProfile, 1000);
    expect(read.fullEvery).toBe(10);
    await db.sql.query(`CREATE TABLE quota2 (username varchar(100) PRIMARY KEY, bytes bigint NOT NULL DEFAULT 0, messages integer NOT NULL DEFAULT 0)`);
    await db.sql.query(`INSERT INTO quota2 VALUES ('PA@Example.org', 777, 1)`);
    const a = host({ ...read, fullEvery: 2 });
    await a.follower.poll();
    expect(a.usage.get('pa@example.org')).toBe(777);
    await db.sql.query(`UPDATE quota2 SET bytes = 888`);
    await a.follower.poll(); // not a full read's turn
    expect(a.usage.get('pa@example.org')).toBe(777);
    await a.follower.poll();
    expect(a.usage.get('pa@example.org')).toBe(888);
  });
});

describe('limits from the rows', () => {
  it('the native profile carries mailbox and domain limits into the directory', async () => {
    await db.sql.query(`INSERT INTO mailmapd.domains (name, mailbox_send_limit_hour, send_limit_day) VALUES ('limits.test', 7, 70)`);
    await db.sql.query(
      `INSERT INTO mailmapd.mailboxes (address, password, send_limit_day) VALUES ('own@limits.test', 'x', 30), ('plain@limits.test', 'x', NULL)`,
    );
    const data = emptyData();
    for (const kind of ['domain', 'mailbox', 'route'] as const) {
      const r = await db.sql.query({ text: nativeProfile.queries[kind], rowMode: 'array' });
      const adder = rowAdder(data, kind);
      for (const row of r.rows) adder.add(row);
      adder.finish();
    }
    const dir = createDirectory({ recipientDelimiter: '+' });
    dir.replaceAll(data);
    const own = dir.user('own@limits.test');
    const plain = dir.user('plain@limits.test');
    expect(own.status === 'ok' && own.sendLimits).toEqual({ hour: null, day: 30 });
    expect(plain.status === 'ok' && plain.sendLimits).toEqual({ hour: null, day: null });
    expect(dir.domainSendLimits('limits.test')).toEqual({ mailboxHour: 7, mailboxDay: null, totalDay: 70 });
    expect(dir.domainSendLimits('example.org')).toEqual({ mailboxHour: null, mailboxDay: null, totalDay: null });
    // A limit change on the domain is logged for the route key the sync re-reads.
    await db.sql.query(`UPDATE mailmapd.domains SET send_limit_day = 80 WHERE name = 'limits.test'`);
    const logged = await db.sql.query(`SELECT key FROM mailmapd.changes WHERE kind = 'route' ORDER BY id DESC LIMIT 2`);
    expect(logged.rows.map((r) => r.key).sort()).toEqual(['domain_transport:limits.test', 'send_limits:limits.test']);
  });
});
