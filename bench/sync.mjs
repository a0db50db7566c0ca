// Directory benchmarks: cold-load time and RSS for 100k and 1M mailboxes (plus as many
// aliases), commit-to-visible latency of single-row changes through LISTEN/NOTIFY, and how
// long the event loop stalls while many passwords change.
// Each size loads in a child process of its own so that RSS is that load's alone.
// Runnable alone: node bench/sync.mjs [sizes…]   (PostgreSQL at MAILMAPD_BENCH_PG or 127.0.0.1:5432)

import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { dbUrl, serverUrl, withClient } from './lib.mjs';

async function prepare(name, size) {
  await withClient(serverUrl, async (c) => {
    await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await c.query(`CREATE DATABASE ${name}`);
  });
  const { migrate } = await import('../dist/db/schema.js');
  await withClient(dbUrl(name), async (c) => {
    await migrate(c);
    // Bulk setup without the change triggers: this is data that exists before the daemon starts.
    await c.query(`SET session_replication_role = replica`);
    await c.query(`INSERT INTO mailmapd.domains (name) SELECT 'd' || i || '.test' FROM generate_series(1, 1000) i`);
    await c.query(
      `INSERT INTO mailmapd.mailboxes (address, password, quota_bytes)
       SELECT 'user' || i || '@d' || (i % 1000 + 1) || '.test',
              '{SHA512-CRYPT}$6$abcdefghijklmnop$' || md5(i::text) || md5((i * 7)::text) || md5((i * 13)::text), 1073741824
         FROM generate_series(1, $1) i`,
      [size],
    );
    await c.query(
      `INSERT INTO mailmapd.aliases (address, destination)
       SELECT 'alias' || i || '@d' || (i % 1000 + 1) || '.test', 'user' || i || '@d' || (i % 1000 + 1) || '.test'
         FROM generate_series(1, $1) i`,
      [size],
    );
    await c.query('ANALYZE');
  });
}

// Child: load the directory once, report seconds and RSS, then measure change latency.
async function child(url, changes) {
  const { createDirectory } = await import('../dist/directory/directory.js');
  const { createSync } = await import('../dist/sync/sync.js');
  const { nativeProfile } = await import('../dist/sync/profile.js');
  const { createMetrics } = await import('../dist/metrics.js');
  const { silentLogger } = await import('../dist/log.js');
  const directory = createDirectory({ recipientDelimiter: '+' });
  const sync = createSync({
    databaseUrl: url,
    profile: nativeProfile,
    directory,
    logger: silentLogger,
    metrics: createMetrics(false),
    pollIntervalMs: 1000,
    retentionMs: 86_400_000,
    reconnectMaxDelayMs: 1000,
  });
  const t0 = performance.now();
  sync.start();
  await sync.firstLoad();
  const loadSeconds = (performance.now() - t0) / 1000;
  globalThis.gc?.();
  await new Promise((r) => setTimeout(r, 200));
  const mem = process.memoryUsage();
  const rssMb = mem.rss / 2 ** 20;
  const heapMb = mem.heapUsed / 2 ** 20;
  const offHeapMb = mem.arrayBuffers / 2 ** 20; // the mailbox and alias tables' chunks
  const counts = directory.counts();

  const latencies = [];
  if (changes > 0) {
    const writer = new pg.Client({ connectionString: url });
    await writer.connect();
    let waiting;
    directory.onChange((_kind, key) => {
      if (waiting && key === waiting.key) waiting.resolve(performance.now());
    });
    for (let i = 0; i < changes; i++) {
      const key = `user${i + 1}@d${((i + 1) % 1000) + 1}.test`;
      const seen = new Promise((resolve) => (waiting = { key, resolve }));
      const start = performance.now();
      await writer.query(`UPDATE mailmapd.mailboxes SET quota_bytes = quota_bytes + 1 WHERE address = $1`, [key]);
      latencies.push((await seen) - start);
    }
    await writer.end();
  }
  await sync.stop();

  // Lookups wait while the main thread is busy: how long it stalls while every password is
  // rewritten (a scheme migration: new full-length hashes), 1000 changes per event-loop
  // turn, as NOTIFY batches arrive, with a lookup after each.
  const { monitorEventLoopDelay } = await import('node:perf_hooks');
  const addresses = [...directory.users()];
  const stall = monitorEventLoopDelay({ resolution: 1 });
  stall.enable();
  const churnStart = performance.now();
  for (let i = 0; i < addresses.length; i += 1000) {
    for (const a of addresses.slice(i, i + 1000)) {
      const u = directory.user(a);
      directory.setMailbox(a, { password: `{SHA512-CRYPT}$6$zyxwvutsrqponmlk$${String(i).padStart(86, 'q')}`, quotaBytes: u.quotaBytes ?? 0, active: true });
      directory.lookup('mailboxes', a);
    }
    await new Promise((r) => setImmediate(r));
  }
  stall.disable();
  const churn = { n: addresses.length, seconds: (performance.now() - churnStart) / 1000, p99: stall.percentile(99) / 1e6, max: stall.max / 1e6 };

  latencies.sort((a, b) => a - b);
  const pct = (p) => (latencies.length ? latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))] : NaN);
  process.send({ loadSeconds, rssMb, heapMb, offHeapMb, churn, counts, p50: pct(50), p99: pct(99), max: latencies.at(-1) ?? NaN, changes });
}

function runChild(url, changes) {
  return new Promise((resolve, reject) => {
    const p = fork(fileURLToPath(import.meta.url), ['--child', url, String(changes)], { execArgv: ['--expose-gc'] });
    p.once('message', resolve);
    p.once('error', reject);
    p.once('exit', (code) => code !== 0 && reject(new Error(`bench child exited ${code}`)));
  });
}

export async function run(log = console.log, sizes = [100_000, 1_000_000]) {
  const results = [];
  for (const size of sizes) {
    const name = `mailmapd_bench_sync_${size}`;
    const t = performance.now();
    await prepare(name, size);
    log(`sync: prepared ${size} mailboxes + ${size} aliases in ${((performance.now() - t) / 1000).toFixed(1)} s`);
    const r = await runChild(dbUrl(name), size === sizes[0] ? 500 : 200);
    results.push({ size, ...r });
    log(
      `sync: ${size.toLocaleString('en')} mailboxes + ${size.toLocaleString('en')} aliases: cold load ${r.loadSeconds.toFixed(2)} s, ` +
        `RSS ${r.rssMb.toFixed(0)} MB (JS heap ${r.heapMb.toFixed(0)} MB, tables ${r.offHeapMb.toFixed(0)} MB off-heap); ` +
        `commit-to-visible over ${r.changes} single-row updates: p50 ${r.p50.toFixed(2)} ms, p99 ${r.p99.toFixed(2)} ms, max ${r.max.toFixed(2)} ms`,
    );
    log(
      `sync: ${size.toLocaleString('en')}: ${r.churn.n.toLocaleString('en')} password changes in memory, 1000 per event-loop turn: ` +
        `${r.churn.seconds.toFixed(2)} s; event-loop stall p99 ${r.churn.p99.toFixed(1)} ms, max ${r.churn.max.toFixed(1)} ms`,
    );
    await withClient(serverUrl, (c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
  }
  return results;
}

if (process.argv[2] === '--child') {
  child(process.argv[3], Number(process.argv[4])).catch((err) => {
    console.error(err);
    process.exit(1);
  });
} else if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const sizes = process.argv
    .slice(2)
    .map(Number)
    .filter((n) => n > 0);
  await run(console.log, sizes.length ? sizes : undefined);
}
