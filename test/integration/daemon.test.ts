// The daemon as an administrator runs it: config errors at start, the admin CLI changing
// what it serves, readiness, SIGHUP, SIGTERM, and a PostgreSQL restart that loses nothing.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCluster, createMailDatabase, type Cluster } from '../helpers/cluster.js';
import { createTestDatabase, waitFor, type TestDatabase } from '../helpers/db.js';
import { cliPath, startDaemon, type Daemon } from '../helpers/daemon.js';

function cli(args: string[], opts: { config?: string; input?: string } = {}) {
  const r = spawnSync(process.execPath, [cliPath, ...(opts.config ? ['-c', opts.config] : []), ...args], {
    input: opts.input ?? '',
    encoding: 'utf8',
    env: { ...process.env, MAILMAPD_CONFIG: '' },
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

async function ready(d: Daemon): Promise<{ status: number; body: { ready: boolean; reason?: string; entries?: Record<string, number> } }> {
  const r = await d.http('/readyz');
  return { status: r.status, body: await r.json() };
}

describe('mailmapd serve with the admin CLI', () => {
  let db: TestDatabase;
  let daemon: Daemon;
  beforeAll(async () => {
    db = await createTestDatabase();
    daemon = await startDaemon({ databaseUrl: db.url });
  });
  afterAll(async () => {
    await daemon?.stop();
    await db?.drop();
  });

  it('admin commands change what the running daemon serves, and bad input changes nothing', async () => {
    const conf = daemon.configPath;
    const added = cli(['domain', 'add', 'Example.ORG'], { config: conf });
    expect(added).toMatchObject({ code: 0 });
    // The domain, then its DKIM keys and the DNS records to publish (test/integration/dkim-keys.test.ts).
    expect(added.out).toMatch(/^added domain example\.org\n/);
    expect(cli(['domain', 'add', 'example.org'], { config: conf })).toMatchObject({ code: 2, err: 'mailmapd: example.org already exists\n' });
    expect(cli(['mailbox', 'add', 'alice@example.org'], { config: conf, input: 'pw-one\n' }).code).toBe(0);
    expect(cli(['mailbox', 'add', 'alice'], { config: conf, input: 'x\n' })).toMatchObject({ code: 2 });
    const missing = cli(['mailbox', 'add', 'bob@missing.test'], { config: conf, input: 'x\n' });
    expect(missing.code).toBe(2);
    expect(missing.err).toMatch(/domain missing\.test does not exist/);
    expect(cli(['alias', 'add', 'info@example.org', 'alice@example.org'], { config: conf }).code).toBe(0);
    expect(cli(['alias', 'add', 'x@nowhere.test', 'alice@example.org'], { config: conf }).code).toBe(2);
    await waitFor(async () => (await ready(daemon)).body.entries?.mailbox === 1 && (await ready(daemon)).body.entries?.alias === 1, 10_000, 'entries');

    const rows = await db.sql.query('SELECT address, password FROM mailmapd.mailboxes');
    expect(rows.rows).toHaveLength(1);
    expect(rows.rows[0].password).toMatch(/^\{[A-Z0-9-]+\}\S+$/);
    expect(rows.rows[0].password).not.toContain('pw-one');
    expect(cli(['mailbox', 'list'], { config: conf }).out).toBe('alice@example.org\n');
    expect(cli(['alias', 'list', 'example.org'], { config: conf }).out).toBe('info@example.org -> alice@example.org\n');
    // Removing what does not exist is "not found" (1), as `postmap -q` finding nothing.
    expect(cli(['mailbox', 'rm', 'nobody@example.org'], { config: conf })).toMatchObject({ code: 1, err: 'mailmapd: no such mailbox: nobody@example.org\n' });
    expect(cli(['alias', 'rm', 'nobody@example.org'], { config: conf }).code).toBe(1);
    expect(cli(['domain', 'rm', 'nowhere.test'], { config: conf }).code).toBe(1);
    expect(cli(['check'], { config: conf }).code).toBe(0);
  });

  it('serves metrics and health', async () => {
    expect((await daemon.http('/healthz')).status).toBe(200);
    const text = await (await daemon.http('/metrics')).text();
    expect(text).toMatch(/^mailmapd_directory_loaded 1$/m);
    expect(text).toMatch(/^mailmapd_database_connected 1$/m);
    expect(text).toMatch(/^mailmapd_directory_entries\{table="mailbox"\} 1$/m);
    expect((await daemon.http('/nope')).status).toBe(404);
  });

  it('SIGHUP applies a new config and rejects a broken one without dying', async () => {
    writeFileSync(daemon.configPath, (await import('node:fs')).readFileSync(daemon.configPath, 'utf8').replace('log_level = debug', 'log_level = info'));
    daemon.process.kill('SIGHUP');
    await waitFor(() => daemon.logs().includes('configuration reloaded'), 3000, 'reload');
    writeFileSync(join(daemon.dir, 'mailmapd.conf'), 'bogus = 1\n');
    daemon.process.kill('SIGHUP');
    await waitFor(() => daemon.logs().includes('config rejected'), 3000, 'rejected reload');
    expect(daemon.logs()).toMatch(/mailmapd\.conf:1: unknown key \\?"bogus\\?"/);
    expect((await ready(daemon)).status).toBe(200);
  });
});

describe('readiness', () => {
  it('/readyz names a fixed reason and keeps the database error for the log', async () => {
    const bare = await createTestDatabase({ migrate: false });
    const d = await startDaemon({ databaseUrl: bare.url, waitReady: false });
    try {
      await waitFor(() => d.logs().includes('does not exist'), 5000, 'the sync to fail on the missing schema');
      const r = await d.http('/readyz');
      const text = await r.text();
      expect(r.status).toBe(503);
      expect(JSON.parse(text)).toEqual({ ready: false, reason: 'directory not loaded yet' });
      expect(text).not.toMatch(/mailmapd\.|does not exist|relation/);
      // Each /readyz logs the error the sync holds at that moment, once per distinct error.
      await waitFor(
        async () => {
          await (await d.http('/readyz')).text();
          return /msg="not ready".*does not exist/.test(d.logs());
        },
        10_000,
        'the detail in the log',
      );
    } finally {
      await d.stop();
      await bare.drop();
    }
  });
});

describe('startup errors', () => {
  it('an unknown key or an unusable listener stops the start with exit 2, naming key and line', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mailmapd-conf-'));
    const conf = join(dir, 'c.conf');
    writeFileSync(conf, '# comment\nsocketmap_listen = inet:192.0.2.1:7025\n');
    const r = cli(['serve'], { config: conf });
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/c\.conf:2: socketmap_listen: refusing non-loopback address 192\.0\.2\.1/);
    writeFileSync(conf, 'database_url = postgres://127.0.0.1:1/x\nmax_connections = 0\n');
    expect(cli(['serve'], { config: conf })).toMatchObject({ code: 2 });
    expect(cli(['check'], { config: join(dir, 'missing.conf') })).toMatchObject({ code: 2 });
  });

  it('a listener address already in use is a startup error, not a half-started daemon', async () => {
    const db = await createTestDatabase();
    const first = await startDaemon({ databaseUrl: db.url });
    try {
      await expect(startDaemon({ databaseUrl: db.url, config: { http_listen: `127.0.0.1:${first.ports.http}` }, waitReady: true })).rejects.toThrow(
        /exited with 2/,
      );
    } finally {
      await first.stop();
      await db.drop();
    }
  });

  it('the database being down gives exit 75 for admin commands', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mailmapd-conf-'));
    const conf = join(dir, 'c.conf');
    writeFileSync(conf, 'database_url = postgres://postgres@127.0.0.1:1/x\n');
    expect(cli(['domain', 'list'], { config: conf }).code).toBe(75);
  });
});

describe('PostgreSQL restarts (private cluster)', () => {
  let cluster: Cluster;
  let daemon: Daemon | undefined;
  let url: string;
  beforeAll(async () => {
    cluster = await createCluster();
    url = await createMailDatabase(cluster, `INSERT INTO mailmapd.domains (name) VALUES ('example.org')`);
  });
  afterAll(async () => {
    await daemon?.stop();
    cluster?.destroy();
  });

  it('keeps serving while the database is down, reports not ready, and catches up on every change', async () => {
    daemon = await startDaemon({ databaseUrl: url });
    const write = async (sql: string) => {
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      await c.query(sql);
      await c.end();
    };
    await write(`INSERT INTO mailmapd.mailboxes (address) SELECT 'before' || i || '@example.org' FROM generate_series(1, 50) i`);
    cluster.stop();
    await waitFor(async () => (await ready(daemon!)).status === 503, 5000, 'not ready while down');
    const down = await ready(daemon);
    expect(down.body.reason).toMatch(/database unreachable/);
    expect(down.body.entries).toBeUndefined();
    const metrics = await (await daemon.http('/metrics')).text();
    expect(metrics).toMatch(/^mailmapd_database_connected 0$/m);
    cluster.start();
    // Written right after the restart, before the daemon has necessarily reconnected.
    await write(`INSERT INTO mailmapd.mailboxes (address) SELECT 'after' || i || '@example.org' FROM generate_series(1, 50) i`);
    await write(`DELETE FROM mailmapd.mailboxes WHERE address = 'before1@example.org'`);
    await waitFor(async () => (await ready(daemon!)).body.entries?.mailbox === 99, 10000, 'all changes after restart');
    expect(daemon.logs()).toMatch(/database sync interrupted; serving the last good copy/);
  });

  it('starts while the database is down and loads once it is up', async () => {
    await daemon?.stop();
    cluster.stop();
    daemon = await startDaemon({ databaseUrl: url, waitReady: false });
    const r = await ready(daemon);
    expect(r.status).toBe(503);
    expect(r.body.reason).toBe('directory not loaded yet');
    cluster.start();
    await waitFor(async () => (await ready(daemon!)).status === 200, 10000, 'ready after the database came up');
  });
});
