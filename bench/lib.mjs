// What the benchmarks share: the built daemon's modules, the PostgreSQL they prepare their
// databases on, free loopback ports and percentiles.

import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
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

/** The p-th percentile of xs (not sorted in place); NaN for none. */
export function pct(xs, p) {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
