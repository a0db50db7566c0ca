// Writers that use two-phase commit. PREPARE TRANSACTION refuses a transaction that has
// sent a NOTIFY, so the change triggers must not ring the doorbell on a server where 2PC
// is possible (max_prepared_transactions > 0): a panel using PREPARE TRANSACTION /
// COMMIT PREPARED can write the native tables and its own, and the change still reaches
// a running daemon (its poll of the change log finds it).

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { triggersCommand } from '../../src/cli/triggers.js';
import { parseConfigText } from '../../src/config.js';
import { createCluster, type Cluster } from '../helpers/cluster.js';
import { startDaemon, type Daemon } from '../helpers/daemon.js';
import { createTestDatabase, waitFor, type TestDatabase } from '../helpers/db.js';
import { socketmapClient } from '../helpers/socketmap-client.js';

let cluster: Cluster;

beforeAll(async () => {
  cluster = await createCluster({ settings: ['max_prepared_transactions=4'] });
}, 60_000);

afterAll(() => {
  cluster?.destroy();
});

async function prepared(db: TestDatabase, gid: string, sql: string): Promise<void> {
  await db.sql.query('BEGIN');
  await db.sql.query(sql);
  await db.sql.query(`PREPARE TRANSACTION '${gid}'`);
  await db.sql.query(`COMMIT PREPARED '${gid}'`);
}

async function seen(d: Daemon, map: string, key: string, want: string): Promise<void> {
  const c = await socketmapClient({ port: d.ports.socketmap });
  try {
    await waitFor(async () => (await c.query(map, key)) === want, 5000, `${map} ${key} → ${want}`);
  } finally {
    c.close();
  }
}

describe('PREPARE TRANSACTION / COMMIT PREPARED', () => {
  let native: TestDatabase;
  let panel: TestDatabase;
  const daemons: Daemon[] = [];

  beforeAll(async () => {
    native = await createTestDatabase({ base: cluster.url });
    panel = await createTestDatabase({ base: cluster.url, migrate: false });
    await panel.sql.query(`
      CREATE TABLE domain (domain varchar(255) PRIMARY KEY, transport varchar(255), backupmx boolean NOT NULL DEFAULT false, active boolean NOT NULL DEFAULT true);
      CREATE TABLE alias_domain (alias_domain varchar(255) PRIMARY KEY, target_domain varchar(255) NOT NULL, active boolean NOT NULL DEFAULT true);
      CREATE TABLE mailbox (username varchar(255) PRIMARY KEY, password varchar(255) NOT NULL, quota bigint NOT NULL DEFAULT 0, active boolean NOT NULL DEFAULT true);
      CREATE TABLE alias (address varchar(255) PRIMARY KEY, goto text NOT NULL, active boolean NOT NULL DEFAULT true);`);
    const config = parseConfigText(`database_url = ${panel.url}\nschema = postfixadmin\n`, 'test.conf');
    expect(await triggersCommand(config, ['install'], () => {})).toBe(0);
    daemons.push(await startDaemon({ databaseUrl: native.url, config: { sync_poll_interval: '1s' } }));
    daemons.push(await startDaemon({ databaseUrl: panel.url, config: { schema: 'postfixadmin', sync_poll_interval: '1s' } }));
  }, 60_000);

  afterAll(async () => {
    for (const d of daemons) await d.stop();
    await native?.drop();
    await panel?.drop();
  });

  it('works on the native tables, and the daemon sees the change', async () => {
    await prepared(
      native,
      'mm_native',
      `INSERT INTO mailmapd.domains (name) VALUES ('two.example');
      INSERT INTO mailmapd.mailboxes (address) VALUES ('ann@two.example')`,
    );
    await seen(daemons[0]!, 'mailboxes', 'ann@two.example', 'OK two.example/ann/');
    await prepared(native, 'mm_native2', `DELETE FROM mailmapd.mailboxes WHERE address = 'ann@two.example'`);
    await seen(daemons[0]!, 'mailboxes', 'ann@two.example', 'NOTFOUND ');
  });

  it("works on a panel's tables, and the daemon sees the change", async () => {
    await prepared(
      panel,
      'mm_panel',
      `INSERT INTO domain (domain) VALUES ('panel.example');
      INSERT INTO mailbox (username, password) VALUES ('bea@panel.example', 'x')`,
    );
    await seen(daemons[1]!, 'mailboxes', 'bea@panel.example', 'OK panel.example/bea/');
  });
});
