// Password benchmarks: verifications per second per scheme through the hash worker pool,
// one check's cost on one core beside the baselines measured in the same run (libxcrypt
// through the native binding, sha512crypt-node, the pure-JS fallback, argon2), a cache
// hit, and socketmap-like lookup latency (p50/p99 over local TCP) with and without a flood
// of SHA512-CRYPT + ARGON2ID verifications — and, for contrast, with sha512crypt-node
// hashing on the main thread. Needs `npm run build`. Runnable alone: node bench/passwords.mjs

import { createRequire } from 'node:module';
import { createServer, connect } from 'node:net';
import { availableParallelism } from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

import { load, pct } from './lib.mjs';

const SHA512 = '{SHA512-CRYPT}$6$lXRp1ig.4KPF2O5i$8hULb3sBLbI1Eo5rjuOrw262V.pizuOv3igQTRCz/cfOctXAnCnIVo7857/Esw/QbDljhogP5FOeQDddoyfos0';
const ARGON = '{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$p0mpeMcwnWXYidM9ojQ5Lg$N5YjHg6qTNx7znGUV+wqtSzv7mMMoRayqY5xEsG2OHs';

const fmt = (n, d = 1) => n.toFixed(d);

/** Mean ms of fn over at least `minMs` of wall time (and at least 3 runs). */
async function perCall(fn, minMs = 600) {
  await fn();
  let n = 0;
  const t = performance.now();
  while (n < 3 || performance.now() - t < minMs) {
    await fn();
    n++;
  }
  return (performance.now() - t) / n;
}

/** Sequential request/reply over local TCP, like Postfix (no pipelining). Returns latencies in µs. */
async function lookupLatencies(port, count) {
  const sock = connect(port, '127.0.0.1');
  await new Promise((r) => sock.once('connect', r));
  sock.setNoDelay(true);
  const lat = [];
  for (let i = 0; i < count; i++) {
    const t = process.hrtime.bigint();
    await new Promise((resolve) => {
      sock.once('data', resolve);
      sock.write(`mailboxes user${i % 1000}@example.org\n`);
    });
    lat.push(Number(process.hrtime.bigint() - t) / 1000);
    // Pace like a busy MTA, not a tight loop, so the flood has time to interfere.
    if (i % 10 === 0) await new Promise((r) => setTimeout(r, 1));
  }
  sock.destroy();
  return lat.sort((a, b) => a - b);
}

export async function run(log) {
  const { createHashPool } = await load('password/pool.js');
  const { verifyPassword } = await load('password/verify.js');
  const { cryptBackend } = await load('password/native.js');
  const { jsCrypt } = await load('password/jscrypt.js');
  const { createAuthenticator } = await load('auth/authenticator.js');
  const { createDirectory, emptyData } = await load('directory/directory.js');
  const { createMetrics } = await load('metrics.js');
  const { silentLogger } = await load('log.js');
  const sha512crypt = createRequire(import.meta.url)('sha512crypt-node');
  const cores = availableParallelism();

  log(`native crypt binding: ${cryptBackend.native ? 'yes' : 'NO (pure-JS fallback)'}; ${cores} cores; pool of ${cores} workers`);

  // --- one check on one core, in-process, same run -------------------------------------
  log('\none check, one core (ms):');
  const pw = Buffer.from('secret');
  const setting6 = SHA512.slice('{SHA512-CRYPT}'.length);
  const rows = [
    ['SHA512-CRYPT libxcrypt (native binding)', () => cryptBackend.crypt(pw, setting6)],
    ['SHA512-CRYPT sha512crypt-node (pure JS)', () => sha512crypt.sha512crypt('secret', 'lXRp1ig.4KPF2O5i')],
    ['SHA512-CRYPT mailmapd JS fallback', () => jsCrypt(pw, setting6)],
    ['BLF-CRYPT cost 10 (native)', () => verifyPassword('secret', '$2y$10$b/e1k4qmm32/1Q6ZbLkO8uMwv.G7iggLa53r7W0zV3GKmdBSERzsq', 'CRYPT')],
    ['ARGON2ID m=64MiB t=3 p=1', () => verifyPassword('secret', ARGON, 'CRYPT')],
  ];
  const single = {};
  for (const [name, fn] of rows) {
    single[name] = await perCall(fn);
    log(`  ${name.padEnd(44)} ${fmt(single[name], 2)}`);
  }
  log(`  SHA512-CRYPT native vs sha512crypt-node: ${fmt(single[rows[1][0]] / single[rows[0][0]])}× faster`);

  // --- throughput through the pool -------------------------------------------------------
  const metrics = createMetrics(false);
  const pool = createHashPool({ workers: 0, queueLimit: 100000, defaultScheme: 'CRYPT', metrics, logger: silentLogger });
  const vectors = {
    'SHA512-CRYPT': SHA512,
    'SHA256-CRYPT': '{SHA256-CRYPT}$5$1QbhSYm4FfFGzau6$99.MSTSbW36cdS92g5kQCUtcPwwU.8HojpW.G6c91v0',
    'MD5-CRYPT': '{MD5-CRYPT}$1$KvVY1yVK$c3UUah65Ljuj2JYON4da9.',
    'BLF-CRYPT cost 5': '{BLF-CRYPT}$2y$05$24c6S8pStFQ0HfBKUORnD.RSDUML81KcXtYx6fsSHw1vcyj49fPa2',
    'BLF-CRYPT cost 10': '$2y$10$b/e1k4qmm32/1Q6ZbLkO8uMwv.G7iggLa53r7W0zV3GKmdBSERzsq',
    ARGON2ID: ARGON,
    ARGON2I: '{ARGON2I}$argon2i$v=19$m=32768,t=4,p=1$sAH3K8DiGrnqdnmhrmeFRQ$273FiOl1QxgiE6OHRQjfL1rzSzlKRA/HadHqbV5iBRU',
    'PBKDF2 5000': '{PBKDF2}$1$bSDcwOFj/8nqSZjo$5000$98cfc33b02e1762943b0dbb7885060bd18734fbd',
    'SCRAM-SHA-256': '{SCRAM-SHA-256}4096,ZlcT2wpEuzadnnxGAUrYiA==,09NRQlNxRimNWfTIDK2O1YWW+Q5OpEuDMnswh2HtbQY=,BCirdZ4lGZvMQJHzaU1y0aIMzeWSsYlNHXmwusiLsFs=',
    SSHA512: '{SSHA512}ifqxhfK/5oPYngVT0vYZ7468bh+oO8T8PNsCNP31Pz4JdgKinRL1w97mF3/R9yQEdHvT1pE9ZpKiA2wiUlJhyxpRNeI=',
    PLAIN: '{PLAIN}secret',
  };
  for (let i = 0; i < cores; i++) await pool.verify('secret', '{PLAIN}secret'); // warm the workers
  log(`\nverifications/s through the pool (${cores} workers; sha512crypt-node on the main thread for comparison):`);
  for (const [name, stored] of Object.entries(vectors)) {
    const t = performance.now();
    let n = 0;
    while (performance.now() - t < 1500) {
      const batch = Array.from({ length: cores * 4 }, () => pool.verify('secret', stored));
      const r = await Promise.all(batch);
      if (r.some((x) => x !== 'ok')) throw new Error(`${name}: ${r.find((x) => x !== 'ok')}`);
      n += batch.length;
    }
    log(`  ${name.padEnd(20)} ${fmt(n / ((performance.now() - t) / 1000), 0).padStart(8)}/s`);
  }
  log(`  ${'sha512crypt-node'.padEnd(20)} ${fmt(1000 / single[rows[1][0]], 0).padStart(8)}/s (one core, blocks the event loop)`);

  // --- cache hit -------------------------------------------------------------------------
  const directory = createDirectory({ recipientDelimiter: '+' });
  const data = emptyData();
  data.domains.set('example.org', true);
  for (let i = 0; i < 1000; i++) data.mailboxes.set(`user${i}@example.org`, { password: SHA512, quotaBytes: 0, active: true });
  directory.replaceAll(data);
  const auth = createAuthenticator({
    directory,
    pool,
    logger: silentLogger,
    metrics,
    userdb: { mailHome: '/v/%d/%n', mailUid: 1, mailGid: 1 },
    cacheSize: 10000,
  });
  const ctx = { service: 'imap' };
  await auth.authenticate('user1@example.org', 'secret', ctx);
  const hits = 50000;
  const t = performance.now();
  for (let i = 0; i < hits; i++) await auth.authenticate('user1@example.org', 'secret', ctx);
  log(`\ncache hit (authenticate, same password again): ${fmt(((performance.now() - t) * 1000) / hits, 1)} µs (target < 50 µs)`);

  // --- lookup latency with and without a flood ---------------------------------------------
  const server = createServer((s) => {
    s.setNoDelay(true);
    s.on('data', (d) => {
      const [map, key] = d.toString().trim().split(' ');
      const v = directory.lookup(map, key);
      s.write(v === undefined ? 'NOTFOUND \n' : `OK ${v}\n`);
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const port = server.address().port;
  const N = 3000;
  const report = (label, lat, loop) =>
    log(
      `  ${label.padEnd(58)} p50 ${fmt(pct(lat, 50), 0).padStart(6)} µs  p99 ${fmt(pct(lat, 99), 0).padStart(7)} µs  max ${fmt(lat[lat.length - 1] / 1000, 1).padStart(6)} ms  loop-delay p99 ${fmt(loop.percentile(99) / 1e6, 1)} ms`,
    );
  const measure = async (label, flood, count = N) => {
    const loop = monitorEventLoopDelay({ resolution: 1 });
    let stop = false;
    let done = 0;
    const running = flood
      ? flood(
          () => stop,
          () => done++,
        )
      : Promise.resolve();
    await new Promise((r) => setTimeout(r, 100));
    loop.enable();
    const lat = await lookupLatencies(port, count);
    loop.disable();
    stop = true;
    await running;
    report(label, lat, loop);
    return done;
  };

  log(`\nsocketmap-like lookup over local TCP, ${N} sequential requests:`);
  await measure('idle', null);
  const poolFlood = (stopped, count) => {
    // Keep the queue full of mixed SHA512-CRYPT and ARGON2ID checks the whole time.
    const lane = async (i) => {
      while (!stopped()) {
        await pool.verify(i % 2 ? 'secret' : 'wrong', i % 4 === 0 ? ARGON : SHA512);
        count();
      }
    };
    return Promise.all(Array.from({ length: cores * 8 }, (_, i) => lane(i)));
  };
  const n1 = await measure('flood: SHA512-CRYPT + ARGON2ID in the pool', poolFlood);
  const mainFlood = (stopped, count) =>
    (async () => {
      while (!stopped()) {
        sha512crypt.sha512crypt('secret', 'lXRp1ig.4KPF2O5i');
        count();
        await new Promise((r) => setImmediate(r));
      }
    })();
  // Fewer requests here: each one waits behind a whole pure-JS hash.
  const n2 = await measure('contrast: sha512crypt-node on the main thread (200 req)', mainFlood, 200);
  log(`  (flood verifications during the run: pool ${n1}, main-thread ${n2})`);

  server.close();
  await pool.close();
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  await run((l) => console.log(l));
}
