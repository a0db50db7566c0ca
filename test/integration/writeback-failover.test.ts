// Write-back across a failover: the primary stops, its standby is promoted, a login and a
// dict commit are held, and the old primary is started again. It takes writes as before —
// it does not know it was replaced — but the directory is now read on the promoted
// server's newer timeline, and the held values must land there, never on the old one.
// A private primary and a standby made with pg_basebackup -R, never the shared cluster.

import pg from 'pg';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log.js';
import { createWritebackMetrics } from '../../src/metrics.js';
import { nativeStatements } from '../../src/writeback/statements.js';
import { createWriter } from '../../src/writeback/writer.js';
import { createCluster, createMailDatabase, type Cluster } from '../helpers/cluster.js';
import { urlFor, waitFor } from '../helpers/db.js';
import { startTestSync } from '../helpers/sync.js';

let primary: Cluster;
let standby: Cluster;

beforeAll(async () => {
  primary = await createCluster();
  await createMailDatabase(primary, `INSERT INTO mailmapd.domains (name) VALUES ('example.org')`);
  standby = await createCluster({ standbyOf: primary });
}, 120_000);

afterAll(() => {
  standby?.destroy();
  primary?.destroy();
});

async function rows(c: Cluster): Promise<{ logins: string[]; usage: string[] }> {
  const client = new pg.Client({ connectionString: urlFor('mail', c.url) });
  await client.connect();
  try {
    const l = await client.query<{ address: string }>('SELECT address FROM mailmapd.last_logins ORDER BY 1');
    const u = await client.query<{ address: string }>('SELECT address FROM mailmapd.quota_usage ORDER BY 1');
    return { logins: l.rows.map((r) => r.address), usage: u.rows.map((r) => r.address) };
  } finally {
    await client.end();
  }
}

describe('write-back after a failover', () => {
  it('held values go to the promoted standby, not to the old primary started again', async () => {
    // As the daemon has it: one database_url listing both, the sync and the writer on it.
    const url = `postgres://postgres@127.0.0.1:${primary.port},127.0.0.1:${standby.port}/mail`;
    const { sync } = startTestSync({ databaseUrl: url, pollIntervalMs: 100, reconnectMaxDelayMs: 100 });
    const logs: string[] = [];
    const w = createWriter({
      url,
      checkRecovery: true,
      statements: nativeStatements,
      logger: createLogger('info', (l) => logs.push(l)),
      metrics: createWritebackMetrics(new Registry()),
      lastLoginIntervalMs: 0,
      maxPending: 100,
      // Flushed by the test only, at the moments the issue describes.
      flushIntervalMs: 3_600_000,
      reconnectMaxDelayMs: 100,
      history: () => sync.status().history,
    });
    try {
      await sync.firstLoad();
      const before = sync.status().history!;
      w.login('first@example.org', 'imap', '192.0.2.1');
      await waitFor(
        async () => {
          await w.flush();
          return w.pending() === 0;
        },
        20_000,
        'the first login written',
      );
      expect((await rows(primary)).logins).toEqual(['first@example.org']);

      primary.stop();
      standby.promote();
      await waitFor(() => (sync.status().history?.timeline ?? 0) > before.timeline, 30_000, 'the directory read on the new timeline');

      w.login('held@example.org', 'imap', '192.0.2.2');
      w.usage('held@example.org', 1234, 5);
      primary.start();
      await waitFor(
        async () => {
          await w.flush();
          return w.pending() === 0;
        },
        30_000,
        'the held values written',
      );
      expect(await rows(standby)).toEqual({ logins: ['first@example.org', 'held@example.org'].sort(), usage: ['held@example.org'] });
      expect(await rows(primary)).toEqual({ logins: ['first@example.org'], usage: [] });
    } finally {
      await w.stop(1000);
      await sync.stop();
    }
  }, 120_000);
});
