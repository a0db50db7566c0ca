// Scale benchmark (issue 36): N mailboxes + N aliases over N/1000 domains, made in SQL in a
// private PostgreSQL cluster this benchmark creates, served by the real daemon
// (`node dist/cli.js serve`). Per size it measures: ready from PostgreSQL (spawn to /readyz
// 200), RSS and peak RSS (VmRSS / VmHWM), the snapshot's size and write time (the daemon's
// own metrics), lookup p50/p99 over one kept socketmap connection for existing and missing
// keys, commit-to-visible p50/p99 under a steady trickle of changes, and restart from the
// snapshot with PostgreSQL stopped (spawn to the first socketmap answer). Then one table,
// every size, with the ratios against the first size (100k by default).
// Runnable alone: node bench/scale.mjs [100k 1M 10M]   (needs `npm run build`; makes its own cluster)

import { execFileSync, spawn } from 'node:child_process';
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
const passwordSql =
  process.env.SCALE_PASSWORDS === 'short'
    ? `'{PLAIN}' || substr(md5(i::text), 1, 12)`
    : `'{SHA512-CRYPT}$6$abcdefghijklmnop$' || md5(i::text) || md5((i * 7)::text) || md5((i * 13)::text)`;
/** The Node options the systemd unit runs the daemon with: what is measured is what is installed. */
const unitNodeOptions = /^Environment=NODE_OPTIONS=(.*)$/m.exec(readFileSync(join(root, 'systemd/mailmapd.service'), 'utf8'))?.[1] ?? '';
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
      // SHA512-CRYPT-sized hashes, as bench/sync.mjs, so that the numbers compare;
      // SCALE_PASSWORDS=short stores 19-byte values, the shape of issue 36's own 10M figures.
      await c.query(
        `INSERT INTO mailmapd.mailboxes (address, password, quota_bytes)
         SELECT 'user' || i || '@d' || (i % ${d} + 1) || '.test', ${passwordSql}, 1073741824
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
    env: { ...process.env, MAILMAPD_CONFIG: '', NODE_OPTIONS: unitNodeOptions },
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
 * from sending the statement; a change not visible within 5 s counts as lost. `from`: the
 * first change's number (a second trickle goes on from the first one's last);
 * `count` changes, or fewer when `stop()` says so. Each sample: when it was sent, its time.
 */
async function trickle(url, c, n, from = 0, count = CHANGES, stop = () => false) {
  const d = domainsFor(n);
  const samples = [];
  let lost = 0;
  await withClient(url, async (db) => {
    for (let k = from; k < from + count && !stop(); k++) {
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
      if (seen) samples.push({ at: t, ms: performance.now() - t, kind: change.kind });
      else lost++;
      await sleep(Math.max(0, next - performance.now()));
    }
  });
  return { samples, lost };
}

const spread = (samples) => {
  const ms = samples.map((x) => x.ms);
  return { n: ms.length, p50: pct(ms, 50), p99: pct(ms, 99) };
};

/** The first background snapshot write's metrics, once it is done (polled every 100 ms); `doneAt`: when it was first seen done. */
async function firstWrite(dm, limitMs) {
  const m = await until(
    'the first snapshot write',
    limitMs,
    dm,
    async () => {
      const text = (await httpGet(dm.ports.http, '/metrics')).body;
      return /^mailmapd_snapshot_writes_total\{result="written"\} [1-9]/m.test(text) ? text : undefined;
    },
    100,
  );
  return { doneAt: performance.now(), seconds: metric(m, 'mailmapd_snapshot_write_seconds'), bytes: metric(m, 'mailmapd_snapshot_bytes') };
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

    // The first background write begins 5 s after the daemon started or when the load is
    // done, whichever is later (snapshot/keeper.ts), and takes at most a tenth of a core:
    // about ten times the full-speed write. A trickle runs through it; the changes sent
    // after it began and before it was seen done are the ones "while writing".
    const c = await socketmap(dm.ports.socketmap);
    try {
      const writeStart = Math.max(performance.now(), dm.started + 5000);
      let done = false;
      const writing = firstWrite(dm, 60_000 + 60_000 * millions).finally(() => (done = true));
      const during = await trickle(url, c, n, 0, 100_000, () => done);
      const w = await writing;
      r.writeSeconds = w.seconds;
      r.snapshotMiB = w.bytes / 2 ** 20;
      r.writing = { ...spread(during.samples.filter((x) => x.at >= writeStart && x.at <= w.doneAt)), lost: during.lost };
      log(
        `scale ${label(n)}: first snapshot write ${w.seconds.toFixed(2)} s; ${r.writing.n} changes sent during it, commit-to-visible p50/p99 ${r.writing.p50.toFixed(1)}/${r.writing.p99.toFixed(1)} ms`,
      );

      const existing = await lookups(c, (i) => mailbox(((i * 7919) % n) + 1, d), LOOKUPS);
      const missing = await lookups(c, (i) => `nobody${i}@d${(i % d) + 1}.test`, LOOKUPS);
      r.hit = { n: existing.length, p50: pct(existing, 50), p99: pct(existing, 99) };
      r.miss = { n: missing.length, p50: pct(missing, 50), p99: pct(missing, 99) };
      // Numbered on from the first trickle's: a number n apart would pick the same mailbox
      // again, already inactive, and its change would never show (counted lost).
      const t = await trickle(url, c, n, during.samples.length + during.lost);
      r.visible = { ...spread(t.samples), lost: t.lost };
      const kinds = [...new Set(t.samples.map((x) => x.kind))].map((kind) => {
        const k = spread(t.samples.filter((x) => x.kind === kind));
        return `${kind} ${k.p50.toFixed(1)}/${k.p99.toFixed(1)}`;
      });
      log(`scale ${label(n)}: commit-to-visible p50/p99 by change (ms): ${kinds.join(', ')}`);
    } finally {
      c.close();
    }
    r.mem = memory(dm.pid);
    log(
      `scale ${label(n)}: lookups hit p50/p99 ${r.hit.p50.toFixed(3)}/${r.hit.p99.toFixed(3)} ms, miss ${r.miss.p50.toFixed(3)}/${r.miss.p99.toFixed(3)} ms; ` +
        `commit-to-visible p50/p99 ${r.visible.p50.toFixed(1)}/${r.visible.p99.toFixed(1)} ms (${r.visible.n} changes, ${r.visible.lost} not seen in 5 s)`,
    );
    if (compareAt(n)) r.compare = await compare(dir, url, dm.ports.socketmap, n, log);

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

// The socketmap comparison at the smallest size (the "at 100k"): 8 real `postmap -q -`
// clients, each with its own keys, against mailmapd, against Postfix's own pgsql: table
// running PostfixAdmin's one-table mailbox query on the same database, and against a
// do-nothing C server (bench/notfound.c) that answers NOTFOUND: what a lookup costs when
// the lookup costs nothing. Rounds alternate between the three; medians of 3.
const CLIENTS = 8;
const KEYS_PER_CLIENT = 10_000;
const ROUNDS = 3;
const compareAt = (n) => n <= 100_000;
const POSTMAP = process.env.POSTMAP ?? '/usr/sbin/postmap';

/** Mostly existing mailboxes, one in ten unknown, each client its own. */
function keysFor(client, n) {
  const d = domainsFor(n);
  let x = 2463534242 + client * 7919;
  const keys = [];
  for (let i = 0; i < KEYS_PER_CLIENT; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    const k = 1 + ((x >>> 0) % n);
    keys.push(i % 10 === 9 ? `nobody${k}@d${(k % d) + 1}.test` : mailbox(k, d));
  }
  return `${keys.join('\n')}\n`;
}

/** CLIENTS concurrent `postmap -q - table`; wall seconds and what each printed. */
async function postmapRound(table, inputs) {
  const t0 = performance.now();
  const outputs = await Promise.all(
    inputs.map(
      (input) =>
        new Promise((resolve, reject) => {
          const p = spawn(POSTMAP, ['-q', '-', table], { stdio: ['pipe', 'pipe', 'pipe'] });
          const out = [];
          let err = '';
          p.stdout.on('data', (b) => out.push(b));
          p.stderr.on('data', (b) => (err += b));
          p.once('error', reject);
          // postmap -q - exits 1 when no key was found at all; anything on stderr is a failure.
          p.once('close', (code) =>
            err !== '' || (code !== 0 && code !== 1)
              ? reject(new Error(`postmap ${table}: ${code} ${err.slice(0, 300)}`))
              : resolve(Buffer.concat(out).toString()),
          );
          p.stdin.end(input);
        }),
    ),
  );
  return { seconds: (performance.now() - t0) / 1000, outputs };
}

/** bench/notfound.c, built with cc into `dir` and started; resolves with its port and a stop(). */
function startNotFound(dir) {
  const bin = join(dir, 'notfound');
  execFileSync('cc', ['-O2', '-o', bin, join(root, 'bench/notfound.c')]);
  const p = spawn(bin, [], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    p.once('error', reject);
    p.stdout.once('data', (b) => resolve({ port: Number(String(b).trim()), stop: () => p.kill() }));
  });
}

async function compare(dir, url, port, n, log) {
  if (!execFileSync('postconf', ['-m'], { encoding: 'utf8' }).split('\n').includes('pgsql'))
    throw new Error('Postfix has no pgsql: table here (apt-get install postfix-pgsql)');
  const u = new URL(url);
  const cf = join(dir, 'pgsql-mailboxes.cf');
  // PostfixAdmin's virtual_mailbox_maps: SELECT maildir FROM mailbox WHERE username='%s' AND active = '1',
  // with the maildir made from the address as mailmapd answers it.
  const query = `SELECT split_part(address, '@', 2) || '/' || split_part(address, '@', 1) || '/' FROM mailmapd.mailboxes WHERE address = '%s' AND active`;
  writeFileSync(
    cf,
    [
      `hosts = inet:${u.hostname}:${u.port}`,
      `user = ${u.username || 'postgres'}`,
      'password =',
      `dbname = ${u.pathname.slice(1)}`,
      `query = ${query}`,
      '',
    ].join('\n'),
  );
  const floor = await startNotFound(dir);
  try {
    const inputs = Array.from({ length: CLIENTS }, (_, i) => keysFor(i, n));
    const targets = {
      pgsql: `pgsql:${cf}`,
      mailmapd: `socketmap:inet:127.0.0.1:${port}:mailboxes`,
      notfound: `socketmap:inet:127.0.0.1:${floor.port}:mailboxes`,
    };
    const seconds = { pgsql: [], mailmapd: [], notfound: [] };
    const answers = {};
    for (const [name, table] of Object.entries(targets)) answers[name] = (await postmapRound(table, inputs)).outputs.join(''); // warm-up
    for (let round = 0; round < ROUNDS; round++)
      for (const [name, table] of Object.entries(targets)) seconds[name].push((await postmapRound(table, inputs)).seconds);
    const med = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    const lookups = CLIENTS * KEYS_PER_CLIENT;
    const out = Object.fromEntries(Object.keys(targets).map((k) => [k, { seconds: med(seconds[k]), perSecond: lookups / med(seconds[k]) }]));
    out.vsPgsql = out.pgsql.seconds / out.mailmapd.seconds;
    out.vsFloor = out.mailmapd.seconds / out.notfound.seconds;
    out.same = answers.pgsql === answers.mailmapd;
    for (const k of Object.keys(targets))
      log(
        `scale ${label(n)}: socketmap ${k.padEnd(8)} ${CLIENTS} × postmap -q - × ${KEYS_PER_CLIENT} keys: ${out[k].seconds.toFixed(2)} s, ${Math.round(out[k].perSecond)} lookups/s`,
      );
    log(
      `scale ${label(n)}: mailmapd ${out.vsPgsql.toFixed(2)}× the lookups/s of pgsql: (target ≥ 2: ${out.vsPgsql >= 2 ? 'met' : 'MISSED'}), ` +
        `${out.vsFloor.toFixed(2)}× the do-nothing C server's time (target ≤ 1.3: ${out.vsFloor <= 1.3 ? 'met' : 'MISSED'}); answers ${out.same ? 'identical to' : 'DIFFERENT from'} pgsql's`,
    );
    return out;
  } finally {
    floor.stop();
  }
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
    ['… while the snapshot is written p50 (ms)', (r) => r.writing.p50, 1],
    ['… while the snapshot is written p99 (ms)', (r) => r.writing.p99, 1],
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
