// Many hosts: commit on the primary → visible in a daemon's directory, p50/p99, for a
// daemon on the primary (NOTIFY), a daemon on a hot standby with database_primary_url
// (the primary's doorbell, then waiting for replay), and one polling the standby alone —
// beside the standby's own replay lag, measured by reading the row there. Then what the
// poll costs while nothing changes. A private primary and standby are made for the run
// (initdb, pg_basebackup -R) on free ports, and removed afterwards.
// Runnable alone: node bench/replicas.mjs [changes]

import { execFileSync, spawnSync } from 'node:child_process';
import { chownSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';

const pollMs = 200;

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function binDir() {
  const versions = readdirSync('/usr/lib/postgresql').sort((a, b) => Number(b) - Number(a));
  return `/usr/lib/postgresql/${versions[0]}/bin`;
}

async function cluster(dir, standbyOf) {
  const data = join(dir, standbyOf ? 'standby' : 'primary');
  const port = await freePort();
  const asRoot = process.getuid?.() === 0;
  const run = (cmd, args) => {
    const full = asRoot ? ['runuser', ['-u', 'postgres', '--', join(binDir(), cmd), ...args]] : [join(binDir(), cmd), args];
    const r = spawnSync(full[0], full[1], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`${cmd} failed: ${r.stderr || r.stdout}`);
  };
  if (standbyOf) run('pg_basebackup', ['-D', data, '-R', '-X', 'stream', '-c', 'fast', '-h', '127.0.0.1', '-p', String(standbyOf.port), '-U', 'postgres']);
  else run('initdb', ['-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8', '--locale=C']);
  run('pg_ctl', ['-D', data, '-w', '-l', join(dir, `${port}.log`), '-o', `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1`, 'start']);
  return { port, url: `postgres://postgres@127.0.0.1:${port}/postgres`, stop: () => run('pg_ctl', ['-D', data, '-w', '-m', 'immediate', 'stop']) };
}

function pct(xs, p) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

export async function run(log = console.log, changes = 200) {
  const dir = mkdtempSync(join(tmpdir(), 'mailmapd-bench-replicas-'));
  if (process.getuid?.() === 0)
    chownSync(dir, Number(execFileSync('id', ['-u', 'postgres']).toString()), Number(execFileSync('id', ['-g', 'postgres']).toString()));
  const stops = [];
  try {
    const primary = await cluster(dir);
    stops.push(primary.stop);
    const { migrate } = await import('../dist/db/schema.js');
    const w = new pg.Client({ connectionString: primary.url });
    await w.connect();
    await migrate(w);
    await w.query(`INSERT INTO mailmapd.domains (name) VALUES ('d.test');
      INSERT INTO mailmapd.mailboxes (address) SELECT 'user' || i || '@d.test' FROM generate_series(1, 10000) i`);
    const standby = await cluster(dir, primary);
    stops.unshift(standby.stop);

    const { createDirectory } = await import('../dist/directory/directory.js');
    const { createSync } = await import('../dist/sync/sync.js');
    const { nativeProfile } = await import('../dist/sync/profile.js');
    const { createMetrics } = await import('../dist/metrics.js');
    const { silentLogger } = await import('../dist/log.js');
    const daemon = (databaseUrl, databasePrimaryUrl) => {
      const directory = createDirectory({ recipientDelimiter: '+' });
      const sync = createSync({
        databaseUrl,
        databasePrimaryUrl,
        profile: nativeProfile,
        directory,
        logger: silentLogger,
        metrics: createMetrics(false),
        pollIntervalMs: pollMs,
        retentionMs: 86_400_000,
        reconnectMaxDelayMs: 1000,
      });
      sync.start();
      return { name: '', sync, directory, waiting: undefined, times: [] };
    };
    const ds = [
      Object.assign(daemon(primary.url), { name: 'on the primary (NOTIFY)' }),
      Object.assign(daemon(standby.url, primary.url), { name: 'on the standby, database_primary_url (doorbell)' }),
      Object.assign(daemon(standby.url), { name: `on the standby, polling every ${pollMs} ms` }),
    ];
    for (const d of ds) await d.sync.firstLoad();
    await new Promise((r) => setTimeout(r, 500)); // the doorbell daemon's primary connection
    for (const d of ds) {
      d.directory.onChange((_kind, key) => {
        if (d.waiting && key === d.waiting.key) d.waiting.resolve(performance.now());
      });
    }
    const replica = new pg.Client({ connectionString: standby.url });
    await replica.connect();
    const replay = [];
    for (let i = 0; i < changes; i++) {
      const key = `user${i + 1}@d.test`;
      const seen = ds.map((d) => new Promise((resolve) => (d.waiting = { key, resolve })));
      const start = performance.now();
      await w.query(`UPDATE mailmapd.mailboxes SET quota_bytes = quota_bytes + 1 WHERE address = $1`, [key]);
      const committed = performance.now();
      for (;;) {
        const r = await replica.query('SELECT quota_bytes FROM mailmapd.mailboxes WHERE address = $1', [key]);
        if (Number(r.rows[0].quota_bytes) > 0) break;
        await new Promise((res) => setTimeout(res, 0.5));
      }
      replay.push(performance.now() - committed);
      const at = await Promise.all(seen);
      ds.forEach((d, j) => {
        d.times.push(at[j] - start);
      });
      await new Promise((r) => setTimeout(r, Math.random() * pollMs)); // commits at no fixed phase of the poll
    }
    await replica.end();
    log(`replicas: ${changes} single-row commits on the primary, commit → in the daemon's directory (ms):`);
    log(`  standby's own replay (row readable there): p50 ${pct(replay, 50).toFixed(1)}  p99 ${pct(replay, 99).toFixed(1)}`);
    for (const d of ds) log(`  ${d.name}: p50 ${pct(d.times, 50).toFixed(1)}  p99 ${pct(d.times, 99).toFixed(1)}  max ${Math.max(...d.times).toFixed(1)}`);

    // The polling daemon alone, idle: its CPU share.
    await ds[0].sync.stop();
    await ds[1].sync.stop();
    const idleMs = 10_000;
    const cpu0 = process.cpuUsage();
    await new Promise((r) => setTimeout(r, idleMs));
    const cpu = process.cpuUsage(cpu0);
    log(`  polling cost while nothing changes (poll every ${pollMs} ms): ${(((cpu.user + cpu.system) / 1000 / idleMs) * 100).toFixed(2)}% of a core`);
    await ds[2].sync.stop();
    await w.end();
  } finally {
    for (const s of stops) {
      try {
        s();
      } catch {
        /* already stopped */
      }
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await run(console.log, Number(process.argv[2] ?? 200));
