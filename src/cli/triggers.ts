// `mailmapd triggers install|remove|status`: the change triggers on an admin panel's own
// tables (the profile's watches), so that its writes reach the daemon within a second.
// Install creates the change log in schema `mailmapd` (the same SQL as the native
// schema's) and statement-level triggers on the watched tables — nothing else: no
// column, no row, no index of the panel's tables is touched. Remove drops exactly those
// triggers again. Every install or remove is one transaction.

import { withDatabaseClient } from './database.js';
import type pg from 'pg';
import type { Config } from '../config.js';
import { changeLogSql, currentVersion, latestVersion, migrate } from '../db/schema.js';
import { dropUnusedLogFunctionsSql } from '../db/migrations/static-triggers.js';
import { triggerFunctionPattern, watchSuffixes } from '../db/migrations/invoker-triggers.js';
import { checkProfile, resolveWatches, type ResolvedWatch } from '../sync/profile-check.js';
import { isNative, sectionName } from '../sync/profile.js';
import { changeKinds } from '../directory/directory.js';
import type { Profile } from '../sync/profile.js';
import { chooseLayout } from '../sync/profile-layout.js';
import { profileFor } from '../sync/profile-select.js';
import { inTransaction } from '../db/client.js';
import { UsageError } from '../errors.js';

type Out = (line: string) => void;

const usage = 'usage: mailmapd triggers install|remove [--purge]|status';
const suffixes = watchSuffixes;
const lockKey = 0x6d61696c; // the migration lock: install and migrate never interleave

interface Installed {
  table: string;
  oid: number;
  trigger: string;
  kind: string;
  keyExpr: string;
  /** Made by an older mailmapd: the generic function that executed its arguments, or a
   *  key function that ran as its owner (a SECURITY DEFINER one), or a _trunc trigger. */
  outdated: boolean;
}

/** Change triggers of ours on tables outside schema mailmapd. */
async function installedTriggers(c: pg.ClientBase): Promise<Installed[]> {
  const exists = await c.query(`SELECT to_regnamespace('mailmapd') IS NOT NULL AS e`);
  if (exists.rows[0]?.e !== true) return [];
  const r = await c.query<{ tbl: string; oid: number; tgname: string; tgargs: Buffer; outdated: boolean }>(
    `SELECT format('%I.%I', n.nspname, cl.relname) AS tbl, cl.oid::int AS oid, t.tgname, t.tgargs,
            p.proname = 'log_change' OR (p.proname <> 'write_changes' AND p.prosecdef) OR t.tgname ~ '_trunc$' AS outdated
       FROM pg_trigger t
       JOIN pg_proc p ON p.oid = t.tgfoid
       JOIN pg_class cl ON cl.oid = t.tgrelid
       JOIN pg_namespace n ON n.oid = cl.relnamespace
      WHERE NOT t.tgisinternal AND p.pronamespace = 'mailmapd'::regnamespace AND p.proname ~ $1
        AND n.nspname <> 'mailmapd'
      ORDER BY 1, 3`,
    [triggerFunctionPattern],
  );
  return r.rows.map((x) => {
    const args = x.tgargs.toString('utf8').split('\u0000');
    return { table: x.tbl, oid: x.oid, trigger: x.tgname, kind: args[0] ?? '', keyExpr: args[1] ?? '', outdated: x.outdated };
  });
}

interface StatusLine {
  ok: boolean;
  line: string;
}

function compare(watches: ResolvedWatch[], installed: Installed[]): StatusLine[] {
  const lines: StatusLine[] = [];
  const used = new Set<Installed>();
  for (const w of watches) {
    const mine = installed.filter((i) => i.oid === w.oid && i.kind === w.kind);
    for (const i of mine) used.add(i);
    const label = `${w.qualified} → ${sectionName[w.kind]}`;
    const have = new Set(mine.map((i) => i.trigger));
    const lacking = suffixes.filter((s) => !have.has(`mailmapd_${w.kind}_${s}`));
    if (mine.length === 0) lines.push({ ok: false, line: `missing  ${label}` });
    else if (mine.some((i) => i.outdated)) lines.push({ ok: false, line: `outdated ${label} (made by an older mailmapd)` });
    else if (lacking.length > 0) lines.push({ ok: false, line: `partial  ${label} (no ${lacking.join(', ')} trigger)` });
    else if (mine.some((i) => i.keyExpr !== w.sql)) lines.push({ ok: false, line: `outdated ${label} (another key expression)` });
    else lines.push({ ok: true, line: `ok       ${label}` });
  }
  const extra = new Map<string, Installed>();
  for (const i of installed) if (!used.has(i)) extra.set(`${i.table} ${i.kind}`, i);
  for (const i of extra.values()) lines.push({ ok: false, line: `extra    ${i.table} → ${i.kind} (not in this profile: triggers install drops it)` });
  return lines;
}

/**
 * What `mailmapd check` should report about the triggers of a foreign profile: one line
 * per missing, partial, outdated or extra trigger set; [] when all is in place.
 */
export async function triggerProblems(c: pg.ClientBase, profile: Profile): Promise<string[]> {
  if (isNative(profile)) return [];
  const { watches, problems } = await resolveWatches(c, profile);
  const status = compare(watches, await installedTriggers(c));
  return [...problems, ...status.filter((s) => !s.ok).map((s) => `triggers: ${s.line.replace(/\s+/, ' ')}: run \`mailmapd triggers install\``)];
}

async function dropTriggers(c: pg.ClientBase, list: Installed[]): Promise<void> {
  for (const i of list) await c.query(`DROP TRIGGER IF EXISTS "${i.trigger.replaceAll('"', '""')}" ON ${i.table}`);
  if (list.length > 0) await c.query(dropUnusedLogFunctionsSql);
}

async function install(c: pg.ClientBase, profile: Profile, out: Out): Promise<number> {
  if (isNative(profile)) {
    const r = await migrate(c);
    out(`schema = native: its triggers come with the schema (version ${r.to}); nothing else to install`);
    return 0;
  }
  const problems = await checkProfile(c, profile);
  if (problems.length > 0) {
    for (const p of problems) out(`problem: ${p}`);
    out('nothing installed: fix the profile first (`mailmapd check` shows the same)');
    return 2;
  }
  const { watches } = await resolveWatches(c, profile);
  await inTransaction(c, async () => {
    await c.query('SELECT pg_advisory_xact_lock($1)', [lockKey]);
    await c.query(changeLogSql);
    // Start from a clean slate, so that a table dropped from the profile loses its
    // triggers; inside one transaction no write slips between drop and create.
    await dropTriggers(c, await installedTriggers(c));
    for (const w of watches) {
      await c.query('SELECT mailmapd.watch_table($1::regclass, $2, $3)', [w.qualified, w.kind, w.sql]);
      out(`installed ${w.qualified} → ${sectionName[w.kind]} (${suffixes.map((s) => `mailmapd_${w.kind}_${s}`).join(', ')})`);
    }
    // Writes made before the triggers existed are in no change log: make every running
    // daemon reload in full once (a NULL key means "every entry of that kind").
    for (const kind of changeKinds) await c.query('INSERT INTO mailmapd.changes (kind, key) VALUES ($1, NULL)', [kind]);
    await c.query(`SELECT pg_notify('mailmapd', 'reload')`);
  });
  out(
    `${watches.length} tables watched for schema = ${profile.source ? `custom:${profile.source}` : profile.name}${profile.layout ? ` (${profile.layout})` : ''}`,
  );
  return 0;
}

async function remove(c: pg.ClientBase, purge: boolean, out: Out): Promise<number> {
  await inTransaction(c, async () => {
    await c.query('SELECT pg_advisory_xact_lock($1)', [lockKey]);
    const list = await installedTriggers(c);
    await dropTriggers(c, list);
    const tables = new Set(list.map((i) => i.table));
    for (const t of tables) out(`removed the mailmapd triggers from ${t}`);
    if (list.length === 0) out('no mailmapd triggers on other tables');
    if (purge) {
      if ((await currentVersion(c)) > 0) out('kept schema mailmapd: it holds the native schema');
      else {
        await c.query('DROP SCHEMA IF EXISTS mailmapd CASCADE');
        out('dropped schema mailmapd (change log)');
      }
    }
  });
  return 0;
}

async function status(c: pg.ClientBase, profile: Profile, out: Out): Promise<number> {
  if (isNative(profile)) {
    const v = await currentVersion(c);
    if (v === 0) {
      out('schema = native: the native schema is missing: run `mailmapd migrate`');
      return 1;
    }
    out(`schema = native: triggers come with the native schema (version ${v}${v < latestVersion ? `, ${latestVersion} available` : ''})`);
    const extra = await installedTriggers(c);
    for (const i of extra) out(`extra    ${i.table} → ${i.kind} (left from another profile: \`mailmapd triggers remove\` then \`migrate\`)`);
    return extra.length === 0 ? 0 : 1;
  }
  const { watches, problems } = await resolveWatches(c, profile);
  for (const p of problems) out(`problem: ${p}`);
  const lines = compare(watches, await installedTriggers(c));
  for (const l of lines) out(l.line);
  return problems.length === 0 && lines.every((l) => l.ok) ? 0 : 1;
}

export async function triggersCommand(config: Config, args: string[], out: Out): Promise<number> {
  const [sub, ...rest] = args;
  const purge = rest.includes('--purge');
  const unknown = rest.filter((a) => a !== '--purge');
  if (sub === undefined || !['install', 'remove', 'status'].includes(sub) || unknown.length > 0 || (purge && sub !== 'remove')) {
    throw new UsageError(usage);
  }
  const panel = await profileFor(config.schema);
  return withDatabaseClient(config, 'mailmapd-cli', async (c) => {
    const profile = await chooseLayout(c, panel);
    if (sub === 'install') return await install(c, profile, out);
    if (sub === 'remove') return await remove(c, purge, out);
    return await status(c, profile, out);
  });
}
