// The doorbell may not ring: a server with max_prepared_transactions > 0 sends no NOTIFY
// (it would break PREPARE TRANSACTION), and a connection may hang without failing. The
// sync must then learn of every change by its cheap poll — a transaction committing after
// a later one included — and notice a hung connection within seconds.

import { createServer, Socket, type Server } from 'node:net';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { changeLogSql } from '../../src/db/schema.js';
import { createDirectory } from '../../src/directory/directory.js';
import { createLogger, silentLogger } from '../../src/log.js';
import { createMetrics } from '../../src/metrics.js';
import { nativeProfile } from '../../src/sync/profile.js';
import { createSync, type Sync } from '../../src/sync/sync.js';
import { createTestDatabase, waitFor, type TestDatabase } from '../helpers/db.js';

let db: TestDatabase;
const stops: Array<() => Promise<unknown> | undefined> = [];

beforeAll(async () => {
  db = await createTestDatabase();
  // The trigger as it is on a server where NOTIFY would break two-phase commit: silent.
  await db.sql.query(changeLogSql.replace(/PERFORM pg_notify\([^;]*;/, 'NULL;'));
  await db.sql.query(`INSERT INTO mailmapd.domains (name) VALUES ('example.org')`);
});

afterAll(async () => {
  for (const s of stops.reverse()) await s();
  await db?.drop();
});

function start(url: string, queryTimeoutMs?: number) {
  const directory = createDirectory({ recipientDelimiter: '+' });
  const sync: Sync = createSync({
    databaseUrl: url,
    profile: nativeProfile,
    directory,
    logger: silentLogger,
    metrics: createMetrics(false),
    pollIntervalMs: 100,
    retentionMs: 86_400_000,
    reconnectMaxDelayMs: 200,
    ...(queryTimeoutMs !== undefined ? { queryTimeoutMs } : {}),
  });
  stops.push(() => sync.stop());
  sync.start();
  return { sync, directory };
}

/** A TCP relay to PostgreSQL whose existing connections can be made to swallow every byte. */
function relay(target: number): Promise<{ port: number; freeze(): void }> {
  const pairs: Array<[Socket, Socket]> = [];
  const server: Server = createServer((a) => {
    const b = new Socket();
    b.connect(target, '127.0.0.1');
    a.pipe(b);
    b.pipe(a);
    a.on('error', () => b.destroy());
    b.on('error', () => a.destroy());
    a.on('close', () => b.destroy());
    b.on('close', () => a.destroy());
    pairs.push([a, b]);
  });
  stops.push(
    () =>
      new Promise<void>((r) => {
        for (const [a, b] of pairs) {
          a.destroy();
          b.destroy();
        }
        server.close(() => r());
      }),
  );
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as { port: number }).port;
      resolve({
        port,
        freeze() {
          // Nothing passes any more, and nothing is closed: a path that hangs.
          for (const [a, b] of pairs.splice(0)) {
            a.unpipe(b);
            b.unpipe(a);
            a.pause();
            b.pause();
            a.on('data', () => {});
            stops.push(() => {
              a.destroy();
              b.destroy();
              return undefined;
            });
          }
        },
      });
    }),
  );
}

describe('without the doorbell', () => {
  it('every change arrives by polling, a late commit included, and an idle poll starts no catch-up', async () => {
    const { sync, directory } = start(db.url);
    await sync.firstLoad();
    await db.sql.query(`INSERT INTO mailmapd.mailboxes (address) VALUES ('first@example.org')`);
    await waitFor(() => directory.mailbox('first@example.org') !== undefined, 10_000, 'first change by polling');

    const early = new pg.Client({ connectionString: db.url });
    await early.connect();
    try {
      await early.query('BEGIN');
      await early.query(`INSERT INTO mailmapd.mailboxes (address) VALUES ('early@example.org')`);
      await db.sql.query(`INSERT INTO mailmapd.mailboxes (address) VALUES ('late@example.org')`);
      await waitFor(() => directory.mailbox('late@example.org') !== undefined, 10_000, 'late');
      await new Promise((r) => setTimeout(r, 500)); // polls that see the sequence unmoved
      await early.query('COMMIT');
      await waitFor(() => directory.mailbox('early@example.org') !== undefined, 10_000, 'early, committed without moving the sequence');
    } finally {
      await early.end();
    }

    await new Promise((r) => setTimeout(r, 300));
    const before = sync.status().catchups;
    await new Promise((r) => setTimeout(r, 1000));
    // Ten polls, no change: not one catch-up, and still in sync.
    expect(sync.status().catchups).toBe(before);
    expect(sync.inSync()).toBe(true);
  });
});

describe('a role that may not read the change-log sequence', () => {
  it('catches up on every poll instead of probing, and every change arrives', async () => {
    const role = `${db.name}_reader`;
    await db.sql.query(`CREATE ROLE ${role} LOGIN;
      GRANT USAGE ON SCHEMA mailmapd TO ${role};
      GRANT SELECT ON ALL TABLES IN SCHEMA mailmapd TO ${role}`);
    try {
      const u = new URL(db.url);
      u.username = role;
      const { sync, directory } = start(u.toString());
      await sync.firstLoad();
      await db.sql.query(`INSERT INTO mailmapd.mailboxes (address) VALUES ('unprobed@example.org')`);
      await waitFor(() => directory.mailbox('unprobed@example.org') !== undefined, 10_000, 'a change without the sequence');
      const before = sync.status().catchups;
      // Nothing changed, yet without the sequence every poll is a catch-up, each a success:
      // four more of them, however many polls a busy machine fits in a second.
      await waitFor(() => sync.status().catchups > before + 3, 10_000, 'catch-ups on idle polls');
      expect(sync.status()).toMatchObject({ fullLoads: 1, lastError: undefined });
      await sync.stop();
    } finally {
      await db.sql.query(`DROP OWNED BY ${role}; DROP ROLE ${role}`);
    }
  });
});

describe('a flapping connection', () => {
  it('reconnects at once after each drop that followed a successful catch-up', async () => {
    const directory = createDirectory({ recipientDelimiter: '+' });
    const logs: string[] = [];
    const sync = createSync({
      databaseUrl: db.url,
      profile: nativeProfile,
      directory,
      logger: createLogger('warn', (l) => logs.push(l)),
      metrics: createMetrics(false),
      pollIntervalMs: 100,
      retentionMs: 86_400_000,
      reconnectMaxDelayMs: 10_000,
    });
    stops.push(() => sync.stop());
    sync.start();
    await sync.firstLoad();
    const interrupted = () => logs.filter((l) => l.includes('database sync interrupted'));
    for (let i = 0; i < 6; i++) {
      // Retried while the sync is between connections (nothing to terminate).
      const terminate = async () =>
        (await db.sql.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND application_name = 'mailmapd'`, [db.name]))
          .rowCount! > 0;
      await waitFor(terminate, 15_000, `a connection to drop ${i}`);
      // The drop noticed (logged), then a catch-up on the new connection: only then the next drop.
      await waitFor(() => interrupted().length > i, 15_000, `drop ${i} noticed`);
      const before = sync.status().catchups;
      await waitFor(() => sync.status().catchups > before, 15_000, `reconnect ${i}`);
    }
    // Each drop's wait, as the log says it: the first step every time (100 ms), never the
    // doubled 200, 400 … 3200 ms of a backoff that was not reset by the catch-up between.
    const waits = interrupted().map((l) => /retry_ms=(\d+)/.exec(l)?.[1]);
    expect(waits).toEqual(Array(6).fill('100'));
  }, 60_000);
});

describe('a hung connection', () => {
  it('is noticed within seconds; changes made meanwhile arrive over a new one', async () => {
    const r = await relay(new URL(db.url).port === '' ? 5432 : Number(new URL(db.url).port));
    const u = new URL(db.url);
    u.port = String(r.port);
    const { sync, directory } = start(u.toString(), 1000);
    await sync.firstLoad();
    r.freeze();
    await db.sql.query(`UPDATE mailmapd.domains SET active = false WHERE name = 'example.org'`);
    await waitFor(() => directory.domain('example.org') === undefined, 6000, 'change after the hang');
  });
});
