// Login benchmarks: logins per second through each door, for a cached and an uncached
// password (SHA512-CRYPT, rounds 5000), side by side in one run with the same logins
// against Dovecot's own passwd-file passdb:
//   - mailmapd's auth-client socket (what Postfix SMTP AUTH uses), 8 connections;
//   - a real Dovecot 2.3 whose passdb is checkpassword → bin/mailmapd-checkpassword →
//     mailmapd (one fork per login), driven over Dovecot's own auth-client socket;
//   - the same Dovecot with passdb passwd-file (no mailmapd at all);
//   - bin/mailmapd-checkpassword spawned directly (fork + exec + one request), per-login wall time.
// The load generator speaks the auth-client protocol to every socket, one request at a time
// per connection like Postfix. Needs `npm run build`; Dovecot rows need root and dovecot-core.
// Runnable alone: node bench/logins.mjs

import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CONNECTIONS, HASH, load, loginsPerSecond, SECONDS, sleep, USERS } from './auth-load.mjs';

const binary = fileURLToPath(new URL('../bin/mailmapd-checkpassword', import.meta.url));

/** Spawns the program like Dovecot does (fd 3 in, fd 4 out); resolves with its wall time in ms. */
function spawnOnce(socket) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(binary, ['-s', socket], { stdio: ['ignore', 'ignore', 'inherit', 'pipe', 'pipe'], env: { SERVICE: 'imap' } });
    child.stdio[4].resume();
    child.stdio[3].end('u1@bench.test\0secret\0\0');
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(performance.now() - t0) : reject(new Error(`exit ${code}`))));
  });
}

async function startDovecot(dir, name, passdb, userdb) {
  const base = join(dir, name);
  const conf = join(dir, `${name}.conf`);
  writeFileSync(
    conf,
    [
      `base_dir = ${base}`,
      `state_dir = ${base}-state`,
      `log_path = ${base}.log`,
      'protocols =',
      'listen = 127.0.0.1',
      'ssl = no',
      'default_internal_user = dovecot',
      'default_login_user = dovenull',
      'auth_failure_delay = 0',
      `passdb {\n${passdb}\n}`,
      `userdb {\n${userdb}\n}`,
      '',
    ].join('\n'),
  );
  execFileSync('dovecot', ['-c', conf], { stdio: 'ignore' });
  for (let i = 0; i < 200 && !existsSync(join(base, 'auth-client')); i++) await sleep(50);
  return {
    socket: join(base, 'auth-client'),
    stop() {
      try {
        execFileSync('doveadm', ['-c', conf, 'stop'], { stdio: 'ignore' });
      } catch {
        /* already gone */
      }
    },
  };
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
  const { createCheckpasswordHandler } = await load('checkpassword/server.js');

  const dir = mkdtempSync(join(tmpdir(), 'mailmapd-bench-logins-'));
  chmodSync(dir, 0o755);
  const logger = createLogger('error');
  const metrics = createMetrics(false);
  const directory = createDirectory({ recipientDelimiter: '+' });
  const data = emptyData();
  data.domains.set('bench.test', true);
  for (let i = 0; i < USERS; i++) data.mailboxes.set(`u${i}@bench.test`, { password: HASH, quotaBytes: 0, active: true });
  directory.replaceAll(data);
  const pool = createHashPool({ workers: 0, queueLimit: 10_000, defaultScheme: 'CRYPT', metrics, logger });
  const userdb = { mailHome: '/var/vmail/%d/%n', mailUid: 5000, mailGid: 5000 };
  const limits = { maxConnections: 1000, idleTimeoutMs: 60_000 };
  const unix = { mode: 0o666, group: '' };
  const listeners = [];
  const doors = {};
  for (const [kind, cacheSize] of [
    ['cached', 100_000],
    ['uncached', 0],
  ]) {
    const authenticator = createAuthenticator({ directory, pool, logger, metrics, userdb, cacheSize });
    const auth = join(dir, `auth-${kind}`);
    const cp = join(dir, `cp-${kind}`);
    listeners.push(
      await listen(
        parseListenAddress(`unix:${auth}`),
        'auth',
        createAuthClientHandler({ authenticator, logger, metrics, failureDelayMs: 0, maxRequestBytes: 4096 }),
        limits,
        unix,
        logger,
      ),
    );
    listeners.push(
      await listen(
        parseListenAddress(`unix:${cp}`),
        'checkpassword',
        createCheckpasswordHandler({ authenticator, logger, metrics, maxRequestBytes: 4096 }),
        limits,
        unix,
        logger,
      ),
    );
    doors[kind] = { auth, cp };
  }

  const dovecots = [];
  const rows = [];
  const row = (door, cached, r) => {
    rows.push([door, cached, r]);
    log(`${door.padEnd(46)} ${cached.padEnd(9)} ${r.rate.toFixed(0).padStart(7)} logins/s${r.failed ? ` (${r.failed} failed!)` : ''}`);
  };
  try {
    log(`${USERS} users, SHA512-CRYPT (5000 rounds), ${CONNECTIONS} connections, ${SECONDS} s per row, hash workers: one per core`);
    log(`${'door'.padEnd(46)} ${'password'.padEnd(9)} ${'rate'.padStart(16)}`);
    // Warm the cache: every user once.
    await loginsPerSecond(doors.cached.auth);
    row('mailmapd auth-client socket', 'cached', await loginsPerSecond(doors.cached.auth));
    row('mailmapd auth-client socket', 'uncached', await loginsPerSecond(doors.uncached.auth));

    let haveDovecot = false;
    try {
      execFileSync('dovecot', ['--version'], { stdio: 'ignore' });
      haveDovecot = existsSync(binary);
    } catch {
      /* no dovecot-core */
    }
    if (haveDovecot) {
      for (const kind of ['cached', 'uncached']) {
        const args = `  driver = checkpassword\n  args = ${binary} -s unix:${doors[kind].cp}`;
        const d = await startDovecot(dir, `dc-${kind}`, args, args);
        dovecots.push(d);
        row('Dovecot checkpassword -> mailmapd (fork/login)', kind, await loginsPerSecond(d.socket));
      }
      const passwd = join(dir, 'passwd');
      writeFileSync(passwd, Array.from({ length: USERS }, (_, i) => `u${i}@bench.test:${HASH}:5000:5000::/var/vmail/bench.test/u${i}::\n`).join(''));
      chmodSync(passwd, 0o644);
      const d = await startDovecot(dir, 'dc-passwdfile', `  driver = passwd-file\n  args = ${passwd}`, `  driver = passwd-file\n  args = ${passwd}`);
      dovecots.push(d);
      row("Dovecot's own passwd-file passdb", 'uncached', await loginsPerSecond(d.socket));
    } else {
      log('Dovecot rows skipped: dovecot-core or bin/mailmapd-checkpassword missing');
    }

    if (existsSync(binary)) {
      const times = [];
      await spawnOnce(doors.cached.cp);
      const until = performance.now() + SECONDS * 1000;
      while (performance.now() < until) times.push(await spawnOnce(doors.cached.cp));
      times.sort((a, b) => a - b);
      const p = (q) => times[Math.min(times.length - 1, Math.floor(q * times.length))].toFixed(2);
      log(
        `mailmapd-checkpassword spawned directly (cached): p50 ${p(0.5)} ms, p90 ${p(0.9)} ms, p99 ${p(0.99)} ms wall per login, ${(1000 / (times.reduce((a, b) => a + b, 0) / times.length)).toFixed(0)} logins/s sequential`,
      );
      // Asynchronously: the daemon answering it lives in this very process.
      const vsz = await new Promise((resolve) => {
        const sh = spawn(
          '/bin/sh',
          ['-c', `ulimit -v 262144; printf 'u1@bench.test\\0secret\\0\\0' | "${binary}" -s unix:${doors.cached.cp} 3<&0 4>/dev/null`],
          { stdio: 'inherit' },
        );
        sh.on('close', (code) => resolve(code));
      });
      log(`mailmapd-checkpassword under ulimit -v 262144: exit ${vsz}`);
    }
  } finally {
    for (const d of dovecots) d.stop();
    for (const l of listeners) await l.close(0);
    await pool.close();
    rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  await run(console.log);
}
