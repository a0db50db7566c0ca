// Scale benchmark (issue 36): N mailboxes + N aliases over N/1000 domains, made in SQL in a
// private PostgreSQL cluster this benchmark creates, served by the real daemon
// (`node dist/cli.js serve`). Per size it measures: ready from PostgreSQL (spawn to /readyz
// 200), RSS and peak RSS (VmRSS / VmHWM), the snapshot's size and write time (the daemon's
// own metrics), lookup p50/p99 over one kept socketmap connection for existing and missing
// keys, commit-to-visible p50/p99 under a steady trickle of changes, and restart from the
// snapshot with PostgreSQL stopped (spawn to the first socketmap answer). Then one table,
// every size, with the ratios against the first size (100k by default).
// Runnable alone: node bench/scale.mjs [100k 1M 10M]   (needs `npm run build`; makes its own cluster)

import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, load, pct, privateCluster, sleep, withClient } from './lib.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const LOOKUPS = 20_000; // per kind (existing, missing), each bounded to 30 s as well
const CHANGES = 200; // the trickle: one change every 50 ms, each bounded to 5 s to show
const CHANGE_EVERY_MS = 50;
/** Daemons running now and temporary directories: removed if this process is told to stop. */
const daemons = new Set();
const temps = new Set();

function tempDir() {
  const dir = mkdtempSync(join(tmpdir(), 'mailmapd-bench-scale-'));
  temps.add(dir);
  return dir;
}

function removeDir(dir) {
  rmSync(dir, { recursive: true, force: true });
  temps.delete(dir);
}

/** "100k", "1M", "10M" or a plain number. */
export function parseSize(arg) {
  const m = /^(\d+(?:\.\d+)?)([kKmM]?)$/.exec(arg);
  if (!m) return undefined;
  const n = Number(m[1]) * ({ k: 1e3, m: 1e6 }[m[2].toLowerCase()] ?? 1);
  return Number.isInteger(n) && n >= 1000 ? n : undefined;
}

const label = (n) => (n >= 1e6 && n % 1e6 === 0 ? `${n / 1e6}M` : n >= 1e3 && n % 1e3 === 0 ? `${n / 1e3}k` : String(n));
const domainsFor = (n) => Math.max(1, Math.floor(n / 1000));
const mailbox = (i, d) => `user${i}@d${(i % d) + 1}.test`;
const alias = (i, d) => `alias${i}@d${(i % d) + 1}.test`;

/** The data, in SQL: chunks of 1M rows so that no one statement holds everything. */
async function prepare(clusterUrl, name, n, log) {
  await withClient(clusterUrl, (c) => c.query(`CREATE DATABASE ${name}`));
  const url = clusterUrl.replace(/\/postgres$/, `/${name}`);
  const { migrate } = await load('db/schema.js');
  const d = domainsFor(n);
  const t = performance.now();
  await withClient(url, async (c) => {
    await migrate(c);
    // Data that exists before the daemon starts: no change triggers while loading.
    await c.query('SET session_replication_role = replica');
    await c.query(`INSERT INTO mailmapd.domains (name) SELECT 'd' || i || '.test' FROM generate_series(1, ${d}) i`);
    for (let lo = 1; lo <= n; lo += 1_000_000) {
      const hi = Math.min(n, lo + 999_999);
      // SHA512-CRYPT-sized hashes, as bench/sync.mjs, so that the numbers compare.
      await c.query(
        `INSERT INTO mailmapd.mailboxes (address, password, quota_bytes)
         SELECT 'user' || i || '@d' || (i % ${d} + 1) || '.test',
                '{SHA512-CRYPT}$6$abcdefghijklmnop$' || md5(i::text) || md5((i * 7)::text) || md5((i * 13)::text), 1073741824
           FROM generate_series($1::int, $2::int) i`,
        [lo, hi],
      );
      await c.query(
        `INSERT INTO mailmapd.aliases (address, destination)
         SELECT 'alias' || i || '@d' || (i % ${d} + 1) || '.test', 'user' || i || '@d' || (i % ${d} + 1) || '.test'
           FROM generate_series($1::int, $2::int) i`,
        [lo, hi],
      );
    }
    await c.query('VACUUM ANALYZE');
  });
  log(`scale ${label(n)}: made ${n} mailboxes + ${n} aliases over ${d} domains in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  return url;
}

/** A socketmap client over one kept connection: one request at a time, as Postfix sends them. */
function socketmap(port) {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let buf = Buffer.alloc(0);
    let waiting;
    socket.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      const colon = buf.indexOf(':');
      if (colon < 0) return;
      const len = Number(buf.subarray(0, colon).toString());
      if (buf.length < colon + len + 2) return;
      const reply = buf.subarray(colon + 1, colon + 1 + len).toString();
      buf = buf.subarray(colon + len + 2);
      waiting?.resolve(reply);
    });
    socket.on('close', () => waiting?.reject(new Error('socketmap connection closed')));
    socket.once('error', reject);
    socket.once('connect', () => {
      socket.on('error', () => {});
      resolve({
        query(map, key) {
          const p = Buffer.from(`${map} ${key}`);
          return new Promise((res, rej) => {
            waiting = { resolve: res, reject: rej };
            socket.write(`${p.length}:${p},`);
          });
        },
        close: () => socket.destroy(),
      });
    });
  });
}

/** VmRSS and VmHWM of a process, in MiB. */
function memory(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rss: kb('VmRSS') / 1024, peak: kb('VmHWM') / 1024 };
}

async function httpGet(port, path) {
  try {
    const r = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(5000) });
    return { status: r.status, body: await r.text() };
  } catch {
    return { status: 0, body: '' };
  }
}

const metric = (text, name) => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);

/** The real daemon on loopback ports, with its stderr's tail kept for errors. */
async function startDaemon(dir, databaseUrl) {
  const ports = { socketmap: await freePort(), auth: await freePort(), checkpassword: await freePort(), http: await freePort() };
  const conf = join(dir, 'mailmapd.conf');
  writeFileSync(
    conf,
    [
      `database_url = ${databaseUrl}`,
      `snapshot_file = ${join(dir, 'directory.snapshot')}`,
      `socketmap_listen = inet:127.0.0.1:${ports.socketmap}`,
      `auth_listen = inet:127.0.0.1:${ports.auth}`,
      `checkpassword_listen = inet:127.0.0.1:${ports.checkpassword}`,
      `http_listen = 127.0.0.1:${ports.http}`,
      'log_level = warn',
      'reconnect_max_delay = 1s',
      '',
    ].join('\n'),
  );
  const started = performance.now();
  const child = spawn(process.execPath, [join(root, 'dist/cli.js'), 'serve', '-c', conf], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, MAILMAPD_CONFIG: '' },
  });
  let err = '';
  child.stderr.on('data', (d) => (err = (err + d).slice(-4000)));
  daemons.add(child);
  const exited = new Promise((r) => child.once('exit', r));
  child.once('exit', () => daemons.delete(child));
  return {
    ports,
    started,
    pid: child.pid,
    alive: () => child.exitCode === null && child.signalCode === null,
    stderr: () => err,
    /** SIGTERM (the daemon writes its snapshot on the way out), SIGKILL after `ms`. */
    async stop(ms = 60_000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), ms);
      await exited;
      clearTimeout(t);
    },
  };
}

async function until(what, limitMs, daemon, probe, everyMs) {
  const t0 = performance.now();
  for (;;) {
    if (!daemon.alive()) throw new Error(`daemon exited while waiting for ${what}: ${daemon.stderr()}`);
    if (performance.now() - t0 > limitMs) throw new Error(`${what}: not within ${limitMs / 1000} s`);
    const r = await probe();
    if (r !== undefined) return r;
    await sleep(everyMs);
  }
}

/** Latencies in ms over one kept connection: `count` lookups, or 30 s, whichever first. */
async function lookups(c, keys, count) {
  const out = [];
  const stop = performance.now() + 30_000;
  for (let i = 0; i < count && performance.now() < stop; i++) {
    const key = keys(i);
    const t = performance.now();
    await c.query('mailboxes', key);
    out.push(performance.now() - t);
  }
  return out;
}

/**
 * The trickle: one change every CHANGE_EVERY_MS, rotating through a new mailbox, a new
 * alias, an alias pointed elsewhere and a mailbox made inactive, each committed on its own
 * (autocommit), then the kept socketmap connection polled until its answer changes. Timed
 * from sending the statement; a change not visible within 5 s counts as lost.
 */
async function trickle(url, c, n) {
  const d = domainsFor(n);
  const latencies = [];
  const byKind = new Map();
  let lost = 0;
  await withClient(url, async (db) => {
    for (let k = 0; k < CHANGES; k++) {
      const next = performance.now() + CHANGE_EVERY_MS;
      const i = ((k * 7919) % n) + 1; // spread over the directory
      const change = [
        {
          kind: 'new mailbox',
          map: 'mailboxes',
          key: `new${k}@d${(k % d) + 1}.test`,
          sql: `INSERT INTO mailmapd.mailboxes (address, password) VALUES ($1, 'x')`,
        },
        {
          kind: 'new alias',
          map: 'aliases',
          key: `newalias${k}@d${(k % d) + 1}.test`,
          sql: `INSERT INTO mailmapd.aliases (address, destination) VALUES ($1, 'user1@d2.test')`,
        },
        { kind: 'alias moved', map: 'aliases', key: alias(i, d), sql: `UPDATE mailmapd.aliases SET destination = 'moved${k}@d1.test' WHERE address = $1` },
        { kind: 'mailbox inactive', map: 'mailboxes', key: mailbox(i, d), sql: 'UPDATE mailmapd.mailboxes SET active = false WHERE address = $1' },
      ][k % 4];
      const before = await c.query(change.map, change.key);
      const t = performance.now();
      await db.query(change.sql, [change.key]);
      let seen = false;
      while (!seen && performance.now() - t < 5000) seen = (await c.query(change.map, change.key)) !== before;
      if (seen) {
        const ms = performance.now() - t;
        latencies.push(ms);
        byKind.set(change.kind, [...(byKind.get(change.kind) ?? []), ms]);
      } else lost++;
      await sleep(Math.max(0, next - performance.now()));
    }
  });
  return { latencies, lost, byKind };
}

// Long because it is one size's run in the order the measurements need (ready, memory,
// snapshot, lookups, trickle, restart), with the daemon and the database stopped on any failure.
async function measure(cluster, n, log) {
  const name = `mailmapd_scale_${n}`;
  const url = await prepare(cluster.url, name, n, log);
  const dir = tempDir();
  const d = domainsFor(n);
  const r = { n };
  let daemon;
  const millions = Math.max(1, n / 1e6);
  try {
    daemon = await startDaemon(dir, url);
    const dm = daemon;
    await until(
      'ready from PostgreSQL',
      60_000 + 40_000 * millions,
      dm,
      async () => ((await httpGet(dm.ports.http, '/readyz')).status === 200 ? true : undefined),
      20,
    );
    r.ready = (performance.now() - dm.started) / 1000;
    r.readyMem = memory(dm.pid);
    log(`scale ${label(n)}: ready from PostgreSQL in ${r.ready.toFixed(2)} s, RSS ${r.readyMem.rss.toFixed(0)} MiB (peak ${r.readyMem.peak.toFixed(0)})`);

    // The first background write comes 5 s after the load (snapshot/keeper.ts) and takes at
    // most a tenth of a core: about ten times the full-speed write (12.6 s at 1M here).
    const written = await until(
      'the first snapshot write',
      60_000 + 60_000 * millions,
      dm,
      async () => {
        const m = (await httpGet(dm.ports.http, '/metrics')).body;
        return /^mailmapd_snapshot_writes_total\{result="written"\} [1-9]/m.test(m) ? m : undefined;
      },
      200,
    );
    r.writeSeconds = metric(written, 'mailmapd_snapshot_write_seconds');
    r.snapshotMiB = metric(written, 'mailmapd_snapshot_bytes') / 2 ** 20;

    const c = await socketmap(dm.ports.socketmap);
    try {
      const existing = await lookups(c, (i) => mailbox(((i * 7919) % n) + 1, d), LOOKUPS);
      const missing = await lookups(c, (i) => `nobody${i}@d${(i % d) + 1}.test`, LOOKUPS);
      r.hit = { n: existing.length, p50: pct(existing, 50), p99: pct(existing, 99) };
      r.miss = { n: missing.length, p50: pct(missing, 50), p99: pct(missing, 99) };
      const t = await trickle(url, c, n);
      r.visible = { n: t.latencies.length, lost: t.lost, p50: pct(t.latencies, 50), p99: pct(t.latencies, 99) };
      const kinds = [...t.byKind].map(([kind, xs]) => `${kind} ${pct(xs, 50).toFixed(1)}/${pct(xs, 99).toFixed(1)}`);
      log(`scale ${label(n)}: commit-to-visible p50/p99 by change (ms): ${kinds.join(', ')}`);
    } finally {
      c.close();
    }
    r.mem = memory(dm.pid);
    log(
      `scale ${label(n)}: lookups hit p50/p99 ${r.hit.p50.toFixed(3)}/${r.hit.p99.toFixed(3)} ms, miss ${r.miss.p50.toFixed(3)}/${r.miss.p99.toFixed(3)} ms; ` +
        `commit-to-visible p50/p99 ${r.visible.p50.toFixed(1)}/${r.visible.p99.toFixed(1)} ms (${r.visible.n} changes, ${r.visible.lost} not seen in 5 s)`,
    );

    // Restart from the snapshot: the daemon writes it on the way out, then PostgreSQL stops.
    const stopping = performance.now();
    await dm.stop(120_000 + 30_000 * millions);
    r.stop = (performance.now() - stopping) / 1000;
    r.fileMiB = statSync(join(dir, 'directory.snapshot')).size / 2 ** 20;
    cluster.stop();
    daemon = await startDaemon(dir, url);
    const again = daemon;
    const key = mailbox(n - 1, d);
    await until(
      'restart from the snapshot',
      60_000 + 20_000 * millions,
      again,
      async () => {
        let s;
        try {
          s = await socketmap(again.ports.socketmap);
          return (await s.query('mailboxes', key)).startsWith('OK') ? true : undefined;
        } catch {
          return undefined; // not listening yet
        } finally {
          s?.close();
        }
      },
      5,
    );
    r.restart = (performance.now() - again.started) / 1000;
    r.restartMem = memory(again.pid);
    log(`scale ${label(n)}: restart from the ${r.fileMiB.toFixed(0)} MiB snapshot in ${r.restart.toFixed(2)} s, RSS ${r.restartMem.rss.toFixed(0)} MiB`);
  } finally {
    await daemon?.stop(10_000);
    removeDir(dir);
    try {
      cluster.start();
    } catch {
      /* already running */
    }
    await withClient(cluster.url, (c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
  }
  return r;
}

/** Ready time over an empty directory: what every size's ready time includes regardless of size. */
async function baseline(cluster) {
  const name = 'mailmapd_scale_empty';
  await withClient(cluster.url, (c) => c.query(`CREATE DATABASE ${name}`));
  const url = cluster.url.replace(/\/postgres$/, `/${name}`);
  const { migrate } = await load('db/schema.js');
  await withClient(url, (c) => migrate(c));
  const dir = tempDir();
  let daemon;
  try {
    daemon = await startDaemon(dir, url);
    const dm = daemon;
    await until('ready, empty', 60_000, dm, async () => ((await httpGet(dm.ports.http, '/readyz')).status === 200 ? true : undefined), 20);
    return (performance.now() - dm.started) / 1000;
  } finally {
    await daemon?.stop(10_000);
    removeDir(dir);
    await withClient(cluster.url, (c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
  }
}

function table(results, log) {
  const base = results[0];
  const rows = [
    ['ready from PostgreSQL (s)', (r) => r.ready, 2],
    ['RSS when ready (MiB)', (r) => r.readyMem.rss, 0],
    ['RSS after lookups+changes (MiB)', (r) => r.mem.rss, 0],
    ['peak RSS, VmHWM (MiB)', (r) => r.mem.peak, 0],
    ['first snapshot write (s)', (r) => r.writeSeconds, 2],
    ['stop, with its snapshot write (s)', (r) => r.stop, 2],
    ['snapshot size (MiB)', (r) => r.fileMiB, 1],
    ['restart from snapshot (s)', (r) => r.restart, 2],
    ['RSS after restart (MiB)', (r) => r.restartMem.rss, 0],
    ['lookup hit p50 (ms)', (r) => r.hit.p50, 3],
    ['lookup hit p99 (ms)', (r) => r.hit.p99, 3],
    ['lookup miss p50 (ms)', (r) => r.miss.p50, 3],
    ['lookup miss p99 (ms)', (r) => r.miss.p99, 3],
    ['commit-to-visible p50 (ms)', (r) => r.visible.p50, 1],
    ['commit-to-visible p99 (ms)', (r) => r.visible.p99, 1],
  ];
  const head = ['', ...results.map((r) => label(r.n)), ...results.slice(1).map((r) => `${label(r.n)}/${label(base.n)}`)];
  const body = rows.map(([title, get, digits]) => [
    title,
    ...results.map((r) => get(r).toFixed(digits)),
    ...results.slice(1).map((r) => `×${(get(r) / get(base)).toFixed(2)}`),
  ]);
  const widths = head.map((_, i) => Math.max(...[head, ...body].map((row) => row[i].length)));
  for (const row of [head, ...body]) log(row.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join('  '));
  log(`(${LOOKUPS} lookups per kind over one kept connection; ${CHANGES} changes, one per ${CHANGE_EVERY_MS} ms; entries = mailboxes + as many aliases)`);
}

export async function run(log = console.log, sizes = [100_000, 1_000_000]) {
  // How busy the machine is and how long node alone takes to start: both times include it.
  const n0 = performance.now();
  await new Promise((r) => spawn(process.execPath, ['-e', '0']).on('exit', r));
  log(
    `scale: node start alone ${((performance.now() - n0) / 1000).toFixed(2)} s; load average ${loadavg()
      .map((x) => x.toFixed(1))
      .join(' ')} on ${cpus().length} cores`,
  );
  const cluster = await privateCluster(['max_wal_size=8GB', 'checkpoint_timeout=30min']);
  const results = [];
  // Interrupted: the daemons and the private cluster go too, not only on a thrown error.
  const interrupted = (signal) => {
    for (const child of daemons) child.kill('SIGKILL');
    for (const dir of temps) rmSync(dir, { recursive: true, force: true });
    cluster.destroy();
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };
  process.once('SIGINT', interrupted).once('SIGTERM', interrupted);
  try {
    log(`scale: empty directory: ready from PostgreSQL in ${(await baseline(cluster)).toFixed(2)} s (the daemon's fixed start cost here and now)`);
    for (const n of sizes) results.push(await measure(cluster, n, log));
  } finally {
    process.off('SIGINT', interrupted).off('SIGTERM', interrupted);
    cluster.destroy();
  }
  table(results, log);
  return results;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const sizes = process.argv.slice(2).map((a) => {
    const n = parseSize(a);
    if (n === undefined) throw new Error(`not a size: ${a} (100k, 1M, 10M or a number ≥ 1000)`);
    return n;
  });
  await run(console.log, sizes.length ? sizes : undefined);
}
