// The change log over time: one case-folding rule whatever the database's ctype, pruning
// that an idle-in-transaction session holds back instead of turning every catch-up into
// a full reload, and pruning that resumes once it may.

import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { migrate } from '../../src/db/schema.js';
import { createDirectory } from '../../src/directory/directory.js';
import { silentLogger } from '../../src/log.js';
import { createMetrics } from '../../src/metrics.js';
import { nativeProfile } from '../../src/sync/profile.js';
import { createSync, type Sync } from '../../src/sync/sync.js';
import { createCluster, type Cluster } from '../helpers/cluster.js';
import { serverUrl, urlFor, waitFor } from '../helpers/db.js';

const cleanup: Array<() => Promise<void> | void> = [];
afterAll(async () => {
  for (const f of cleanup.reverse()) await f();
});

function sync(
  url: string,
  directory = createDirectory({ recipientDelimiter: '+' }),
  extra: { retentionMs?: number; metrics?: ReturnType<typeof createMetrics> } = {},
) {
  const s: Sync = createSync({
    databaseUrl: url,
    profile: nativeProfile,
    directory,
    logger: silentLogger,
    metrics: extra.metrics ?? createMetrics(false),
    pollIntervalMs: 100,
    retentionMs: extra.retentionMs ?? 86_400_000,
    reconnectMaxDelayMs: 200,
  });
  cleanup.push(() => s.stop());
  s.start();
  return { sync: s, directory };
}

async function connect(url: string): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: url });
  c.on('error', () => {});
  await c.connect();
  cleanup.push(() => c.end().catch(() => {}));
  return c;
}

describe('case folding', () => {
  it('a non-ASCII local part in a C-ctype database stays found after its password changes', async () => {
    const name = `mailmapd_test_c_${process.pid}_${Date.now()}`;
    const admin = await connect(serverUrl);
    await admin.query(`CREATE DATABASE ${name} TEMPLATE template0 ENCODING 'UTF8' LC_CTYPE 'C' LC_COLLATE 'C'`);
    cleanup.push(async () => {
      await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    });
    const url = urlFor(name);
    const sql = await connect(url);
    await migrate(sql);
    // lower() in ctype C leaves Ä as it is, so the schema's own folding keeps it.
    await sql.query(`INSERT INTO mailmapd.domains (name) VALUES ('example.org');
      INSERT INTO mailmapd.mailboxes (address, password) VALUES ('Ärger@example.org', '{PLAIN}one')`);
    const { sync: s, directory } = sync(url);
    await s.firstLoad();
    expect(directory.user('Ärger@example.org')).toMatchObject({ status: 'ok', password: '{PLAIN}one' });
    expect(directory.user('ärger@example.org')).toMatchObject({ status: 'ok' });
    await sql.query(`UPDATE mailmapd.mailboxes SET password = '{PLAIN}two' WHERE address = 'Ärger@example.org'`);
    await s.kick();
    expect(directory.user('Ärger@example.org')).toMatchObject({ status: 'ok', password: '{PLAIN}two' });
    expect(directory.mailbox('Ärger@example.org')).toBeDefined();
    await sql.query(`DELETE FROM mailmapd.mailboxes WHERE address = 'Ärger@example.org'`);
    await s.kick();
    expect(directory.user('ärger@example.org')).toMatchObject({ status: 'unknown' });
  });
});

describe('pruning', () => {
  let cluster: Cluster;

  it('an idle-in-transaction session older than the retention causes no full reloads; pruning resumes after it', async () => {
    cluster = await createCluster();
    cleanup.push(() => cluster.destroy());
    const sql = await connect(cluster.url);
    await migrate(sql);
    await sql.query(`INSERT INTO mailmapd.domains (name) VALUES ('example.org')`);
    const metrics = createMetrics(false);
    const { sync: s, directory } = sync(cluster.url, undefined, { retentionMs: 300, metrics });
    await s.firstLoad();

    // A forgotten session: it took a transaction id and went idle.
    const idle = await connect(cluster.url);
    await idle.query('BEGIN');
    await idle.query('SELECT pg_current_xact_id()');

    const t0 = Date.now();
    let i = 0;
    while (Date.now() - t0 < 3000) {
      await sql.query(`INSERT INTO mailmapd.mailboxes (address) VALUES ($1)`, [`p${i}@example.org`]);
      await s.kick();
      expect(directory.mailbox(`p${i}@example.org`)).toBeDefined();
      i++;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(s.status().fullLoads).toBe(1);
    // Nothing at or above the idle transaction was pruned.
    const kept = await sql.query<{ n: number }>('SELECT count(*)::int AS n FROM mailmapd.changes');
    expect(kept.rows[0]!.n).toBeGreaterThanOrEqual(i);

    await idle.query('COMMIT');
    await waitFor(
      async () => {
        const r = await sql.query<{ n: number }>('SELECT count(*)::int AS n FROM mailmapd.changes');
        return r.rows[0]!.n < i;
      },
      15_000,
      'pruning after the idle transaction ended',
    );
    await sql.query(`INSERT INTO mailmapd.mailboxes (address) VALUES ('after@example.org')`);
    await s.kick();
    expect(directory.mailbox('after@example.org')).toBeDefined();
    // At most the one reload that a pruned, never-seen change would justify: none here.
    expect(s.status().fullLoads).toBe(1);
    const rows = (await metrics.registry.getSingleMetric('mailmapd_change_log_rows')?.get())?.values[0]?.value;
    expect(typeof rows).toBe('number');
  }, 60_000);
});
