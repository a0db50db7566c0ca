// A restart while PostgreSQL is down (a private cluster): the daemon serves its snapshot at
// once — the real postmap gets OK, logins work, /readyz says 503 "serving a snapshot" — and
// once the database is back it catches up on what changed while it was down, without a
// full reload. A truncated snapshot, one configured for another database, and one whose
// database was dropped and recreated under the same name are not trusted.

import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate } from '../../src/db/schema.js';
import { FORMAT_VERSION } from '../../src/snapshot/format.js';
import { readSnapshot } from '../../src/snapshot/read.js';
import { createCluster, type Cluster } from '../helpers/cluster.js';
import { urlFor, waitFor } from '../helpers/db.js';
import { startDaemon, type Daemon } from '../helpers/daemon.js';
import { smtpAuth } from '../helpers/logins.js';

function postmap(port: number, map: string, key: string): { code: number | null; out: string; err: string } {
  const r = spawnSync('/usr/sbin/postmap', ['-q', key, `socketmap:inet:127.0.0.1:${port}:${map}`], { encoding: 'utf8' });
  if (r.error) throw r.error; // postmap missing is a failure, not a skip
  return { code: r.status, out: r.stdout.trim(), err: r.stderr };
}

async function readyz(d: Daemon): Promise<{ status: number; body: Record<string, unknown> }> {
  const r = await d.http('/readyz');
  return { status: r.status, body: (await r.json()) as Record<string, unknown> };
}

describe('restart without the database', () => {
  let cluster: Cluster;
  let url: string;
  let daemon: Daemon | undefined;
  const dir = mkdtempSync(join(tmpdir(), 'mailmapd-snapshot-'));
  const snapshotFile = join(dir, 'directory.snapshot');
  const sql = async (text: string, target = url) => {
    const c = new pg.Client({ connectionString: target });
    await c.connect();
    try {
      await c.query(text);
    } finally {
      await c.end();
    }
  };
  const start = (opts: { config?: Record<string, string>; waitReady?: boolean } = {}) =>
    startDaemon({ databaseUrl: url, waitReady: opts.waitReady, config: { snapshot_file: snapshotFile, ...opts.config } });

  beforeAll(async () => {
    cluster = await createCluster();
    await sql('CREATE DATABASE mail', cluster.url);
    url = urlFor('mail', cluster.url);
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    await migrate(c);
    await c.end();
    await sql(`
      INSERT INTO mailmapd.domains (name) VALUES ('example.org');
      INSERT INTO mailmapd.mailboxes (address, password) VALUES ('alice@example.org', '{PLAIN}alice-old'), ('carol@example.org', '{PLAIN}carol-pw');
      INSERT INTO mailmapd.mailboxes (address) SELECT 'bulk' || i || '@example.org' FROM generate_series(1, 2000) i;
      INSERT INTO mailmapd.aliases (address, destination) VALUES ('info@example.org', 'alice@example.org');`);
  });
  afterAll(async () => {
    await daemon?.stop('SIGKILL');
    cluster?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves the snapshot while PostgreSQL is down, then catches up on what changed meanwhile', async () => {
    // A first run writes the snapshot (at the latest when it stops).
    daemon = await start();
    expect(postmap(daemon.ports.socketmap, 'mailboxes', 'alice@example.org').out).toBe('example.org/alice/');
    expect(await daemon.stop()).toBe(0);
    daemon = undefined;
    expect(statSync(snapshotFile).mode & 0o777).toBe(0o600);
    expect(readFileSync(snapshotFile).includes('alice-old')).toBe(true);

    // While no daemon runs: changes, then the database goes down too.
    await sql(`
      UPDATE mailmapd.mailboxes SET password = '{PLAIN}alice-new' WHERE address = 'alice@example.org';
      INSERT INTO mailmapd.mailboxes (address, password) VALUES ('bob@example.org', '{PLAIN}bob-pw');
      DELETE FROM mailmapd.mailboxes WHERE address = 'carol@example.org';
      DELETE FROM mailmapd.aliases WHERE address = 'info@example.org';`);
    cluster.stop();

    daemon = await start({ waitReady: false });
    // The first request after the listener is up is answered from the snapshot: an answer,
    // not TEMP, while the database is still down (its readiness below says so too); no
    // wall-clock bound, the order is what counts.
    expect(postmap(daemon.ports.socketmap, 'mailboxes', 'alice@example.org')).toMatchObject({ code: 0, out: 'example.org/alice/' });
    expect(postmap(daemon.ports.socketmap, 'aliases', 'info@example.org').out).toBe('alice@example.org');
    expect(postmap(daemon.ports.socketmap, 'mailboxes', 'bob@example.org').code).toBe(1);
    expect(await smtpAuth(daemon.ports.auth, 'alice@example.org', 'alice-old')).toBe('OK');
    expect(await smtpAuth(daemon.ports.auth, 'carol@example.org', 'carol-pw')).toBe('OK');
    expect(await smtpAuth(daemon.ports.auth, 'alice@example.org', 'wrong')).toBe('FAIL');
    const r = await readyz(daemon);
    expect(r.status).toBe(503);
    expect(r.body.reason).toBe('serving a snapshot');
    expect(typeof r.body.snapshot_age_seconds).toBe('number');
    expect(daemon.logs()).toMatch(/serving the snapshot/);

    // The database comes back: every change made while the daemon was down arrives.
    cluster.start();
    const d = daemon;
    await waitFor(async () => (await readyz(d)).status === 200, 15000, 'ready after the database is back');
    expect(postmap(d.ports.socketmap, 'mailboxes', 'bob@example.org').out).toBe('example.org/bob/');
    expect(postmap(d.ports.socketmap, 'mailboxes', 'carol@example.org').code).toBe(1);
    expect(postmap(d.ports.socketmap, 'aliases', 'info@example.org').code).toBe(1);
    expect(await smtpAuth(d.ports.auth, 'alice@example.org', 'alice-old')).toBe('FAIL');
    expect(await smtpAuth(d.ports.auth, 'alice@example.org', 'alice-new')).toBe('OK');
    expect(await smtpAuth(d.ports.auth, 'bob@example.org', 'bob-pw')).toBe('OK');
    expect(postmap(d.ports.socketmap, 'mailboxes', 'bulk2000@example.org').out).toBe('example.org/bulk2000/');
    // Caught up from the snapshot's position, not reloaded in full.
    expect(d.logs()).not.toMatch(/directory loaded/);
    expect(d.logs()).not.toMatch(/alice-old|alice-new|bob-pw|carol-pw/);
    expect(await d.stop()).toBe(0);
    daemon = undefined;
  });

  it('a daemon killed without warning has already written its snapshot in the background', async () => {
    const file = join(dir, 'killed.snapshot');
    const d = await start({ config: { snapshot_file: file } });
    try {
      await waitFor(() => existsSync(file), 20000, 'snapshot written after the first load');
    } finally {
      await d.stop('SIGKILL');
    }
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readdirSync(dir).filter((f) => f.includes('.tmp-'))).toEqual([]);
    // What it holds, as the daemon reads it back (addresses are stored packed: format.ts).
    const back = readSnapshot(file, () => undefined);
    expect(back.status === 'ok' && back.data.mailboxes.has('bulk2000@example.org')).toBe(true);
  });

  it('a truncated snapshot, or one configured for another database, is refused with a log line', async () => {
    cluster.stop();
    try {
      const kept = join(dir, 'kept.snapshot');
      copyFileSync(snapshotFile, kept);
      truncateSync(snapshotFile, statSync(snapshotFile).size - 1000);
      daemon = await start({ waitReady: false });
      await waitFor(() => /snapshot refused/.test(daemon!.logs()), 5000, 'refusal logged');
      expect(daemon.logs()).toMatch(/snapshot refused.*truncated/);
      expect(postmap(daemon.ports.socketmap, 'mailboxes', 'alice@example.org').code).not.toBe(0);
      expect((await readyz(daemon)).body.reason).not.toBe('serving a snapshot');
      await daemon.stop();

      copyFileSync(kept, snapshotFile);
      const other = new URL(url);
      other.pathname = '/othermail';
      daemon = await startDaemon({ databaseUrl: other.toString(), waitReady: false, config: { snapshot_file: snapshotFile } });
      await waitFor(() => /snapshot refused/.test(daemon!.logs()), 5000, 'refusal logged');
      expect(daemon.logs()).toMatch(/snapshot refused.*from another database/);
      expect(postmap(daemon.ports.socketmap, 'mailboxes', 'alice@example.org').code).not.toBe(0);
      await daemon.stop();
      daemon = undefined;
    } finally {
      cluster.start();
    }
  });

  it('a snapshot of an older format is refused with a log line, then written anew in the current one', async () => {
    const file = join(dir, 'old-format.snapshot');
    const old = readFileSync(snapshotFile);
    old.writeUInt32LE(1, 8); // the format version in the prefix (format.ts)
    writeFileSync(file, old);
    const d = await start({ config: { snapshot_file: file } });
    try {
      expect(d.logs()).toMatch(new RegExp(`snapshot refused.*format version 1, this mailmapd reads ${FORMAT_VERSION}`));
      // Loaded from the database instead; the next background write replaces the old file.
      expect(postmap(d.ports.socketmap, 'mailboxes', 'alice@example.org').code).toBe(0);
      await waitFor(() => readFileSync(file).readUInt32LE(8) === FORMAT_VERSION, 20000, 'snapshot rewritten in the current format');
    } finally {
      await d.stop();
    }
  });

  it('a database dropped and recreated under the same name is reloaded in full, not caught up', async () => {
    expect(statSync(snapshotFile).size).toBeGreaterThan(0);
    await sql(`DROP DATABASE mail WITH (FORCE)`, cluster.url);
    await sql(`CREATE DATABASE mail`, cluster.url);
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    await migrate(c);
    await c.end();
    await sql(`
      INSERT INTO mailmapd.domains (name) VALUES ('example.org');
      INSERT INTO mailmapd.mailboxes (address, password) VALUES ('dave@example.org', '{PLAIN}dave-pw');`);
    daemon = await start();
    expect(postmap(daemon.ports.socketmap, 'mailboxes', 'dave@example.org').out).toBe('example.org/dave/');
    // bob exists only in the old database: a catch-up on the new one's change log would keep him.
    expect(postmap(daemon.ports.socketmap, 'mailboxes', 'bob@example.org').code).toBe(1);
    expect(daemon.logs()).toMatch(/the snapshot is not from this database; reloading in full/);
    await daemon.stop();
    daemon = undefined;
  });
});
