// Where the database is: `database_url`, or the embedded default. Admin commands reach a
// running embedded server on its port and start one themselves only when none runs; while
// another process is starting it (a fresh clone's first `npm start`), they wait for it.

import { setTimeout as sleep } from 'node:timers/promises';
import { connectClient, withClient } from './client.js';
import type { Config } from '../config.js';
import { TempError } from '../errors.js';
import type { Logger } from '../log.js';
import { startEmbedded } from './embedded.js';
import { currentOwner, takeOwnership, type OwnerRole } from './embedded-owner.js';
import { migrate } from './schema.js';

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

/** How long to wait for another process's embedded server: a first initdb takes seconds. */
const WAIT_FOR_OWNER_MS = 120_000;
const POLL_MS = 250;

/**
 * The embedded default is ours to shape: whoever opens it brings its schema up to date
 * (the migration takes an advisory lock, so a daemon and a command doing it at once agree).
 * An external database is migrated by its administrator with `mailmapd migrate`.
 */
async function migrateEmbedded(url: string, logger: Logger): Promise<void> {
  const r = await withClient(url, 'mailmapd', migrate);
  if (r.applied.length > 0) logger.info('migrated the embedded database', { from: r.from, to: r.to });
}

async function useRunning(url: string, logger: Logger): Promise<DatabaseHandle> {
  await migrateEmbedded(url, logger);
  return { url, embedded: true, stop: async () => {} };
}

/**
 * The embedded server: a running one is used; one another process is starting is waited
 * for; else this process starts it and records itself as its owner (embedded-owner.ts).
 */
async function openEmbedded(config: Config, logger: Logger, role: OwnerRole, now: () => number): Promise<DatabaseHandle> {
  const url = embeddedUrl(config);
  const dir = config.embedded_data_dir;
  const deadline = now() + WAIT_FOR_OWNER_MS;
  let said = false;
  for (;;) {
    const owner = currentOwner(dir);
    // A command's server goes away when the command ends: wait for that, then start our own.
    if (owner?.role !== 'command' && (await reachable(url))) return useRunning(url, logger);
    if (owner === undefined) {
      const held = takeOwnership(dir, role);
      if (held !== undefined) {
        try {
          const db = await startEmbedded(dir, config.embedded_port, logger);
          await migrateEmbedded(db.url, logger);
          return { url: db.url, embedded: true, stop: () => db.stop().finally(held.release) };
        } catch (err) {
          held.release();
          throw err;
        }
      }
      continue; // another process took it between our look and our try: look again
    }
    if (now() > deadline) {
      throw new TempError(
        `the embedded PostgreSQL in ${dir} is held by process ${owner.pid} (${owner.role}) and did not answer within ${WAIT_FOR_OWNER_MS / 1000} s`,
      );
    }
    if (!said) logger.info('waiting for the embedded PostgreSQL another process is starting', { pid: owner.pid, role: owner.role });
    said = true;
    await sleep(POLL_MS);
  }
}

export async function openDatabase(config: Config, logger: Logger, role: OwnerRole, now: () => number = Date.now): Promise<DatabaseHandle> {
  if (config.database_url !== '') return { url: config.database_url, embedded: false, stop: async () => {} };
  return openEmbedded(config, logger, role, now);
}

// The multi-host walk (libpq's host list and target_session_attrs) for every connection
// the daemon makes: the sync's reader and primary, and the writer of last logins.
export { connectTarget, resolveUrl, type Target, type TargetOptions } from './target.js';
