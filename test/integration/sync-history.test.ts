// The position the sync keeps belongs to one history of one database. A cold copy of the
// data directory restored in place of the original (same system identifier, timeline,
// host and port) has another history after the copy was taken: the daemon must notice
// and reload in full, not catch up from a position the copy never had. A position saved
// by an earlier run and handed back (resume) is caught up from when it does belong.

import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate } from '../../src/db/schema.js';
import { createDirectory, type Directory } from '../../src/directory/directory.js';
import type { Sync } from '../../src/sync/sync.js';
import { createCluster, type Cluster } from '../helpers/cluster.js';
import { startTestSync } from '../helpers/sync.js';

let original: Cluster;
const others: Cluster[] = [];

async function client(c: Cluster): Promise<pg.Client> {
  const k = new pg.Client({ connectionString: c.url });
  k.on('error', () => {});
  await k.connect();
  return k;
}

function startSync(url: string, directory: Directory, saved: { position?: unknown }, resume?: unknown): Sync {
  const { sync } = startTestSync({
    databaseUrl: url,
    directory,
    onApplied: (p) => {
      saved.position = JSON.parse(JSON.stringify(p));
    },
    ...(resume !== undefined ? { resume: { position: resume } } : {}),
  });
  return sync;
}

/** Every mailbox as address → password, from the database or the directory. */
async function dbMailboxes(c: Cluster): Promise<Map<string, string | null>> {
  const k = await client(c);
  try {
    const r = await k.query<{ address: string; password: string | null }>('SELECT address, password FROM mailmapd.mailboxes');
    return new Map(r.rows.map((x) => [x.address, x.password]));
  } finally {
    await k.end();
  }
}

function dirMailboxes(d: Directory): Map<string, string | null> {
  const out = new Map<string, string | null>();
  for (const a of d.users()) {
    const u = d.user(a);
    if (u.status === 'ok') out.set(a, u.password);
  }
  return out;
}

beforeAll(async () => {
  original = await createCluster();
  const k = await client(original);
  await migrate(k);
  await k.query(`INSERT INTO mailmapd.domains (name) VALUES ('example.org');
    INSERT INTO mailmapd.mailboxes (address, password) SELECT 'm' || i || '@example.org', '{PLAIN}v0' FROM generate_series(1, 100) i`);
  await k.end();
}, 60_000);

afterAll(() => {
  for (const c of others) c.destroy();
  original?.destroy();
});

describe('another history', () => {
  // The copy made fewer transactions than the original after the copy point (its
  // transaction counter is behind the position), or more (only the change rows differ).
  for (const copyChanges of [200, 400]) {
    it(`a cold copy restored in place, ${copyChanges} changes made on it: reloaded in full, nothing lost`, async () => {
      const directory = createDirectory({ recipientDelimiter: '+' });
      const saved: { position?: unknown } = {};
      original.stop();
      const copy = await createCluster({ copyOf: original, port: original.port, stopped: true });
      others.push(copy);
      original.start();
      let sync = startSync(original.url, directory, saved);
      await sync.firstLoad();
      const k = await client(original);
      for (let i = 1; i <= 300; i++) {
        await k.query(`UPDATE mailmapd.mailboxes SET password = $1 WHERE address = $2`, [`{PLAIN}orig${i}`, `m${(i % 100) + 1}@example.org`]);
        if (i % 100 === 0) await k.query(`INSERT INTO mailmapd.mailboxes (address) VALUES ($1)`, [`orig${i}-${copyChanges}@example.org`]);
      }
      await k.end();
      await sync.kick();
      expect(directory.mailbox(`orig300-${copyChanges}@example.org`)).toBeDefined();
      await sync.stop();

      // The original is replaced by the copy on the same host and port.
      original.stop();
      copy.start();
      const w = await client(copy);
      for (let i = 1; i <= copyChanges; i++) {
        await w.query(`UPDATE mailmapd.mailboxes SET password = $1 WHERE address = $2`, [`{PLAIN}copy${i}`, `m${(i % 100) + 1}@example.org`]);
      }
      await w.end();

      sync = startSync(copy.url, directory, saved, saved.position);
      await sync.firstLoad();
      await sync.kick();
      expect(sync.status().fullLoads).toBe(1);
      expect(dirMailboxes(directory)).toEqual(await dbMailboxes(copy));
      await sync.stop();
      copy.stop();
      original.start();
    }, 60_000);
  }

  it('a saved position of this history is caught up from, not reloaded', async () => {
    const directory = createDirectory({ recipientDelimiter: '+' });
    const saved: { position?: unknown } = {};
    let sync = startSync(original.url, directory, saved);
    await sync.firstLoad();
    await sync.stop();
    const k = await client(original);
    await k.query(`UPDATE mailmapd.mailboxes SET password = '{PLAIN}while-stopped' WHERE address = 'm1@example.org'`);
    await k.query(`INSERT INTO mailmapd.mailboxes (address) VALUES ('new-while-stopped@example.org')`);
    await k.end();
    sync = startSync(original.url, directory, saved, saved.position);
    await sync.firstLoad();
    expect(sync.status().fullLoads).toBe(0);
    expect(directory.user('m1@example.org')).toMatchObject({ password: '{PLAIN}while-stopped' });
    expect(directory.mailbox('new-while-stopped@example.org')).toBeDefined();
    expect(dirMailboxes(directory)).toEqual(await dbMailboxes(original));
    await sync.stop();
  });

  it('a saved position that is no position is refused: a full load', async () => {
    const directory = createDirectory({ recipientDelimiter: '+' });
    const sync = startSync(original.url, directory, {}, { v: 1, xmin: 'garbage' });
    await sync.firstLoad();
    expect(sync.status().fullLoads).toBe(1);
    await sync.stop();
  });
});
