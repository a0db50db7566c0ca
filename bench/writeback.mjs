// Write-back benchmarks, in one run so that the ratios compare like with like:
//   - socketmap lookups/s and cached logins/s (auth-client socket) measured at the same
//     time, with last-login recording off and on — "on" with last_login_interval = 0, the
//     worst case: every login is buffered and written (the default, 60 s, writes far less);
//     alternated three times, the best of each kept; the load comes from a worker thread;
//   - quota dict commits/s: Dovecot quota-clone transactions (B, S, S, C) over the dict
//     socket, 4 connections, 1000 mailboxes, with the writes reaching PostgreSQL.
// Needs `npm run build` and PostgreSQL on 127.0.0.1:5432 (MAILMAPD_BENCH_PG to change).
// Runnable alone: node bench/writeback.mjs

import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import pg from 'pg';

const dist = new URL('../dist/', import.meta.url);
const load = (p) => import(new URL(p, dist).href);
const server = process.env.MAILMAPD_BENCH_PG ?? 'postgres://postgres@127.0.0.1:5432/postgres';

const USERS = 1000;
const CONNECTIONS = 4;
const SECONDS = 3;

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

async function both(socketmap, auth) {
  const until = performance.now() + SECONDS * 1000;
  const t0 = performance.now();
  const req = (k) => `${'domains'.length + 1 + k.length}:domains ${k},`;
  const [lookups, logins] = await Promise.all([
    Promise.all(Array.from({ length: CONNECTIONS }, () => loop(socketmap, until, (c, n) => c.ask(req(n % 2 ? 'bench.test' : 'other.test'), netstringEnd)))),
    Promise.all(
      Array.from({ length: CONNECTIONS }, (_, i) =>
        loop(auth, until, async (c, n) => {
          if (n === 0) await c.ask(`VERSION\t1\t2\nCPID\t${process.pid}\n`, lineEnd(/DONE\n/));
          const user = `u${(i * 97 + n) % USERS}@bench.test`;
          await c.ask(
            `AUTH\t${n + 1}\tPLAIN\tservice=imap\tno-penalty\trip=192.0.2.${n % 250}\tresp=${Buffer.from(`\0${user}\0secret`).toString('base64')}\n`,
            lineEnd(/(OK|FAIL)\t\d+[^\n]*\n/),
          );
        }),
      ),
    ),
  ]);
  const secs = (performance.now() - t0) / 1000;
  return { lookups: lookups.reduce((a, b) => a + b, 0) / secs, logins: logins.reduce((a, b) => a + b, 0) / secs };
}

/** The load runs in a worker thread: the clients must not share the daemon's event loop. */
function bothInWorker(socketmap, auth) {
  return new Promise((resolve, reject) => {
    const w = new Worker(new URL(import.meta.url), { workerData: { socketmap, auth } });
    w.once('message', resolve);
    w.once('error', reject);
  });
}

export async function run(log) {
  const { createDirectory, emptyData } = await load('directory/directory.js');
  const { createAuthenticator } = await load('auth/authenticator.js');
  const { createHashPool } = await load('password/pool.js');
  const { createLogger } = await load('log.js');
  const { createMetrics } = await load('metrics.js');
  const { listen } = await load('net/listener.js');
  const { parseListenAddress } = await load('net/listen-address.js');
  const { createAuthClientHandler } = await load('authclient/server.js');
  const { createSocketmapHandler } = await load('socketmap/server.js');
  const { createDictHandler } = await load('dict/server.js');
  const { migrate } = await load('db/schema.js');
  const { createWritebackMetrics } = await load('writeback/metrics.js');
  const { nativeStatements } = await load('writeback/statements.js');
  const { createWriter } = await load('writeback/writer.js');

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

  const dir = mkdtempSync(join(tmpdir(), 'mailmapd-bench-writeback-'));
  chmodSync(dir, 0o755);
  const logger = createLogger('error');
  const metrics = createMetrics(false);
  const wm = createWritebackMetrics(metrics.registry);
  const directory = createDirectory({ recipientDelimiter: '+' });
  const data = emptyData();
  data.domains.set('bench.test', true);
  for (let i = 0; i < USERS; i++) data.mailboxes.set(`u${i}@bench.test`, { password: '{PLAIN}secret', quotaBytes: 0, active: true });
  directory.replaceAll(data);
  const pool = createHashPool({ workers: 1, queueLimit: 10_000, defaultScheme: 'CRYPT', metrics, logger });
  const writerWith = (lastLoginIntervalMs) =>
    createWriter({
      url,
      checkRecovery: true,
      statements: nativeStatements,
      logger,
      metrics: wm,
      lastLoginIntervalMs,
      maxPending: 100_000,
      flushIntervalMs: 1000,
      reconnectMaxDelayMs: 1000,
    });
  // "on": every login written (the worst case); "default": last_login_interval's 60 s.
  const writer = writerWith(0);
  const writerDefault = writerWith(60_000);
  const limits = { maxConnections: 1000, idleTimeoutMs: 60_000 };
  const unix = { mode: 0o666, group: '' };
  const userdb = { mailHome: '/var/vmail/%d/%n', mailUid: 5000, mailGid: 5000 };
  const listeners = [];
  const open = async (file, label, handler) => {
    const path = join(dir, file);
    listeners.push(await listen(parseListenAddress(`unix:${path}`), label, handler, limits, unix, logger));
    return path;
  };
  const socketmap = await open('socketmap', 'socketmap', createSocketmapHandler({ directory, logger, metrics, maxRequestBytes: 4096 }));
  const doors = {};
  for (const mode of ['off', 'on', 'default']) {
    const w = mode === 'on' ? writer : writerDefault;
    const onLogin = mode === 'off' ? undefined : (address, ctx) => w.login(address, ctx.service, ctx.remoteIp);
    const authenticator = createAuthenticator({ directory, pool, logger, metrics, userdb, cacheSize: 100_000, onLogin });
    doors[mode] = await open(`auth-${mode}`, 'auth', createAuthClientHandler({ authenticator, logger, metrics, failureDelayMs: 0, maxRequestBytes: 4096 }));
  }
  const dict = await open(
    'dict',
    'dict',
    createDictHandler({ usage: writer.usage, mailbox: (x) => x, logger, metrics, writebackMetrics: wm, maxRequestBytes: 4096 }),
  );

  try {
    log(`${USERS} mailboxes, ${CONNECTIONS} socketmap + ${CONNECTIONS} auth-client connections at once, ${SECONDS} s per row, cached {PLAIN} logins`);
    log('last-login recording "on": last_login_interval = 0 (every login written, the worst case); "default": 60 s');
    await bothInWorker(socketmap, doors.off); // warm up: cache, JIT
    const best = { off: { lookups: 0, logins: 0 }, on: { lookups: 0, logins: 0 }, default: { lookups: 0, logins: 0 } };
    for (const mode of ['off', 'on', 'default', 'off', 'on', 'default', 'off', 'on', 'default']) {
      const r = await bothInWorker(socketmap, doors[mode]);
      log(`recording ${mode.padEnd(7)}  socketmap ${r.lookups.toFixed(0).padStart(7)} lookups/s   logins ${r.logins.toFixed(0).padStart(7)} logins/s`);
      best[mode].lookups = Math.max(best[mode].lookups, r.lookups);
      best[mode].logins = Math.max(best[mode].logins, r.logins);
    }
    await writer.flush();
    const written = (await wm.written.get()).values.find((v) => v.labels.kind === 'last_login')?.value ?? 0;
    log(
      `best of three: socketmap on/off ${(best.on.lookups / best.off.lookups).toFixed(3)}, default/off ${(best.default.lookups / best.off.lookups).toFixed(3)}; logins on/off ${(best.on.logins / best.off.logins).toFixed(3)}, default/off ${(best.default.logins / best.off.logins).toFixed(3)}; ${written} last-login rows written`,
    );

    // Quota-clone transactions per second over the dict socket.
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
    await writer.flush();
    const flushMs = performance.now() - w0;
    const rows = (await sql.query('SELECT count(*)::int AS n FROM mailmapd.quota_usage')).rows[0].n;
    log(
      `quota dict: ${(counts.reduce((a, b) => a + b, 0) / secs).toFixed(0)} commits/s over ${CONNECTIONS} connections; ${rows} quota_usage rows, last flush ${flushMs.toFixed(0)} ms`,
    );
  } finally {
    for (const l of listeners) await l.close(0);
    await writer.stop();
    await writerDefault.stop();
    await pool.close();
    await sql.end();
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.end();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (!isMainThread) {
  parentPort.postMessage(await both(workerData.socketmap, workerData.auth));
} else if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  await run(console.log);
}
