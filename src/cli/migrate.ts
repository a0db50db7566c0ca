// `mailmapd migrate`: creates or upgrades the native schema; idempotent.

import type { Config } from '../config.js';
import { migrate } from '../db/schema.js';
import { ExitCode } from '../errors.js';
import { withDatabaseClient } from './database.js';

export async function migrateCommand(config: Config, out: (line: string) => void): Promise<number> {
  return withDatabaseClient(config, 'mailmapd-migrate', async (c) => {
    const r = await migrate(c);
    out(r.applied.length === 0 ? `schema is up to date (version ${r.to})` : `migrated from version ${r.from} to ${r.to}`);
    return ExitCode.ok;
  });
}
