// Where the write-back goes when database_url reaches a standby: nowhere, said in the log,
// the values counted as dropped rather than piling up; database_primary_url names the
// primary and is written to. A private primary and a streaming standby made from it
// with pg_basebackup, never the shared cluster.

import { execFileSync, spawnSync } from 'node:child_process';
import { chownSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log.js';
import { createWritebackMetrics } from '../../src/metrics.js';
import { nativeStatements } from '../../src/writeback/statements.js';
import { createWriter } from '../../src/writeback/writer.js';
import { createCluster, type Cluster } from '../helpers/cluster.js';
import { freePort } from '../helpers/daemon.js';
import { createTestDatabase, urlFor, waitFor, type TestDatabase } from '../helpers/db.js';

describe('write-back and a standby', { timeout: 60_000 }, () => {
  let primary: Cluster;
  let db: TestDatabase;
  let standbyDir: string;
  let standbyUrl: string;
  const bin = `/usr/lib/postgresql/${readdirSync('/usr/lib/postgresql').sort((a, b) => Number(b) - Number(a))[0]}/bin`;
  const asPostgres = (cmd: string, args: string[]) => {
    const root = process.getuid?.() === 0;
    const r = spawnSync(root ? 'runuser' : join(bin, cmd), root ? ['-u', 'postgres', '--', join(bin, cmd), ...args] : args, { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`${cmd} failed: ${r.stderr || r.stdout}`);
  };

  beforeAll(async () => {
    primary = await createCluster();
    db = await createTestDatabase({ base: primary.url });
    standbyDir = mkdtempSync(join(tmpdir(), 'mailmapd-standby-'));
    if (process.getuid?.() === 0)
      chownSync(standbyDir, Number(execFileSync('id', ['-u', 'postgres']).toString()), Number(execFileSync('id', ['-g', 'postgres']).toString()));
    const port = await freePort();
    asPostgres('pg_basebackup', [
      '-h',
      '127.0.0.1',
      '-p',
      String(primary.port),
      '-U',
      'postgres',
      '-D',
      join(standbyDir, 'data'),
      '-R',
      '-X',
      'stream',
      '-c',
      'fast',
    ]);
    asPostgres('pg_ctl', [
      '-D',
      join(standbyDir, 'data'),
      '-w',
      '-l',
      join(standbyDir, 'log'),
      '-o',
      `-p ${port} -k ${standbyDir} -c listen_addresses=127.0.0.1 -c fsync=off`,
      'start',
    ]);
    standbyUrl = urlFor(db.name, `postgres://postgres@127.0.0.1:${port}/postgres`);
  });
  afterAll(async () => {
    try {
      asPostgres('pg_ctl', ['-D', join(standbyDir, 'data'), '-w', '-m', 'immediate', 'stop']);
    } catch {
      /* not running */
    }
    rmSync(standbyDir, { recursive: true, force: true });
    await db?.drop();
    primary?.destroy();
  });

  it('database_primary_url: written to the primary, and replicated to the standby', async () => {
    const w = createWriter({
      url: db.url,
      checkRecovery: false,
      statements: nativeStatements,
      logger: createLogger('error', () => {}),
      metrics: createWritebackMetrics(new Registry()),
      lastLoginIntervalMs: 0,
      maxPending: 100,
      flushIntervalMs: 100,
      reconnectMaxDelayMs: 100,
    });
    const standby = new pg.Client({ connectionString: standbyUrl });
    await standby.connect();
    try {
      w.login('b@example.org', 'imap', '192.0.2.2');
      await waitFor(
        async () => (await standby.query(`SELECT 1 FROM mailmapd.last_logins WHERE address = 'b@example.org'`)).rowCount === 1,
        10_000,
        'the row on the standby',
      );
    } finally {
      await standby.end();
      await w.stop();
    }
  });
  it('database_url on a standby: nothing is written, the log says so, values are not held; once promoted, written', async () => {
    const logs: string[] = [];
    const metrics = createWritebackMetrics(new Registry());
    const w = createWriter({
      url: standbyUrl,
      checkRecovery: true,
      statements: nativeStatements,
      logger: createLogger('info', (l) => logs.push(l)),
      metrics,
      lastLoginIntervalMs: 0,
      maxPending: 100,
      flushIntervalMs: 100,
      reconnectMaxDelayMs: 100,
      standbyRecheckMs: 500,
    });
    try {
      await waitFor(() => logs.some((l) => l.includes('reaches a standby')), 10_000, 'the standby found out');
      w.login('a@example.org', 'imap', '192.0.2.1');
      w.usage('a@example.org', 1, 1);
      expect(w.pending()).toBe(0);
      const dropped = (await metrics.dropped.get()).values.filter((v) => v.labels.reason === 'no_primary').reduce((a, v) => a + v.value, 0);
      expect(dropped).toBe(2);

      // Promoted (a failover): found out within the recheck, and written to from then on.
      asPostgres('pg_ctl', ['-D', join(standbyDir, 'data'), '-w', 'promote']);
      await waitFor(() => logs.some((l) => l.includes('now reaches a primary')), 10_000, 'the promotion found out');
      w.login('c@example.org', 'imap', '192.0.2.3');
      const promoted = new pg.Client({ connectionString: standbyUrl });
      await promoted.connect();
      try {
        await waitFor(
          async () => (await promoted.query(`SELECT 1 FROM mailmapd.last_logins WHERE address = 'c@example.org'`)).rowCount === 1,
          10_000,
          'the row on the promoted server',
        );
      } finally {
        await promoted.end();
      }
    } finally {
      await w.stop();
    }
  });
});
