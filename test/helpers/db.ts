// A throwaway database per test file on the machine's PostgreSQL (127.0.0.1:5432, trust
// auth), so that test files running in parallel never see each other's rows.

import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { migrate } from '../../src/db/schema.js';

// test/helpers/pg-global-setup.ts chooses the server (MAILMAPD_TEST_PG, 5432 or an embedded one)
// and passes it on as TEST_PG_SERVER_URL.
export const serverUrl = process.env.TEST_PG_SERVER_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

export interface TestDatabase {
  name: string;
  url: string;
  /** A connected client for the test's own SQL. */
  sql: pg.Client;
  drop(): Promise<void>;
}

export function urlFor(database: string, base = serverUrl): string {
  const u = new URL(base);
  u.pathname = `/${database}`;
  return u.toString();
}

export async function createTestDatabase(opts: { migrate?: boolean; base?: string } = {}): Promise<TestDatabase> {
  const base = opts.base ?? serverUrl;
  const name = `mailmapd_test_${randomBytes(5).toString('hex')}`;
  const admin = new pg.Client({ connectionString: base });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = urlFor(name, base);
  const sql = new pg.Client({ connectionString: url });
  await sql.connect();
  if (opts.migrate !== false) await migrate(sql);
  return {
    name,
    url,
    sql,
    async drop() {
      await sql.end().catch(() => {});
      const a = new pg.Client({ connectionString: base });
      await a.connect();
      try {
        await a.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await a.end();
      }
    },
  };
}

/** Polls `probe` until it returns true or `ms` pass; returns how long it took. */
export async function waitFor(probe: () => boolean | Promise<boolean>, ms = 5000, what = 'condition'): Promise<number> {
  const t0 = Date.now();
  for (;;) {
    if (await probe()) return Date.now() - t0;
    if (Date.now() - t0 > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
