// The one way the CLI and the daemon's own setup open a PostgreSQL connection, and the one
// way they run a transaction. (The sync keeps its long-lived listening client to itself.)

import pg from 'pg';
import { TempError } from '../errors.js';
import { redactUrl } from './conninfo.js';

/** Connects, or throws TempError naming the (redacted) URL: unreachable is worth a retry. */
export async function connectClient(url: string, applicationName: string, timeoutMs = 5000, queryTimeoutMs?: number): Promise<pg.Client> {
  const c = new pg.Client({
    connectionString: url,
    connectionTimeoutMillis: timeoutMs,
    application_name: applicationName,
    ...(queryTimeoutMs !== undefined ? { query_timeout: queryTimeoutMs } : {}),
  });
  // A connection lost while idle emits 'error' on the client; the next query reports it.
  c.on('error', () => {});
  try {
    await c.connect();
  } catch (err) {
    await c.end().catch(() => {});
    throw new TempError(`cannot connect to ${redactUrl(url)}: ${(err as Error).message}`);
  }
  return c;
}

/** Runs `fn` with a connected client, closed whatever happens. */
export async function withClient<T>(url: string, applicationName: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = await connectClient(url, applicationName);
  try {
    return await fn(c);
  } finally {
    await c.end().catch(() => {});
  }
}

/**
 * BEGIN, `fn`, COMMIT — or ROLLBACK when `fn` throws or `rollback` is set (a dry run).
 * A ROLLBACK that fails (the connection is gone) never hides the error that caused it.
 */
export async function inTransaction<T>(c: pg.ClientBase, fn: () => Promise<T>, opts: { rollback?: boolean } = {}): Promise<T> {
  await c.query('BEGIN');
  let result: T;
  try {
    result = await fn();
  } catch (err) {
    await c.query('ROLLBACK').catch(() => {});
    throw err;
  }
  await c.query(opts.rollback ? 'ROLLBACK' : 'COMMIT');
  return result;
}

/** Gives a client up at once: end() waits for the server, which on a hung path never answers. */
export function destroyClient(c: pg.Client): void {
  const stream = (c as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream;
  stream?.destroy();
  c.end().catch(() => {});
}
