// `mailmapd check`: the config, the database, and the schema the config names (the native
// schema's version, or a panel profile's queries, columns and change triggers), each
// problem one line; exit 2 when there is any.

import type pg from 'pg';
import type { Config } from '../config.js';
import { currentVersion, latestVersion } from '../db/schema.js';
import { ExitCode } from '../errors.js';
import { isNative } from '../sync/profile.js';
import { withDatabaseClient } from './database.js';

/** Rows written before the schema refused names that climb out of a home directory. */
async function unsafeNames(c: pg.ClientBase): Promise<string[]> {
  const { unsafeNameQueries } = await import('../db/migrations/path-safe-names.js');
  const found: string[] = [];
  for (const q of unsafeNameQueries) {
    for (const r of (await c.query<{ name: string }>(q.sql)).rows) {
      found.push(`${q.table}: "${r.name}" would make a home outside its directory ("/", "..", or a leading "."): the daemon refuses it; rename or remove it`);
    }
  }
  return found;
}

/**
 * Roles other than the table's owner and superusers that may read DKIM private keys — by a
 * column grant, or by a table-wide grant such as GRANT SELECT ON ALL TABLES IN SCHEMA. Said,
 * not counted as a problem: the daemon's role needs it where it writes dkim_dir.
 */
async function privateKeyReaders(c: pg.ClientBase): Promise<string[]> {
  const r = await c.query<{ rolname: string }>(
    `SELECT r.rolname FROM pg_roles r, pg_class t
      WHERE t.oid = to_regclass('mailmapd.dkim_keys') AND NOT r.rolsuper AND r.oid <> t.relowner AND r.rolname !~ '^pg_'
        AND has_column_privilege(r.oid, t.oid, 'private_key', 'SELECT') ORDER BY 1`,
  );
  return r.rows.map((x) => x.rolname);
}

export async function checkCommand(config: Config, out: (line: string) => void): Promise<number> {
  out(`config ${config.source}: ok`);
  return withDatabaseClient(config, 'mailmapd-check', async (c) => {
    out(`database ${c.host}:${c.port}/${c.database}: reachable`);
    const problems: string[] = [];
    if (isNative(config.schema)) {
      const v = await currentVersion(c);
      if (v === 0) problems.push('the native schema is missing: run `mailmapd migrate`');
      else if (v < latestVersion) problems.push(`the native schema is version ${v}, this mailmapd wants ${latestVersion}: run \`mailmapd migrate\``);
      else out(`native schema: version ${v}`);
      if (v >= 2) problems.push(...(await unsafeNames(c)));
      const readers = await privateKeyReaders(c);
      if (readers.length > 0) out(`roles that may read DKIM private keys (mailmapd.dkim_keys.private_key): ${readers.join(', ')}`);
    } else {
      const { profileFor } = await import('../sync/profile-select.js');
      const { checkProfile } = await import('../sync/profile-check.js');
      const { triggerProblems } = await import('./triggers.js');
      const { chooseLayout, missingExpected } = await import('../sync/profile-layout.js');
      const profile = await chooseLayout(c, await profileFor(config.schema));
      if (profile.layout !== undefined) out(`schema ${config.schema}: the database holds ${profile.layout}`);
      // Tables of another release of the panel: what differs, one line each, is the answer.
      const mismatch = await missingExpected(c, profile);
      if (mismatch.length > 0) problems.push(...mismatch);
      else problems.push(...(await checkProfile(c, profile)), ...(await triggerProblems(c, profile)));
      if (problems.length === 0) out(`schema ${config.schema}: queries, columns and change triggers ok`);
    }
    for (const p of problems) out(`problem: ${p}`);
    return problems.length === 0 ? ExitCode.ok : ExitCode.usage;
  });
}
