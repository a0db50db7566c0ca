// Snapshot benchmarks, for 100k and 1M mailboxes plus as many aliases (SHA512-CRYPT-sized
// hashes): how long writing the snapshot takes and how big it is; restart to serving — the
// real daemon started with PostgreSQL unreachable, timed from spawn to the first socketmap
// answer OK from the snapshot; and socketmap lookup latency (p50/p99/max, from a client in
// another process) while a snapshot is being written versus while not — idle spells and
// writes alternate, each spell as long as the write before it, so that both see the same
// machine (other load on a shared machine moves the percentiles more than a write does).
// Runnable alone: node bench/snapshot.mjs [sizes…]   (needs `npm run build`; no PostgreSQL)

import { fork, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, pct } from './lib.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const now = () => performance.timeOrigin + performance.now();

/** A socketmap client: one request at a time, as Postfix sends them. */
function client(port) {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let buf = Buffer.alloc(0);
    let pending;
    socket.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      const colon = buf.indexOf(':');
      if (colon < 0) return;
      const len = Number(buf.subarray(0, colon).toString());
      if (buf.length < colon + len + 2) return;
      const reply = buf.subarray(colon + 1, colon + 1 + len).toString();
      buf = buf.subarray(colon + len + 2);
      pending?.(reply);
    });
    socket.once('error', reject);
    socket.once('connect', () =>
      resolve({
        query(map, key) {
          const p = Buffer.from(`${map} ${key}`);
          return new Promise((res) => {
            pending = res;
            socket.write(`${p.length}:${p},`);
          });
        },
        close: () => socket.destroy(),
      }),
    );
  });
}

// Child: the directory, a socketmap listener on it, and snapshot writes on request.
async function serverChild(size, file, source) {
  const { createDirectory, emptyData } = await import('../dist/directory/directory.js');
  const { createMetrics } = await import('../dist/metrics.js');
  const { createLogger } = await import('../dist/log.js');
  const { listen } = await import('../dist/net/listener.js');
  const { createSocketmapHandler } = await import('../dist/socketmap/server.js');
  const { BACKGROUND_SHARE, writeSnapshot } = await import('../dist/snapshot/write.js');
  const software = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version;
  const data = emptyData();
  for (let d = 1; d <= 1000; d++) data.domains.set(`d${d}.test`, true);
  for (let i = 1; i <= size; i++) {
    const dom = `d${(i % 1000) + 1}.test`;
    data.mailboxes.set(`user${i}@${dom}`, { password: `{SHA512-CRYPT}$6$abcdefghijklmnop$${'x'.repeat(86)}${i}`, quotaBytes: 1073741824, active: true });
    data.aliases.set(`alias${i}@${dom}`, `user${i}@${dom}`);
  }
  const directory = createDirectory({ recipientDelimiter: '+' });
  directory.replaceAll(data);
  const logger = createLogger('warn');
  const metrics = createMetrics(false);
  const listener = await listen(
    { kind: 'inet', host: '127.0.0.1', port: 0, text: 'inet:127.0.0.1:0' },
    'socketmap',
    createSocketmapHandler({ directory, logger, metrics, maxRequestBytes: 4096 }),
    { maxConnections: 100, idleTimeoutMs: 300_000 },
    { mode: 0o660, group: '' },
    logger,
  );
  const write = async () => {
    const t0 = performance.now();
    const header = { software, writtenAt: Date.now(), dataAt: Date.now(), source, identity: null, position: { bench: true }, counts: directory.counts() };
    const r = await writeSnapshot({ path: file, data: directory.data(), header, share: BACKGROUND_SHARE }); // as the daemon's background writes
    return { seconds: (performance.now() - t0) / 1000, bytes: r.bytes };
  };
  process.on('message', async (m) => {
    if (m === 'write') {
      const idle = [];
      const windows = [];
      let last;
      for (let i = 0; i < 4; i++) {
        const rest = now();
        await new Promise((r) => setTimeout(r, last ? last.seconds * 1000 : 1000));
        idle.push([rest, now()]);
        const start = now();
        last = await write();
        windows.push([start, now()]);
      }
      process.send({ idle, windows, ...last });
    } else if (m === 'exit') process.exit(0);
  });
  process.send({ port: listener.port });
}

async function lookupsUntil(port, size, stopAt) {
  const c = await client(port);
  const samples = [];
  let i = 0;
  while (now() < stopAt) {
    const key = `user${((i++ * 7919) % size) + 1}@d${((((i * 7919) % size) + 1) % 1000) + 1}.test`;
    const t = now();
    await c.query('mailboxes', key);
    samples.push([t, now() - t]);
  }
  c.close();
  return samples;
}

const ms = (x) => `${x.toFixed(3)} ms`;

async function restartToServing(file, dbUrl, size) {
  const dir = mkdtempSync(join(tmpdir(), 'mailmapd-bench-snap-'));
  const ports = { s: await freePort(), a: await freePort(), c: await freePort(), h: await freePort() };
  const conf = join(dir, 'mailmapd.conf');
  writeFileSync(
    conf,
    [
      `database_url = ${dbUrl}`,
      `snapshot_file = ${file}`,
      `socketmap_listen = inet:127.0.0.1:${ports.s}`,
      `auth_listen = inet:127.0.0.1:${ports.a}`,
      `checkpassword_listen = inet:127.0.0.1:${ports.c}`,
      `http_listen = 127.0.0.1:${ports.h}`,
      'log_level = warn',
      'reconnect_max_delay = 1s',
      '',
    ].join('\n'),
  );
  const t0 = now();
  const child = spawn(process.execPath, [join(root, 'dist/cli.js'), 'serve', '-c', conf], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, MAILMAPD_CONFIG: '' },
  });
  let err = '';
  child.stderr.on('data', (d) => (err += d));
  const key = `user${size}@d${(size % 1000) + 1}.test`;
  let seconds = NaN;
  try {
    for (;;) {
      if (child.exitCode !== null) throw new Error(`daemon exited: ${err}`);
      if (now() - t0 > 60_000) throw new Error('not serving after 60 s');
      try {
        const c = await client(ports.s);
        const r = await c.query('mailboxes', key);
        c.close();
        if (r.startsWith('OK ')) {
          seconds = (now() - t0) / 1000;
          break;
        }
      } catch {
        /* not listening yet */
      }
      await new Promise((r) => setTimeout(r, 2));
    }
  } finally {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
  return seconds;
}

export async function run(log = console.log, sizes = [100_000, 1_000_000]) {
  const { databaseOf } = await import('../dist/db/conninfo.js');
  // A port nothing listens on: the database is down for the whole restart.
  const dbUrl = `postgres://postgres@127.0.0.1:${await freePort()}/mailmapd_bench_snapshot`;
  const source = { database: databaseOf(dbUrl), schema: 'native' };
  // Node's own start, for scale: the restart time includes it.
  const n0 = now();
  await new Promise((r) => spawn(process.execPath, ['-e', '0']).on('exit', r));
  log(`node start alone: ${((now() - n0) / 1000).toFixed(3)} s`);
  // Loading a snapshot is mostly filling fresh memory: how long this machine takes to fault
  // in 200 MiB says how far its times are from another machine's.
  const m0 = now();
  const fresh = Buffer.allocUnsafeSlow(200 * 2 ** 20);
  for (let i = 0; i < fresh.length; i += 4096) fresh[i] = 1;
  log(`touching 200 MiB of fresh memory: ${((now() - m0) / 1000).toFixed(3)} s`);
  for (const size of sizes) {
    const dir = mkdtempSync(join(tmpdir(), 'mailmapd-bench-snap-'));
    const file = join(dir, 'directory.snapshot');
    const child = fork(fileURLToPath(import.meta.url), ['--child', String(size), file, JSON.stringify(source)], { stdio: 'inherit' });
    try {
      const { port } = await new Promise((r) => child.once('message', r));
      const written = new Promise((r) => child.once('message', r));
      child.send('write');
      // Until the child answers: lookups are sorted by the spell they started in afterwards.
      let done = false;
      const samples = [];
      const all = (async () => {
        while (!done) for (const s of await lookupsUntil(port, size, now() + 500)) samples.push(s);
      })();
      const w = await written;
      done = true;
      await all;
      const inside = (spells, at) => spells.some(([a, b]) => at >= a && at <= b);
      const busySamples = samples.filter(([at]) => inside(w.windows, at)).map(([, l]) => l);
      const idleLat = samples.filter(([at]) => inside(w.idle, at)).map(([, l]) => l);
      const mb = w.bytes / 2 ** 20;
      log(
        `${size} mailboxes + ${size} aliases: snapshot ${mb.toFixed(1)} MiB, written in ${w.seconds.toFixed(2)} s (${(mb / w.seconds).toFixed(0)} MiB/s), ${w.windows.length} writes timed`,
      );
      log(
        `  lookups idle:    n=${idleLat.length} p50 ${ms(pct(idleLat, 50))} p99 ${ms(pct(idleLat, 99))} max ${ms(idleLat.reduce((a, b) => Math.max(a, b), 0))}`,
      );
      log(
        `  lookups writing: n=${busySamples.length} p50 ${ms(pct(busySamples, 50))} p99 ${ms(pct(busySamples, 99))} max ${ms(busySamples.reduce((a, b) => Math.max(a, b), 0))}; p99 ratio writing/idle ${(pct(busySamples, 99) / pct(idleLat, 99)).toFixed(2)}`,
      );
      child.send('exit');
      const restarts = [];
      for (let i = 0; i < 3; i++) restarts.push(await restartToServing(file, dbUrl, size));
      log(`  restart to serving (PostgreSQL down): ${restarts.map((s) => s.toFixed(3)).join(' / ')} s (target ≤ 1 s for 1M + 1M)`);
    } finally {
      child.kill();
      rmSync(dir, { recursive: true, force: true });
    }
  }
}

if (process.argv[2] === '--child') {
  await serverChild(Number(process.argv[3]), process.argv[4], JSON.parse(process.argv[5]));
} else if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const sizes = process.argv
    .slice(2)
    .map(Number)
    .filter((n) => n > 0);
  await run(console.log, sizes.length ? sizes : undefined);
}
