// Where the database is: `database_url`, or the embedded default. Admin commands reach a
// running embedded server on its port and start one themselves only when none runs.

import { connectClient } from './client.js';
import type { Config } from '../config.js';
import type { Logger } from '../log.js';
import { startEmbedded } from './embedded.js';

export interface DatabaseHandle {
  url: string;
  embedded: boolean;
  stop(): Promise<void>;
}

export function embeddedUrl(config: Config): string {
  return `postgres://postgres:postgres@127.0.0.1:${config.embedded_port}/mailmapd`;
}

async function reachable(url: string): Promise<boolean> {
  try {
    await (await connectClient(url, 'mailmapd-probe', 2000)).end();
    return true;
  } catch {
    return false;
  }
}

/** database_primary_url, undefined when it is not set. */
export function primaryUrl(config: Config): string | undefined {
  return config.database_primary_url === '' ? undefined : config.database_primary_url;
}

/** Where writes go: the primary when database_primary_url names one, else `readUrl`. */
export function writeUrl(config: Config, readUrl: string): string {
  return primaryUrl(config) ?? readUrl;
}

export async function openDatabase(config: Config, logger: Logger): Promise<DatabaseHandle> {
  if (config.database_url !== '') return { url: config.database_url, embedded: false, stop: async () => {} };
  const url = embeddedUrl(config);
  if (await reachable(url)) return { url, embedded: true, stop: async () => {} };
  const db = await startEmbedded(config.embedded_data_dir, config.embedded_port, logger);
  return { url: db.url, embedded: true, stop: db.stop };
}

// The multi-host walk (libpq's host list and target_session_attrs) for every connection
// the daemon makes: the sync's reader and primary, and the writer of last logins.
export { connectTarget, resolveUrl, type Target, type TargetOptions } from './target.js';
