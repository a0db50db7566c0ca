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

export async function openDatabase(config: Config, logger: Logger): Promise<DatabaseHandle> {
  if (config.database_url !== '') return { url: config.database_url, embedded: false, stop: async () => {} };
  const url = embeddedUrl(config);
  if (await reachable(url)) return { url, embedded: true, stop: async () => {} };
  const db = await startEmbedded(config.embedded_data_dir, config.embedded_port, logger);
  return { url: db.url, embedded: true, stop: db.stop };
}

/** Hides credentials when a URL is shown to a person. */
export function redactUrl(url: string): string {
  // libpq's multi-host form is no WHATWG URL: hide the password by pattern.
  const multi = /^(postgres(?:ql)?:\/\/[^:@/?#]*:)[^@/?#]*@([^/?#]*,)/.exec(url);
  if (multi) return url.replace(/^(postgres(?:ql)?:\/\/[^:@/?#]*:)[^@/?#]*@/, '$1***@');
  if (/^postgres(?:ql)?:\/\/[^/?#]*,/.test(url)) return url;
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(unparsable database_url)';
  }
}

// The multi-host walk (libpq's host list and target_session_attrs) for every connection
// the daemon makes: the sync's reader and primary, and the writer of last logins.
export { connectTarget, resolveUrl, type Target, type TargetOptions } from './target.js';
