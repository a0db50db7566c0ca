// A transaction that writes its change-log row before a poll and commits after it. On a
// primary polled for changes (max_prepared_transactions > 0: no doorbell) the sequence
// numbers the row at INSERT, not at COMMIT, and a snapshot leaves running transactions at
// or above its xmax out of its list, so the poll once never noticed such a commit: the
// change stayed invisible until another write. Each case must arrive within polls, read
// from the primary, from its hot standby, and with the doorbell (a server without 2PC).

import pg from 'pg';
import { afterAll, beforeAll, describe, it } from 'vitest';
import type { Sync } from '../../src/sync/sync.js';
import type { Directory } from '../../src/directory/directory.js';
import { createCluster, createMailDatabase, type Cluster } from '../helpers/cluster.js';
import { createTestDatabase, urlFor, waitFor, type TestDatabase } from '../helpers/db.js';
import { startTestSync } from '../helpers/sync.js';

let cluster: Cluster;
let standby: Cluster;
let url: string;
let sql: pg.Client;
let plain: TestDatabase;

beforeAll(async () => {
  const settings = ['max_prepared_transactions=4'];
  cluster = await createCluster({ settings });
  url = await createMailDatabase(cluster, `INSERT INTO mailmapd.domains (name) VALUES ('example.org')`);
  sql = new pg.Client({ connectionString: url });
  await sql.connect();
  standby = await createCluster({ standbyOf: cluster, settings });
  // The machine's server: max_prepared_transactions = 0, so the triggers ring the doorbell.
  plain = await createTestDatabase();
  await plain.sql.query(`INSERT INTO mailmapd.domains (name) VALUES ('example.org')`);
}, 120_000);

afterAll(async () => {
  await sql?.end();
  await plain?.drop();
  standby?.destroy();
  cluster?.destroy();
});

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Inserts `address` in a transaction that stays open across several polls of a 300 ms poll. */
async function longTransaction(c: pg.Client, address: string, prepared: boolean): Promise<void> {
  if (prepared) {
    await c.query('BEGIN');
    await c.query('INSERT INTO mailmapd.mailboxes (address) VALUES ($1)', [address]);
    await c.query(`PREPARE TRANSACTION 'mm_${address.replace(/\W/g, '_')}'`);
    await pause(1500);
    await c.query(`COMMIT PREPARED 'mm_${address.replace(/\W/g, '_')}'`);
  } else {
    await c.query(`BEGIN; INSERT INTO mailmapd.mailboxes (address) VALUES ('${address}'); SELECT pg_sleep(1.5); COMMIT`);
  }
}

async function arrives(s: { sync: Sync; directory: Directory }, c: pg.Client, address: string, prepared: boolean): Promise<void> {
  try {
    await s.sync.firstLoad();
    await longTransaction(c, address, prepared);
    // Nothing else is written meanwhile: only the poll can bring it (a bound far above the 300 ms poll).
    await waitFor(() => s.directory.mailbox(address) !== undefined, 10_000, `${address}, committed after polls`);
  } finally {
    await s.sync.stop();
  }
}

describe('a commit that comes polls after its change-log row', () => {
  it('on a polled primary: PREPARE TRANSACTION, polls, COMMIT PREPARED', async () => {
    await arrives(startTestSync({ databaseUrl: url, pollIntervalMs: 300 }), sql, 'prepared@example.org', true);
  });

  it('on a polled primary: BEGIN, pg_sleep across polls, COMMIT', async () => {
    await arrives(startTestSync({ databaseUrl: url, pollIntervalMs: 300 }), sql, 'slow@example.org', false);
  });

  it('on its hot standby, both ways', async () => {
    const onStandby = urlFor('mail', standby.url);
    await arrives(startTestSync({ databaseUrl: onStandby, pollIntervalMs: 300 }), sql, 'standby-prepared@example.org', true);
    await arrives(startTestSync({ databaseUrl: onStandby, pollIntervalMs: 300 }), sql, 'standby-slow@example.org', false);
  });

  it('with the doorbell (no 2PC): BEGIN, pg_sleep, COMMIT', async () => {
    await arrives(startTestSync({ databaseUrl: plain.url, pollIntervalMs: 300 }), plain.sql, 'rung@example.org', false);
  });
});
