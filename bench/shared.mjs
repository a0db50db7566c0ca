// Counts shared by every host (the limiter's failures and known sources, the send counts),
// with real daemons (`node dist/cli.js serve`, each a process of its own) on a private
// primary and a hot standby made for the run (initdb, pg_basebackup -R):
//
// - the sharing delay: a failed login on the daemon on the primary, until the daemon on the
//   standby refuses that login (policy_login_reject_after = 1, asked over Dovecot's auth
//   policy request every 2 ms), p50/p99 — with database_primary_url (the doorbell) and
//   without (the standby polled every sync_poll_interval, its default 1 s) — beside the
//   standby's own replay lag (a row committed on the primary, read on the standby every ms);
// - what the sharing writes per 1,000 logins (500 failed, 500 succeeded, each its own
//   mailbox and address: the worst case, no two in one row): rows and WAL bytes, the same
//   logins on a daemon with shared_counts = no subtracted;
// - login and policy throughput with shared_counts = yes and = no in the same run, turn
//   about, the median of each (SASL PLAIN on the auth-client socket, {PLAIN} passwords so
//   that the hashing does not hide the sharing's cost, a third of the logins failing;
//   Postfix policy requests, END-OF-MESSAGE and RCPT of authenticated senders).
//
// Runnable alone: node bench/shared.mjs

import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { freePort, load, pct, privateCluster, sleep } from './lib.mjs';

const cli = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
const secret = 'bench-shared';
const MAILBOXES = 20_000;
const DELAY_ROUNDS = 100;
const THROUGHPUT_S = 4;
const TURNS = 6;

/** A daemon in its own process, on free ports; resolves once /readyz says 200. */
async function daemon(databaseUrl, extra = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'mailmapd-bench-shared-'));
  const ports = { auth: await freePort(), http: await freePort(), policy: await freePort() };
  const lines = {
    database_url: databaseUrl,
    auth_listen: `inet:127.0.0.1:${ports.auth}`,
    socketmap_listen: `inet:127.0.0.1:${await freePort()}`,
    checkpassword_listen: `inet:127.0.0.1:${await freePort()}`,
    http_listen: `127.0.0.1:${ports.http}`,
    policy_listen: `inet:127.0.0.1:${ports.policy}`,
    http_secret: secret,
    snapshot_file: join(dir, 'snapshot'),
    dkim_dir: '',
    log_level: 'warn',
    auth_failure_delay: '0',
    send_limit_hour: '1000000',
    ...extra,
  };
  const config = join(dir, 'mailmapd.conf');
  writeFileSync(
    config,
    Object.entries(lines)
      .map(([k, v]) => `${k} = ${v}\n`)
      .join(''),
  );
  const child = spawn(process.execPath, [cli, 'serve', '-c', config], { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, MAILMAPD_CONFIG: '' } });
  const base = `http://127.0.0.1:${ports.http}`;
  for (let i = 0; ; i++) {
    if (child.exitCode !== null) throw new Error(`the daemon exited (${child.exitCode})`);
    const ok = await fetch(`${base}/readyz`).then(
      (r) => r.status === 200,
      () => false,
    );
    if (ok) break;
    if (i > 600) throw new Error('the daemon did not become ready');
    await sleep(100);
  }
  return {
    ports,
    /** Nanoseconds the daemon's process (all its threads) has spent on a CPU. */
    cpuNs() {
      let sum = 0n;
      for (const t of readdirSync(`/proc/${child.pid}/task`)) sum += BigInt(readFileSync(`/proc/${child.pid}/task/${t}/schedstat`, 'utf8').split(' ')[0]);
      return sum;
    },
    async allow(login, remote) {
      const r = await fetch(`${base}/?command=allow`, {
        method: 'POST',
        body: JSON.stringify({ login, remote, pwhash: '' }),
        headers: { 'content-type': 'application/json', authorization: `Bearer ${secret}` },
      });
      return (await r.json()).status;
    },
    async stop() {
      child.kill('SIGTERM');
      await new Promise((r) => (child.exitCode !== null ? r() : child.once('exit', r)));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A pipelined auth-client connection: login(user, pass, rip) resolves with OK or FAIL. */
async function authClient(port) {
  const s = connect(port, '127.0.0.1');
  await new Promise((r, j) => s.once('connect', r).once('error', j));
  s.setEncoding('utf8');
  s.write('VERSION\t1\t2\nCPID\t77\n');
  const waiting = new Map();
  let buf = '';
  let id = 0;
  s.on('data', (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const m = /^(OK|FAIL)\t(\d+)/.exec(buf.slice(0, i));
      buf = buf.slice(i + 1);
      if (m) {
        waiting.get(m[2])?.(m[1]);
        waiting.delete(m[2]);
      }
    }
  });
  return {
    login(user, pass, rip) {
      const n = String(++id);
      const resp = Buffer.from(`\0${user}\0${pass}`).toString('base64');
      s.write(`AUTH\t${n}\tPLAIN\tservice=imap\tsecured\tno-penalty\tnologin\trip=${rip}\tresp=${resp}\n`);
      return new Promise((r) => waiting.set(n, r));
    },
    close: () => s.destroy(),
  };
}

/** Postfix policy requests, one outstanding per connection: ask(attrs) resolves with the action. */
async function policyClient(port) {
  const s = connect(port, '127.0.0.1');
  await new Promise((r, j) => s.once('connect', r).once('error', j));
  s.setEncoding('utf8');
  let buf = '';
  let pending;
  s.on('data', (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const a = buf.slice(0, i);
      buf = buf.slice(i + 2);
      pending?.(a);
    }
  });
  return {
    ask(attrs) {
      s.write(
        `${Object.entries(attrs)
          .map(([k, v]) => `${k}=${v}\n`)
          .join('')}\n`,
      );
      return new Promise((r) => (pending = r));
    },
    close: () => s.destroy(),
  };
}

const ip = (i) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;

/** Requests per second for `seconds`: `workers` loops, each asking `step(i)` (i counts every request) until the time is up. */
async function rateOf(seconds, workers, step) {
  let done = 0;
  let n = 0;
  const until = Date.now() + seconds * 1000;
  await Promise.all(
    workers.map(async (ask) => {
      while (Date.now() < until) {
        await step(ask, n++);
        done++;
      }
    }),
  );
  return done / seconds;
}

/** Logins per second over `clients` connections of `window` logins each, for `seconds`; a third fail. */
async function loginRate(d, seconds, clients = 2, window = 16) {
  const conns = await Promise.all(Array.from({ length: clients }, () => authClient(d.ports.auth)));
  const rate = await rateOf(
    seconds,
    conns.flatMap((c) => Array.from({ length: window }, () => c)),
    (c, i) => c.login(`user${i % MAILBOXES}@d.test`, i % 3 === 0 ? `wrong${i}` : 'right', ip(i % 50_000)),
  );
  for (const c of conns) c.close();
  return rate;
}

/** Policy requests per second over `clients` connections, for `seconds`: a message's RCPTs and its END-OF-MESSAGE. */
async function policyRate(d, seconds, clients = 16) {
  const conns = await Promise.all(Array.from({ length: clients }, () => policyClient(d.ports.policy)));
  const rate = await rateOf(seconds, conns, (c, i) =>
    c.ask({
      request: 'smtpd_access_policy',
      sasl_username: `user${i % 2000}@d.test`,
      instance: `i${i >> 2}`,
      recipient: `r${i}@elsewhere.test`,
      protocol_state: i % 4 === 3 ? 'END-OF-MESSAGE' : 'RCPT',
      recipient_count: '3',
    }),
  );
  for (const c of conns) c.close();
  return rate;
}

/** Milliseconds from a failed login on `from` until `to` refuses that login, `rounds` times. */
async function sharingDelays(from, to, rounds, first, phaseMs) {
  const c = await authClient(from.ports.auth);
  const delays = [];
  for (let r = 0; r < rounds; r++) {
    const u = `user${first + r}@d.test`;
    // At a random phase of the flush and the poll: each round starts right after the last
    // one's effect, so without this pause every increment would come at the same phase.
    await sleep(Math.random() * phaseMs);
    if ((await c.login(u, 'wrong', '192.0.2.1')) !== 'FAIL') throw new Error('a wrong password logged in');
    const t0 = performance.now();
    for (;;) {
      if ((await to.allow(u, '203.0.113.1')) === -1) break;
      if (performance.now() - t0 > 10_000) throw new Error(`${u}: not shared within 10 s`);
      await sleep(2);
    }
    delays.push(performance.now() - t0);
  }
  c.close();
  return delays;
}

/** The standby's replay lag: a row committed on the primary until a reader of the standby sees it. */
async function replayLags(primary, standby, rounds) {
  const lags = [];
  for (let i = 0; i < rounds; i++) {
    const t0 = performance.now();
    await primary.query('INSERT INTO bench_lag VALUES ($1)', [i]);
    while ((await standby.query('SELECT 1 FROM bench_lag WHERE k = $1', [i])).rowCount === 0) await sleep(1);
    lags.push(performance.now() - t0);
  }
  return lags;
}

const f = (xs) => `p50 ${pct(xs, 50).toFixed(0)} ms, p99 ${pct(xs, 99).toFixed(0)} ms`;
const median = (xs) => pct(xs, 50);

/** Rows in the shared tables and the primary's WAL position. */
async function written(c) {
  const r = await c.query(`SELECT (SELECT count(*) FROM mailmapd.login_failures) + (SELECT count(*) FROM mailmapd.login_sources) AS rows,
    pg_current_wal_lsn()::text AS lsn`);
  return r.rows[0];
}
const walBytes = async (c, from, to) => Number((await c.query('SELECT $2::pg_lsn - $1::pg_lsn AS b', [from, to])).rows[0].b);

/** The sharing's rows and WAL bytes for 1,000 logins on `d` (`first`: the first mailbox used). */
async function perThousand(c, d, first) {
  const before = await written(c);
  const a = await authClient(d.ports.auth);
  // 32 outstanding at most: the daemon closes a connection with more than 128.
  let next = 0;
  const one = async () => {
    for (let i = next++; i < 1000; i = next++) await a.login(`user${first + i}@d.test`, i % 2 ? 'right' : 'wrong', ip(first + i));
  };
  await Promise.all(Array.from({ length: 32 }, one));
  a.close();
  await sleep(2000); // the write-back's next flush
  const after = await written(c);
  return { rows: Number(after.rows) - Number(before.rows), wal: await walBytes(c, before.lsn, after.lsn) };
}

// Long because it is the benchmark's script, one step after another.
export async function run(log = console.log) {
  const primary = await privateCluster();
  let standby;
  const daemons = [];
  const start = async (...args) => {
    const d = await daemon(...args);
    daemons.push(d);
    return d;
  };
  const c = new pg.Client({ connectionString: primary.url });
  c.on('error', () => {});
  try {
    await c.connect();
    const { migrate } = await load('db/schema.js');
    await migrate(c);
    await c.query(`INSERT INTO mailmapd.domains (name) VALUES ('d.test');
      INSERT INTO mailmapd.mailboxes (address, password) SELECT 'user' || i || '@d.test', '{PLAIN}right' FROM generate_series(0, ${MAILBOXES - 1}) i;
      CREATE TABLE bench_lag (k int PRIMARY KEY)`);
    standby = await privateCluster([], primary);
    const s = new pg.Client({ connectionString: standby.url });
    s.on('error', () => {});
    await s.connect();
    const lags = await replayLags(c, s, 200);
    await s.end();
    log(`standby replay lag: ${f(lags)}`);

    const bound = { policy_login_reject_after: '1', policy_reject_after: '1000000', policy_delay_after: '1000000', policy_prefix_reject_after: '1000000' };
    const a = await start(primary.url, bound);
    const bell = await start(standby.url, { ...bound, database_primary_url: primary.url });
    const poll = await start(standby.url, bound);
    log(`sharing delay, a failed login on the primary's daemon → refused by the standby's (${DELAY_ROUNDS} logins each):`);
    log(`  with the doorbell (database_primary_url): ${f(await sharingDelays(a, bell, DELAY_ROUNDS, 0, 250))}`);
    log(`  without (the standby polled every 1 s):    ${f(await sharingDelays(a, poll, DELAY_ROUNDS, DELAY_ROUNDS, 1000))}`);
    for (const d of daemons.splice(0)) await d.stop();

    const wide = { policy_login_reject_after: '1000000', policy_reject_after: '1000000', policy_delay_after: '1000000', policy_prefix_reject_after: '1000000' };
    const on = await start(primary.url, wide);
    const off = await start(primary.url, { ...wide, shared_counts: 'no' });
    const shared = await perThousand(c, on, 2000);
    const local = await perThousand(c, off, 4000);
    log(
      `written per 1,000 logins (500 failed, 500 succeeded, each its own mailbox and address): ${shared.rows} rows, ${((shared.wal - local.wal) / 1024).toFixed(0)} KiB of WAL more than with shared_counts = no (${(shared.wal / 1024).toFixed(0)} vs ${(local.wal / 1024).toFixed(0)} KiB, last logins included in both)`,
    );

    // Throughput, and the daemon's own CPU per request (steadier than a rate on a shared
    // machine: what other processes take does not count in it), turn about.
    const rates = { logins: { on: [], off: [] }, policy: { on: [], off: [] } };
    const cpu = { logins: { on: [], off: [] }, policy: { on: [], off: [] } };
    const measure = async (what, k, d, rate) => {
      const c0 = d.cpuNs();
      const r = await rate(d, THROUGHPUT_S);
      rates[what][k].push(r);
      cpu[what][k].push(Number(d.cpuNs() - c0) / 1000 / (r * THROUGHPUT_S));
    };
    // Logins first, then policy requests, a pause between: the failures the login turns
    // shared are read back for a few seconds after, which is the logins' cost, not the policy's.
    for (const [what, rate] of [
      ['logins', loginRate],
      ['policy', policyRate],
    ]) {
      for (let t = 0; t < TURNS; t++) {
        for (const k of t % 2 ? ['off', 'on'] : ['on', 'off']) await measure(what, k, k === 'on' ? on : off, rate);
      }
      await sleep(10_000);
    }
    for (const what of ['logins', 'policy']) {
      const r = rates[what];
      const u = cpu[what];
      log(
        `${what}/s (median of ${TURNS} turns of ${THROUGHPUT_S} s): shared ${median(r.on).toFixed(0)}, local ${median(r.off).toFixed(0)}: ×${(median(r.on) / median(r.off)).toFixed(3)}; daemon CPU per request ${median(u.on).toFixed(1)} vs ${median(u.off).toFixed(1)} µs: ×${(median(u.off) / median(u.on)).toFixed(3)} as throughput`,
      );
      log(`  (turns: on ${r.on.map((x) => x.toFixed(0)).join('/')}, off ${r.off.map((x) => x.toFixed(0)).join('/')})`);
    }
  } finally {
    for (const d of daemons) await d.stop().catch(() => {});
    await c.end().catch(() => {});
    standby?.destroy();
    primary.destroy();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await run();
