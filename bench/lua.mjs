// Dovecot Lua benchmark: logins per second through a real Dovecot 2.3 whose passdb and
// userdb are config/dovecot/auth-mailmapd.lua → HTTP → mailmapd, beside Dovecot's own
// passwd-file passdb holding the same users and hashes, in one run. Same method as
// bench/logins.mjs (so its checkpassword rows compare): SHA512-CRYPT (5000 rounds),
// 200 users, 8 auth-client connections to Dovecot, one PLAIN login at a time each.
//   - Lua, mailmapd's verified-credential cache warm ("cached") and disabled ("uncached");
//   - passwd-file with Dovecot's auth cache ("cached") and without ("uncached");
//   - passwd-file with {PLAIN} passwords: Dovecot's own ceiling, no hashing anywhere.
// Also counts the HTTP connections Dovecot opened (keep-alive: one per auth-worker).
// Needs `npm run build`, root, dovecot-core and dovecot-auth-lua. Runnable alone: node bench/lua.mjs

import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CONNECTIONS, HASH, load, loginsPerSecond, SECONDS, sleep, USERS } from './auth-load.mjs';

const luaFile = fileURLToPath(new URL('../config/dovecot/auth-mailmapd.lua', import.meta.url));

async function startDovecot(dir, name, lines) {
  const base = join(dir, name);
  const conf = join(dir, `${name}.conf`);
  writeFileSync(
    conf,
    [`base_dir = ${base}`, `state_dir = ${base}-state`, `log_path = ${base}.log`, 'protocols =', 'ssl = no', 'auth_failure_delay = 0', ...lines, ''].join('\n'),
  );
  // stdio ignored: the daemonized master would hold a pipe open.
  execFileSync('dovecot', ['-c', conf], { stdio: 'ignore' });
  const up = () => existsSync(join(base, 'auth-client')) && existsSync(join(base, 'master.pid'));
  for (let i = 0; i < 200 && !up(); i++) await sleep(50);
  if (!up()) throw new Error(`${name}: Dovecot did not start, see ${base}.log`);
  const pid = Number(readFileSync(join(base, 'master.pid'), 'utf8'));
  return {
    socket: join(base, 'auth-client'),
    /** Stops this instance and waits for its master to exit (doveadm stop only signals). */
    async stop() {
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        return; // already gone
      }
      for (let i = 0; i < 200; i++) {
        try {
          process.kill(pid, 0);
        } catch {
          return;
        }
        await sleep(50);
      }
    },
  };
}

export async function run(log) {
  execFileSync('dovecot', ['--version'], { stdio: 'ignore' }); // throws without dovecot-core
  if (!existsSync('/usr/lib/dovecot/modules/auth/libauthdb_lua.so')) throw new Error('dovecot-auth-lua is not installed');
  const { createDirectory, emptyData } = await load('directory/directory.js');
  const { createAuthenticator } = await load('auth/authenticator.js');
  const { createHashPool } = await load('password/pool.js');
  const { createLogger } = await load('log.js');
  const { createMetrics } = await load('metrics.js');
  const { parseConfigText } = await load('config.js');
  const { serveHttp } = await load('http/server.js');
  const { createDovecotRoutes } = await load('dovecot/route.js');
  const { dovecotLuaConfig23 } = await load('cli/dovecot-lua-config.js');

  const dir = mkdtempSync(join(tmpdir(), 'mailmapd-bench-lua-'));
  chmodSync(dir, 0o755);
  const logger = createLogger('error');
  const directory = createDirectory({ recipientDelimiter: '+' });
  const data = emptyData();
  data.domains.set('bench.test', true);
  for (let i = 0; i < USERS; i++) data.mailboxes.set(`u${i}@bench.test`, { password: HASH, quotaBytes: 0, active: true });
  directory.replaceAll(data);
  const pool = createHashPool({ workers: 0, queueLimit: 10_000, defaultScheme: 'CRYPT', metrics: createMetrics(false), logger });

  const servers = [];
  const dovecots = [];
  const rows = [];
  const row = (door, cached, r, extra = '') => {
    rows.push([door, cached, r]);
    log(`${door.padEnd(40)} ${cached.padEnd(9)} ${r.rate.toFixed(0).padStart(7)} logins/s${r.failed ? ` (${r.failed} failed!)` : ''}${extra}`);
  };
  try {
    log(`${USERS} users, SHA512-CRYPT (5000 rounds), ${CONNECTIONS} connections to Dovecot, ${SECONDS} s per row, mailmapd hash workers: one per core`);
    log(`${'door'.padEnd(40)} ${'password'.padEnd(9)} ${'rate'.padStart(16)}`);

    const lua = {};
    for (const [kind, cacheSize] of [
      ['cached', 100_000],
      ['uncached', 0],
    ]) {
      const metrics = createMetrics(true);
      const config = parseConfigText('http_listen = 127.0.0.1:0', 'bench'); // any free port
      const authenticator = createAuthenticator({
        directory,
        pool,
        logger,
        metrics,
        userdb: { mailHome: '/var/vmail/%d/%n', mailUid: 5000, mailGid: 5000 },
        cacheSize,
      });
      const routes = createDovecotRoutes({ authenticator, directory, config, logger, metrics });
      const http = await serveHttp(
        config.http_listen[0],
        routes,
        { maxConnections: 1000, maxBodyBytes: 65536, idleTimeoutMs: 60_000 },
        { mode: 0o660, group: '' },
        logger,
        metrics,
      );
      servers.push(http);
      // The snippet `mailmapd dovecot-config --lua` prints, pointed at the port actually bound.
      const snippet = dovecotLuaConfig23(parseConfigText(`http_listen = 127.0.0.1:${http.port}`, 'bench'), { luaFile });
      lua[kind] = { metrics, dovecot: await startDovecot(dir, `dc-lua-${kind}`, [snippet]) };
      dovecots.push(lua[kind].dovecot);
    }
    const connections = async (m) =>
      (await m.registry.getSingleMetric('mailmapd_connections_total').get()).values.find((v) => v.labels.listener === 'http')?.value ?? 0;

    await loginsPerSecond(lua.cached.dovecot.socket, 1); // warm: every user once, auth-workers started
    const before = await connections(lua.cached.metrics);
    const cached = await loginsPerSecond(lua.cached.dovecot.socket);
    const opened = (await connections(lua.cached.metrics)) - before;
    row('Dovecot Lua -> mailmapd (HTTP)', 'cached', cached, `, ${opened} new HTTP connections`);
    await loginsPerSecond(lua.uncached.dovecot.socket, 1);
    row('Dovecot Lua -> mailmapd (HTTP)', 'uncached', await loginsPerSecond(lua.uncached.dovecot.socket));

    const passwd = join(dir, 'passwd');
    writeFileSync(passwd, Array.from({ length: USERS }, (_, i) => `u${i}@bench.test:${HASH}:5000:5000::/var/vmail/bench.test/u${i}::\n`).join(''));
    chmodSync(passwd, 0o644);
    const pf = [`passdb {\n  driver = passwd-file\n  args = ${passwd}\n}`, `userdb {\n  driver = passwd-file\n  args = ${passwd}\n}`];
    const pfCached = await startDovecot(dir, 'dc-pf-cached', ['auth_cache_size = 10M', 'auth_cache_ttl = 1h', ...pf]);
    dovecots.push(pfCached);
    await loginsPerSecond(pfCached.socket, 1);
    const pfc = await loginsPerSecond(pfCached.socket);
    row("Dovecot's own passwd-file passdb", 'cached', pfc);
    const pfUncached = await startDovecot(dir, 'dc-pf-uncached', ['auth_cache_size = 0', ...pf]);
    dovecots.push(pfUncached);
    row("Dovecot's own passwd-file passdb", 'uncached', await loginsPerSecond(pfUncached.socket));
    // No hashing at all: Dovecot's ceiling, which shows what the HTTP round trip costs.
    const plainFile = join(dir, 'passwd-plain');
    writeFileSync(plainFile, Array.from({ length: USERS }, (_, i) => `u${i}@bench.test:{PLAIN}secret:5000:5000::/var/vmail/bench.test/u${i}::\n`).join(''));
    chmodSync(plainFile, 0o644);
    const pfPlain = await startDovecot(dir, 'dc-pf-plain', [
      'auth_cache_size = 0',
      `passdb {\n  driver = passwd-file\n  args = ${plainFile}\n}`,
      `userdb {\n  driver = passwd-file\n  args = ${plainFile}\n}`,
    ]);
    dovecots.push(pfPlain);
    const pfp = await loginsPerSecond(pfPlain.socket);
    row("Dovecot's own passwd-file, {PLAIN}", 'no hash', pfp);
    log(`Lua cached / passwd-file cached (same SHA512-CRYPT users): ${(cached.rate / pfc.rate).toFixed(2)} (target: at least 0.5)`);
    log(`Lua cached / passwd-file {PLAIN} (no hashing anywhere): ${(cached.rate / pfp.rate).toFixed(2)}`);
  } finally {
    await Promise.all(dovecots.map((d) => d.stop()));
    for (const s of servers) await s.close(0);
    await pool.close();
    rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  await run(console.log);
}
