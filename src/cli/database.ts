// How every CLI verb reaches the database: the configured one, or the embedded default
// (reusing a running daemon's, starting it for the duration of the command otherwise).
// Unreachable is a temporary failure (exit 75), never a usage error.

import type pg from 'pg';
import type { Config } from '../config.js';
import { withClient } from '../db/client.js';
import { openDatabase, writeUrl, type DatabaseHandle } from '../db/connect.js';
import { redactUrl } from '../db/conninfo.js';
import { resolveUrl } from '../db/target.js';
import { createLogger, errorMessage } from '../log.js';
import { TempError } from '../errors.js';

/** Runs `fn` with the database URL; stops an embedded server the command had to start. */
export async function withDatabaseUrl<T>(config: Config, fn: (url: string) => Promise<T>): Promise<T> {
  let db: DatabaseHandle;
  try {
    db = await openDatabase(config, createLogger('warn'), 'command');
  } catch (err) {
    if (err instanceof TempError) throw err;
    throw new TempError(`cannot start or reach the database: ${errorMessage(err)}`);
  }
  try {
    // Commands write: to the primary when one is named, else to the server of
    // database_url that libpq's rules pick (a multi-host list is walked here).
    let url = db.url;
    try {
      url = await resolveUrl(writeUrl(config, db.url), { connectTimeoutMs: 5000 });
    } catch (err) {
      throw new TempError(`cannot connect to ${redactUrl(url)}: ${errorMessage(err)}`);
    }
    return await fn(url);
  } finally {
    await db.stop();
  }
}

/** Runs `fn` with a connected client; the connection is closed whatever happens. */
export function withDatabaseClient<T>(config: Config, applicationName: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  return withDatabaseUrl(config, (url) => withClient(url, applicationName, fn));
}
