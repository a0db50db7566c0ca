// Many hosts: commit on the primary → visible in a daemon's directory, p50/p99, for a
// daemon on the primary (NOTIFY), a daemon on a hot standby with database_primary_url
// (the primary's doorbell, then waiting for replay), and one polling the standby alone —
// beside the standby's own replay lag in the same rounds. Then what polling costs while
// nothing changes, at the default interval and at the one measured. A private primary and
// standby are made for the run (initdb, pg_basebackup -R) on free ports, and removed
// afterwards. Runnable alone: node bench/replicas.mjs [changes]
//
// How it measures, and why so:
// - Each daemon runs in a process of its own (replicas-daemon.mjs), as on a mail host, and
//   the three are measured one after another. Run in this process all together, they
//   shared one event loop with each other and with the replay measurement, so each
//   figure carried the others' work.
// - Every figure starts at the same instant: just before the writer sends its UPDATE (an
//   autocommit, so the commit is in it). The standby's replay lag is the time until a
//   client reading the standby every millisecond sees the row: the best a reader of the
//   standby could do, with no doorbell and no catch-up. (Earlier it started when the
//   writer got its answer, which left the primary's commit — fsync included — out of the
//   replay lag but in every daemon's figure.) The daemon stamps the moment the row reached
//   its directory with process.hrtime.bigint(), the machine's monotonic clock, which this
//   process reads too.
// - Commits come at a random phase of the poll, the same gaps for every daemon.
// - The idle cost is the polling daemon's process (all its threads) plus the PostgreSQL
//   backend serving it, from /proc/<pid>/task/*/schedstat (nanoseconds on a CPU), at the
//   default interval and at the one above. The figure measured before in this process
//   (1.66%, then 0.84% of a core) was mostly garbage collection of the two daemons just
//   stopped and of the rounds, not the poll.

import { execFileSync, fork, spawnSync } from 'node:child_process';
import { chownSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { freePort, load, pct, sleep } from './lib.mjs';

const pollMs = 200;
const defaultPollMs = 1000; // sync_poll_interval's default
const idleSlices = 6;
const idleSliceMs = 5000;

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

const ms = (from, to) => Number(to - from) / 1e6;

/** A daemon in a child process: resolves seen(key) with the instant the key reached its directory. */
async function startDaemon(config) {
  const child = fork(fileURLToPath(new URL('./replicas-daemon.mjs', import.meta.url)), [JSON.stringify(config)], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const waiting = new Map();
  const exited = new Promise((resolve) => child.once('exit', resolve));
  await new Promise((resolve, reject) => {
    child.on('message', (m) => {
      if (m.ready) resolve();
      else if (m.seen) waiting.get(m.seen)?.(BigInt(m.at));
    });
    exited.then((code) => reject(new Error(`the daemon exited (${code})`)));
  });
  return {
    pid: child.pid,
    seen: (key) => new Promise((resolve) => waiting.set(key, resolve)),
    async stop() {
      if (child.connected) child.send({ stop: true });
      await Promise.race([exited, sleep(5000)]);
      child.kill();
    },
  };
}

/** Nanoseconds process `pid` (all its threads) has spent on a CPU. */
function cpuNs(pid) {
  let sum = 0n;
  for (const t of readdirSync(`/proc/${pid}/task`)) sum += BigInt(readFileSync(`/proc/${pid}/task/${t}/schedstat`, 'utf8').split(' ')[0]);
  return sum;
}

export async function run(log = console.log, changes = 200) {
  const dir = mkdtempSync(join(tmpdir(), 'mailmapd-bench-replicas-'));
  if (process.getuid?.() === 0)
    chownSync(dir, Number(execFileSync('id', ['-u', 'postgres']).toString()), Number(execFileSync('id', ['-g', 'postgres']).toString()));
  const stops = [];
  try {
    const primary = await cluster(dir);
    stops.push(primary.stop);
    const { migrate } = await load('db/schema.js');
    const w = new pg.Client({ connectionString: primary.url });
    await w.connect();
    await migrate(w);
    await w.query(`INSERT INTO mailmapd.domains (name) VALUES ('d.test');
      INSERT INTO mailmapd.mailboxes (address) SELECT 'user' || i || '@d.test' FROM generate_series(1, 10000) i`);
    const standby = await cluster(dir, primary);
    stops.unshift(standby.stop);
    const replica = new pg.Client({ connectionString: standby.url });
    await replica.connect();

    const configs = [
      { name: 'on the primary (NOTIFY)', databaseUrl: primary.url },
      { name: 'on the standby, database_primary_url (doorbell)', databaseUrl: standby.url, databasePrimaryUrl: primary.url },
      { name: `on the standby, polling every ${pollMs} ms`, databaseUrl: standby.url },
    ];
    // The same gaps between commits for every daemon: at no fixed phase of the poll.
    const gaps = Array.from({ length: changes }, () => Math.random() * pollMs);
    const commit = [];
    let next = 0;
    for (const c of configs) {
      const d = await startDaemon({ ...c, pollIntervalMs: pollMs });
      await sleep(500);
      c.times = [];
      c.replay = [];
      for (let i = 0; i < changes; i++) {
        const key = `user${++next}@d.test`;
        const seen = d.seen(key);
        const start = process.hrtime.bigint();
        await w.query(`UPDATE mailmapd.mailboxes SET quota_bytes = quota_bytes + 1 WHERE address = $1`, [key]);
        commit.push(ms(start, process.hrtime.bigint()));
        for (;;) {
          const r = await replica.query('SELECT quota_bytes FROM mailmapd.mailboxes WHERE address = $1', [key]);
          if (Number(r.rows[0].quota_bytes) > 0) break;
          await sleep(1);
        }
        c.replay.push(ms(start, process.hrtime.bigint()));
        c.times.push(ms(start, await seen));
        await sleep(gaps[i]);
      }
      await d.stop();
    }
    const f = (xs) => `p50 ${pct(xs, 50).toFixed(1)}  p99 ${pct(xs, 99).toFixed(1)}`;
    log(`replicas: ${changes} single-row commits on the primary per daemon, each daemon in its own process, one at a time;`);
    log(`  ms from sending the commit (writer's answer: ${f(commit)}):`);
    for (const c of configs) log(`  ${c.name}: ${f(c.times)}  max ${Math.max(...c.times).toFixed(1)}   (standby's replay, same rounds: ${f(c.replay)})`);
    const [, bell, poll] = configs;
    const behind = bell.times.map((t, i) => t - bell.replay[i]);
    log(
      `  doorbell p99 − replay p99 of its rounds: ${(pct(bell.times, 99) - pct(bell.replay, 99)).toFixed(1)} ms (target ≤ 5); per round, doorbell − replay: ${f(behind)}`,
    );
    log(`  polling p99 − poll interval: ${(pct(poll.times, 99) - pollMs).toFixed(1)} ms (target ≤ 10)`);

    // A polling daemon alone, while nothing changes: its process and its backend on the
    // standby, in slices after a warm-up. The median slice is the steady cost; the mean
    // also holds V8's one-off collections once the process turns idle after the load (its
    // memory reducer, seconds later), which are no cost of polling but are shown.
    for (const interval of [defaultPollMs, pollMs]) {
      const d = await startDaemon({ databaseUrl: standby.url, pollIntervalMs: interval });
      const r = await replica.query(`SELECT pid FROM pg_stat_activity WHERE application_name = 'mailmapd'`);
      if (r.rows.length !== 1) throw new Error(`expected one mailmapd backend on the standby, found ${r.rows.length}`);
      const backend = r.rows[0].pid;
      await sleep(Math.max(5000, 5 * interval));
      const slices = [];
      for (let i = 0; i < idleSlices; i++) {
        const t0 = process.hrtime.bigint();
        const [d0, b0] = [cpuNs(d.pid), cpuNs(backend)];
        await sleep(idleSliceMs);
        const wall = ms(t0, process.hrtime.bigint());
        slices.push({ daemon: ms(d0, cpuNs(d.pid)) / wall, backend: ms(b0, cpuNs(backend)) / wall });
      }
      await d.stop();
      slices.sort((x, y) => x.daemon + x.backend - (y.daemon + y.backend));
      const median = slices[Math.floor(slices.length / 2)];
      const mean = slices.reduce((m, x) => m + x.daemon + x.backend, 0) / slices.length;
      const share = (x) => `${(x * 100).toFixed(2)}%`;
      log(
        `  polling every ${interval} ms${interval === defaultPollMs ? ' (the default)' : ''}, nothing changing: ${share(median.daemon + median.backend)} of a core` +
          ` (daemon ${share(median.daemon)} + its backend ${share(median.backend)}; ${((median.daemon + median.backend) * interval).toFixed(2)} ms a poll;` +
          ` median of ${idleSlices} × ${idleSliceMs / 1000} s; mean ${share(mean)})`,
      );
    }
    await replica.end();
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
