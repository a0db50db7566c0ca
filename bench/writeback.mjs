// Write-back benchmarks, in one run so that the ratios compare like with like:
//   - socketmap lookups/s and cached logins/s (auth-client socket), measured at the same
//     time, with last-login recording off, at the default (last_login_interval 60 s: what a
//     user runs) and — a stress figure, reported apart — at interval 0 (every login written);
//   - quota dict commits/s: Dovecot quota-clone transactions (B, S, S, C) over the dict
//     socket, 4 connections, 1000 mailboxes, with the writes reaching PostgreSQL.
//
// Fairness, because the differences looked for are a few per cent:
//   - each mode is its own real daemon (`node dist/cli.js serve`, the same build and config
//     but for the write-back settings), all started before the first row and each warmed
//     (one discarded row) so that JIT and the credential cache are alike. A second daemon
//     with recording off is the control: its ratio to "off" is the method's noise floor;
//   - rows are timed in rounds of A B C D D C B A, the order of the modes shuffled for each
//     round: every mode's two rows sit symmetrically around the middle of the round, so a
//     steady drift of the machine's speed cancels out of the per-round ratio to "off";
//   - before a row of another mode than the row before, every daemon's write-back is idle
//     (nothing pending, no statement running on a writer's connection): one mode's
//     PostgreSQL flushes never run during another mode's row; a mode's own do, between its
//     two back-to-back rows. Autovacuum is off for the two written tables, for the same
//     reason (the every-login mode's updates would otherwise wake it during any row);
//   - reported: each row, then per mode the median over rounds of the ratio to "off" and
//     its spread (lowest–highest). The figure for a user is the default's; every-login is a
//     stress figure. On a shared machine the control's spread shows how far to trust them;
//   - last, each mode's daemon once more under V8's sampling profiler: the share of its CPU
//     spent recording, a figure other processes on the machine do not move.
// Needs `npm run build` and PostgreSQL on 127.0.0.1:5432 (MAILMAPD_BENCH_PG to change).
// MAILMAPD_BENCH_ROUNDS and MAILMAPD_BENCH_SECONDS set the rounds (default 10) and the
// seconds per row (2). Runnable alone: node bench/writeback.mjs

import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { freePort, load, serverUrl } from './lib.mjs';

const dist = new URL('../dist/', import.meta.url);
const cli = fileURLToPath(new URL('cli.js', dist));
const server = serverUrl;

const USERS = 1000;
const CONNECTIONS = 4;
const SECONDS = Number(process.env.MAILMAPD_BENCH_SECONDS ?? 2);
const ROUNDS = Number(process.env.MAILMAPD_BENCH_ROUNDS ?? 6);
const PROFILE_ROWS = 3;
const BLOCKS = Number(process.env.MAILMAPD_BENCH_BLOCKS ?? 60);
const SLICE_MS = 250;
const SETS = 4;

/** The modes, each a daemon; `config` is what differs from the daemon's defaults. */
const MODES = {
  off: { label: 'recording off', config: { last_logins: 'no' } },
  // A second daemon configured like the first: its ratio to "off" is what the method cannot
  // tell from nothing (two processes of one build differ a little, the machine drifts).
  control: { label: 'control: recording off, a second daemon', config: { last_logins: 'no' } },
  default: { label: 'recording on, last_login_interval 60 s (default)', config: {} },
  every: { label: 'STRESS: recording on, last_login_interval 0 (every login buffered, flushed each second)', config: { last_login_interval: '0' } },
};

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A client that sends one line (or netstring) at a time and waits for its answer. */
function lineConn(path) {
  const sock = connect(path);
  sock.setEncoding('latin1');
  let buf = '';
  let waiting;
  let match;
  sock.on('data', (d) => {
    buf += d;
    const m = match?.(buf);
    if (m !== undefined) {
      buf = buf.slice(m);
      const w = waiting;
      waiting = undefined;
      w();
    }
  });
  return new Promise((resolve, reject) => {
    sock.once('error', reject);
    sock.once('connect', () =>
      resolve({
        ask(text, until) {
          return new Promise((r) => {
            waiting = r;
            match = until;
            sock.write(text);
          });
        },
        close: () => sock.destroy(),
      }),
    );
  });
}

const netstringEnd = (buf) => {
  const colon = buf.indexOf(':');
  if (colon < 0) return undefined;
  const end = colon + 1 + Number(buf.slice(0, colon)) + 1;
  return buf.length >= end ? end : undefined;
};
const lineEnd = (pattern) => (buf) => {
  const m = pattern.exec(buf);
  return m ? m.index + m[0].length : undefined;
};

async function loop(path, until, step) {
  const c = await lineConn(path);
  let n = 0;
  while (performance.now() < until) {
    await step(c, n);
    n++;
  }
  c.close();
  return n;
}

const lookupRequest = (n) => {
  const k = n % 2 ? 'bench.test' : 'other.test';
  return `${'domains'.length + 1 + k.length}:domains ${k},`;
};

/** Connections to one daemon, kept across rows: socketmap, and auth-client past its handshake. */
async function openClients(socketmap, auth) {
  const sm = await Promise.all(Array.from({ length: CONNECTIONS }, () => lineConn(socketmap)));
  const au = await Promise.all(
    Array.from({ length: CONNECTIONS }, async () => {
      const c = await lineConn(auth);
      await c.ask(`VERSION\t1\t2\nCPID\t${process.pid}\n`, lineEnd(/DONE\n/));
      return c;
    }),
  );
  for (const c of [...sm, ...au]) c.n = 0;
  return {
    sm,
    au,
    close() {
      for (const c of [...sm, ...au]) c.close();
    },
  };
}

/** Socketmap lookups and auth-client logins at the same time over `clients`, for `ms`. */
async function drive(clients, ms) {
  const until = performance.now() + ms;
  const t0 = performance.now();
  let failed = 0;
  const run = async (c, step) => {
    let k = 0;
    while (performance.now() < until) {
      await step(c, c.n++);
      k++;
    }
    return k;
  };
  const [lookups, logins] = await Promise.all([
    Promise.all(clients.sm.map((conn) => run(conn, (c, n) => c.ask(lookupRequest(n), netstringEnd)))),
    Promise.all(
      clients.au.map((conn, i) =>
        run(conn, async (c, n) => {
          const user = `u${(i * 97 + n) % USERS}@bench.test`;
          let answer = '';
          await c.ask(
            `AUTH\t${n + 1}\tPLAIN\tservice=imap\tno-penalty\trip=192.0.2.${n % 250}\tresp=${Buffer.from(`\0${user}\0secret`).toString('base64')}\n`,
            (buf) => {
              const m = /(OK|FAIL)\t\d+[^\n]*\n/.exec(buf);
              if (!m) return undefined;
              answer = m[1];
              return m.index + m[0].length;
            },
          );
          if (answer !== 'OK') failed++;
        }),
      ),
    ),
  ]);
  const secs = (performance.now() - t0) / 1000;
  const nLookups = lookups.reduce((a, b) => a + b, 0);
  const nLogins = logins.reduce((a, b) => a + b, 0);
  return { lookups: nLookups / secs, logins: nLogins / secs, requests: nLookups + nLogins, failed };
}

/** One row: socketmap lookups and auth-client logins against one daemon, at the same time. */
export async function both(socketmap, auth, ms = SECONDS * 1000) {
  const clients = await openClients(socketmap, auth);
  try {
    return await drive(clients, ms);
  } finally {
    clients.close();
  }
}

/**
 * The real daemon with its listeners on unix sockets in `dir`; resolves once /readyz says 200.
 * `nodeArgs` go to node (--cpu-prof, to see where a mode's time goes).
 */
export async function startDaemon(dir, name, url, extra, nodeArgs = []) {
  const http = await freePort();
  const sock = (s) => join(dir, `${name}-${s}`);
  const config = {
    database_url: url,
    socketmap_listen: `unix:${sock('socketmap')}`,
    auth_listen: `unix:${sock('auth')}`,
    checkpassword_listen: `unix:${sock('checkpassword')}`,
    dict_listen: `unix:${sock('dict')}`,
    http_listen: `127.0.0.1:${http}`,
    snapshot_file: join(dir, `${name}.snapshot`),
    log_level: 'warn',
    ...extra,
  };
  const file = join(dir, `${name}.conf`);
  writeFileSync(
    file,
    Object.entries(config)
      .map(([k, v]) => `${k} = ${v}\n`)
      .join(''),
  );
  // The daemon reads MAILMAPD_* variables as settings: the bench's own are not for it.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('MAILMAPD_')));
  const child = spawn(process.execPath, [...nodeArgs, cli, 'serve', '-c', file], { stdio: ['ignore', 'pipe', 'pipe'], env });
  let logs = '';
  const keep = (d) => (logs = (logs + d).slice(-20_000));
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  const exited = new Promise((r) => child.once('exit', r));
  // Should the bench itself end early (an error, a closed pipe), no daemon outlives it.
  const orphan = () => child.kill('SIGKILL');
  process.once('exit', orphan);
  child.once('exit', () => process.off('exit', orphan));
  const base = `http://127.0.0.1:${http}`;
  const daemon = {
    socketmap: sock('socketmap'),
    auth: sock('auth'),
    dict: sock('dict'),
    logs: () => logs,
    /** CPU time of all the daemon's threads so far, in ns (the first field of schedstat). */
    cpuNs() {
      let ns = 0;
      for (const t of readdirSync(`/proc/${child.pid}/task`)) {
        try {
          ns += Number(readFileSync(`/proc/${child.pid}/task/${t}/schedstat`, 'utf8').split(' ')[0]);
        } catch {
          /* the thread ended meanwhile */
        }
      }
      return ns;
    },
    /** The sum of a metric's samples (all label sets). */
    async metric(metric) {
      const text = await (await fetch(`${base}/metrics`, { headers: { connection: 'close' } })).text();
      return text
        .split('\n')
        .filter((l) => l.startsWith(`${metric} `) || l.startsWith(`${metric}{`))
        .reduce((a, l) => a + Number(l.split(' ').at(-1)), 0);
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(t);
    },
  };
  for (const deadline = Date.now() + 30_000; ; await sleep(50)) {
    if (child.exitCode !== null) throw new Error(`daemon ${name} exited with ${child.exitCode}:\n${logs}`);
    try {
      if ((await fetch(`${base}/readyz`, { headers: { connection: 'close' } })).status === 200) break;
    } catch {
      /* not listening yet */
    }
    if (Date.now() > deadline) {
      await daemon.stop();
      throw new Error(`daemon ${name} not ready after 30 s:\n${logs}`);
    }
  }
  return daemon;
}

/**
 * Waits until no daemon has write-back values pending and no write-back statement runs in
 * PostgreSQL, seen `checks` times `gapMs` apart (a flush takes the values first, then
 * sends them: two checks close that gap; one is enough between short slices, where only
 * the default's once-a-minute flush can come).
 */
async function quiesce(daemons, sql, database, { checks = 2, gapMs = 100 } = {}) {
  const deadline = Date.now() + 30_000;
  for (let quiet = 0; ; ) {
    if (Date.now() > deadline) throw new Error('write-back still busy after 30 s');
    const pending = (await Promise.all(daemons.map((d) => d.metric('mailmapd_writeback_pending')))).reduce((a, b) => a + b, 0);
    const busy = (
      await sql.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND application_name = 'mailmapd-writeback' AND state <> 'idle'`, [
        database,
      ])
    ).rows[0].n;
    quiet = pending === 0 && busy === 0 ? quiet + 1 : 0;
    if (quiet >= checks) return;
    await sleep(gapMs);
  }
}

/**
 * Shares (per cent of the non-idle samples) of a V8 .cpuprofile: samples with a recording
 * frame on their stack (src/writeback/, or serve.ts's onLogin hook), those inside the
 * writer's login(), inside the pg client (the write-back's statements, and the sync's), GC.
 */
function profileShares(profile) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const on = (sample, test) => {
    for (let id = sample; id !== undefined; id = parent.get(id)) if (test(byId.get(id).callFrame)) return true;
    return false;
  };
  const counts = { idle: 0, recording: 0, login: 0, pg: 0, gc: 0 };
  for (const s of profile.samples) {
    if (on(s, (f) => f.functionName === '(idle)')) {
      counts.idle++;
      continue;
    }
    if (on(s, (f) => f.url.includes('/dist/writeback/') || (f.url.endsWith('/dist/serve.js') && f.functionName.endsWith('onLogin')))) counts.recording++;
    if (on(s, (f) => f.url.endsWith('/dist/writeback/writer.js') && f.functionName === 'login')) counts.login++;
    if (on(s, (f) => f.url.includes('/node_modules/pg'))) counts.pg++;
    if (on(s, (f) => f.functionName === '(garbage collector)')) counts.gc++;
  }
  const busy = profile.samples.length - counts.idle;
  return { recording: (100 * counts.recording) / busy, login: (100 * counts.login) / busy, pg: (100 * counts.pg) / busy, gc: (100 * counts.gc) / busy };
}

/** The q-quantile, interpolated between the two nearest values. */
const quantile = (xs, q) => {
  const s = [...xs].sort((a, b) => a - b);
  const at = (s.length - 1) * q;
  const lo = Math.floor(at);
  return lo + 1 < s.length ? s[lo] + (s[lo + 1] - s[lo]) * (at - lo) : s[lo];
};
const median = (xs) => quantile(xs, 0.5);

function shuffled(xs) {
  const a = [...xs];
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}

export async function run(log) {
  const { migrate } = await load('db/schema.js');

  const name = `mailmapd_bench_wb_${process.pid}`;
  const admin = new pg.Client({ connectionString: server });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  const u = new URL(server);
  u.pathname = `/${name}`;
  const url = u.toString();
  const sql = new pg.Client({ connectionString: url });
  await sql.connect();
  await migrate(sql);
  await sql.query(`INSERT INTO mailmapd.domains (name) VALUES ('bench.test')`);
  await sql.query(
    `INSERT INTO mailmapd.mailboxes (address, password) SELECT 'u' || i || '@bench.test', '{PLAIN}secret' FROM generate_series(0, ${USERS - 1}) i`,
  );
  await sql.query('ALTER TABLE mailmapd.last_logins SET (autovacuum_enabled = off); ALTER TABLE mailmapd.quota_usage SET (autovacuum_enabled = off)');

  const dir = mkdtempSync(join(tmpdir(), 'mailmapd-bench-writeback-'));
  let daemons = {};
  const stopAll = async () => {
    for (const d of Object.values(daemons)) await d.stop();
    daemons = {};
  };
  try {
    const fmt = (xs) => `${median(xs).toFixed(3)} (${Math.min(...xs).toFixed(3)}–${Math.max(...xs).toFixed(3)})`;
    const fmtQ = (xs) => `${median(xs).toFixed(3)} (middle half ${quantile(xs, 0.25).toFixed(3)}–${quantile(xs, 0.75).toFixed(3)})`;
    let failed = 0;
    log(
      `${USERS} mailboxes, ${CONNECTIONS} socketmap + ${CONNECTIONS} auth-client connections at once, cached {PLAIN} logins; one daemon per mode, default config otherwise`,
    );

    // The user's figure, default against off, in short slices: the other processes of a
    // shared machine come and go over seconds, so slices a quarter of a second long, taken
    // in turn, meet nearly the same machine; many blocks, and the median of their ratios.
    {
      const modes = ['off', 'control', 'default'];
      log(
        `slices: ${BLOCKS} blocks of A B C C B A (order shuffled per block), ${SLICE_MS} ms per slice, in ${SETS} sets of fresh daemons (one discarded warm-up each), connections kept; before each slice every write-back idle`,
      );
      const ratios = Object.fromEntries(['control', 'default'].map((m) => [m, { lookups: [], logins: [], cpu: [] }]));
      // Fresh daemons for each set of blocks: two processes of one build may differ by a few
      // per cent (the control shows it); new ones each set spread that over the modes.
      for (let set = 0; set < SETS; set++) {
        for (const mode of shuffled(modes)) daemons[mode] = await startDaemon(dir, mode, url, MODES[mode].config);
        const all = Object.values(daemons);
        const clients = {};
        for (const mode of modes) clients[mode] = await openClients(daemons[mode].socketmap, daemons[mode].auth);
        try {
          for (const mode of shuffled(modes)) {
            await quiesce(all, sql, name);
            await drive(clients[mode], SECONDS * 1000); // warm-up, discarded: JIT, credential cache
          }
          await quiesce(all, sql, name);
          for (let block = 0; block < BLOCKS / SETS; block++) {
            const order = shuffled(modes);
            const sums = Object.fromEntries(modes.map((m) => [m, { lookups: 0, logins: 0, requests: 0, cpuNs: 0 }]));
            for (const mode of [...order, ...[...order].reverse()]) {
              await quiesce(all, sql, name, { checks: 1, gapMs: 10 });
              const cpu0 = daemons[mode].cpuNs();
              const r = await drive(clients[mode], SLICE_MS);
              const sm = sums[mode];
              sm.cpuNs += daemons[mode].cpuNs() - cpu0;
              sm.lookups += r.lookups;
              sm.logins += r.logins;
              sm.requests += r.requests;
              failed += r.failed;
            }
            for (const m of ['control', 'default']) {
              ratios[m].lookups.push(sums[m].lookups / sums.off.lookups);
              ratios[m].logins.push(sums[m].logins / sums.off.logins);
              ratios[m].cpu.push(sums[m].cpuNs / sums[m].requests / (sums.off.cpuNs / sums.off.requests));
            }
          }
        } finally {
          for (const c of Object.values(clients)) c.close();
          await stopAll();
        }
      }
      log(`ratio to "off", median of ${BLOCKS} blocks (middle half of the blocks); throughput: higher is faster, CPU per request: higher costs more`);
      for (const m of ['control', 'default']) {
        log(`  ${MODES[m].label}:\n    socketmap ${fmtQ(ratios[m].lookups)}, logins ${fmtQ(ratios[m].logins)}, CPU per request ${fmtQ(ratios[m].cpu)}`);
      }
    }

    // All modes, the every-login stress one too, in rows long enough to hold its flushes.
    log(
      `rows: ${ROUNDS} rounds, ${SECONDS} s per row, each: fresh daemons (started in shuffled order, one discarded warm-up row each), then rows A B C D D C B A (order shuffled); before a row of another mode than the last, every write-back idle`,
    );
    log("ratio to \"off\" per round: a mode's two rows over off's two; CPU: the daemon process's CPU time per request (lookup or login)");

    const compared = Object.keys(MODES).filter((m) => m !== 'off');
    const ratios = Object.fromEntries(compared.map((m) => [m, { lookups: [], logins: [], cpu: [] }]));
    const written = Object.fromEntries(compared.map((m) => [m, 0]));
    for (let round = 1; round <= ROUNDS; round++) {
      for (const mode of shuffled(Object.keys(MODES))) daemons[mode] = await startDaemon(dir, mode, url, MODES[mode].config);
      const all = Object.values(daemons);
      for (const d of shuffled(all)) {
        await quiesce(all, sql, name);
        await both(d.socketmap, d.auth); // warm-up, discarded: JIT, credential cache
      }
      const order = shuffled(Object.keys(MODES));
      const sums = Object.fromEntries(Object.keys(MODES).map((m) => [m, { lookups: 0, logins: 0, requests: 0, cpuNs: 0 }]));
      let previous;
      for (const mode of [...order, ...[...order].reverse()]) {
        // A mode's own flushes may run in its rows (they are its cost: the middle pair runs
        // back to back), nobody else's.
        if (mode !== previous) await quiesce(all, sql, name);
        previous = mode;
        const d = daemons[mode];
        const cpu0 = d.cpuNs();
        const r = await both(d.socketmap, d.auth);
        const cpuNs = d.cpuNs() - cpu0;
        failed += r.failed;
        const s = sums[mode];
        s.lookups += r.lookups;
        s.logins += r.logins;
        s.requests += r.requests;
        s.cpuNs += cpuNs;
        log(
          `round ${String(round).padStart(2)}  ${mode.padEnd(7)}  socketmap ${r.lookups.toFixed(0).padStart(6)} lookups/s   logins ${r.logins.toFixed(0).padStart(6)} logins/s   CPU ${(cpuNs / r.requests / 1000).toFixed(2)} µs/request${r.failed ? `  (${r.failed} failed!)` : ''}`,
        );
      }
      for (const m of compared) {
        ratios[m].lookups.push(sums[m].lookups / sums.off.lookups);
        ratios[m].logins.push(sums[m].logins / sums.off.logins);
        ratios[m].cpu.push(sums[m].cpuNs / sums[m].requests / (sums.off.cpuNs / sums.off.requests));
      }
      await quiesce(all, sql, name);
      for (const m of compared) written[m] += await daemons[m].metric('mailmapd_writeback_written_total');
      if (round < ROUNDS) await stopAll();
    }
    log(`ratio to "off", median of ${ROUNDS} rounds (lowest–highest); throughput: higher is faster, CPU per request: higher costs more`);
    for (const m of compared) {
      log(
        `  ${MODES[m].label}:\n    socketmap ${fmt(ratios[m].lookups)}, logins ${fmt(ratios[m].logins)}, CPU per request ${fmt(ratios[m].cpu)}; ${written[m]} last-login rows written`,
      );
    }
    if (failed > 0) log(`${failed} logins failed!`);

    // Quota-clone transactions per second over the dict socket of the default daemon.
    const dict = daemons.default.dict;
    const until = performance.now() + SECONDS * 1000;
    const t0 = performance.now();
    const counts = await Promise.all(
      Array.from({ length: CONNECTIONS }, (_, i) =>
        loop(dict, until, async (c, n) => {
          if (n === 0) c.ask('H3\t2\t0\t\tquota\n', () => 0); // no reply to the handshake
          const user = `u${(i * 131 + n) % USERS}@bench.test`;
          await c.ask(`B${n + 1}\t${user}\nS${n + 1}\tpriv/quota/storage\t${n * 1000}\nS${n + 1}\tpriv/quota/messages\t${n}\nC${n + 1}\n`, lineEnd(/O\d+\n/));
        }),
      ),
    );
    const secs = (performance.now() - t0) / 1000;
    const w0 = performance.now();
    await quiesce([daemons.default], sql, name);
    const drainMs = performance.now() - w0;
    const rows = (await sql.query('SELECT count(*)::int AS n FROM mailmapd.quota_usage')).rows[0].n;
    log(
      `quota dict: ${(counts.reduce((a, b) => a + b, 0) / secs).toFixed(0)} commits/s over ${CONNECTIONS} connections; ${rows} quota_usage rows, all written ${drainMs.toFixed(0)} ms after the load stopped`,
    );

    // Where the time goes, which the machine's noise does not blur: each mode's daemon under
    // the same load with V8's sampling profiler, and the share of its busy samples spent in
    // recording (src/writeback/ and the onLogin hook that calls it).
    await stopAll();
    log(`CPU profile (${PROFILE_ROWS} rows per daemon, whole process life): share of the daemon's busy samples`);
    for (const mode of ['off', 'default', 'every']) {
      const profDir = join(dir, `profile-${mode}`);
      const d = await startDaemon(dir, mode, url, MODES[mode].config, ['--cpu-prof', `--cpu-prof-dir=${profDir}`, '--cpu-prof-interval=100']);
      daemons[mode] = d;
      for (let i = 0; i < PROFILE_ROWS; i++) await both(d.socketmap, d.auth);
      await quiesce([d], sql, name);
      await stopAll();
      const file = readdirSync(profDir).find((f) => f.endsWith('.cpuprofile'));
      const p = profileShares(JSON.parse(readFileSync(join(profDir, file), 'utf8')));
      log(
        `  ${MODES[mode].label}: recording ${p.recording.toFixed(2)}% (the login hook ${p.login.toFixed(2)}%), pg client ${p.pg.toFixed(2)}%, GC ${p.gc.toFixed(2)}%`,
      );
    }
  } finally {
    await stopAll();
    await sql.end();
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.end();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  await run(console.log);
}
