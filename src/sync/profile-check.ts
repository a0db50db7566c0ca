// `mailmapd check` for a profile: does every query run, give the columns the sync reads
// (by position, in the order of profile.ts) with usable types, does every watch name a
// table and a key expression that works inside the trigger, and does some watch cover
// every table a query reads — otherwise changes to that table never reach the daemon.
// Everything runs in a READ ONLY transaction that is rolled back; queries run with
// LIMIT 0, so a check costs no more than planning them.

import type pg from 'pg';
import { changeKinds, type ChangeKind } from '../directory/directory.js';
import { missingExpected } from './profile-layout.js';
import { expectedColumns, isNative, sectionName, type Profile, type Watch } from './profile.js';

type TypeClass = 'text' | 'boolean' | 'integer';

const accepted: Record<TypeClass, readonly string[]> = {
  text: ['text', 'varchar', 'bpchar', 'name', 'citext'],
  // Integers for flags written by tools that know no boolean (1 = active).
  boolean: ['bool', 'int2', 'int4', 'int8'],
  integer: ['int2', 'int4', 'int8', 'numeric'],
};

const columnClass: Record<string, TypeClass> = {
  name: 'text',
  target: 'text',
  address: 'text',
  password: 'text',
  destination: 'text',
  quota_bytes: 'integer',
  active: 'boolean',
  key: 'text',
  value: 'text',
};

const describe: Record<TypeClass, string> = {
  text: 'text (text, varchar, char)',
  boolean: 'boolean',
  integer: 'an integer (bytes)',
};

/**
 * A table as `"schema"."name"` plus its oid, or undefined when it does not exist.
 * Called inside a transaction: a name too malformed for to_regclass must not abort it.
 */
async function resolveTable(client: pg.ClientBase, table: string): Promise<{ name: string; oid: number } | undefined> {
  const r = await trial(client, () =>
    client.query<{ q: string; oid: number }>(
      `SELECT format('%I.%I', n.nspname, c.relname) AS q, c.oid::int AS oid
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.oid = to_regclass($1)`,
      [table],
    ),
  );
  const row = r.value?.rows[0];
  return row === undefined ? undefined : { name: row.q, oid: row.oid };
}

/** Replaces every `{{table}}` in a key expression by the table's qualified name. */
async function resolveKeyExpr(client: pg.ClientBase, keyExpr: string): Promise<{ sql: string; missing: string[] }> {
  const missing: string[] = [];
  let sql = '';
  let last = 0;
  for (const m of keyExpr.matchAll(/\{\{\s*([^{}]+?)\s*\}\}/g)) {
    const t = await resolveTable(client, m[1]!);
    if (t === undefined) missing.push(m[1]!);
    sql += keyExpr.slice(last, m.index) + (t?.name ?? m[1]!);
    last = m.index! + m[0].length;
  }
  return { sql: sql + keyExpr.slice(last), missing };
}

async function typeNames(client: pg.ClientBase, oids: number[]): Promise<Map<number, string>> {
  const r = await client.query<{ oid: number; typname: string }>('SELECT oid::int AS oid, typname FROM pg_type WHERE oid = ANY($1::oid[])', [oids]);
  return new Map(r.rows.map((x) => [x.oid, x.typname]));
}

/** Runs fn inside a savepoint and rolls it back; returns fn's error, if any. */
async function trial<T>(client: pg.ClientBase, fn: () => Promise<T>): Promise<{ value?: T; error?: string }> {
  await client.query('SAVEPOINT mailmapd_check');
  try {
    return { value: await fn() };
  } catch (err) {
    return { error: (err as Error).message };
  } finally {
    await client.query('ROLLBACK TO SAVEPOINT mailmapd_check');
  }
}

function relationsOf(plan: unknown, into: Set<string>): void {
  if (Array.isArray(plan)) {
    for (const p of plan) relationsOf(p, into);
  } else if (plan !== null && typeof plan === 'object') {
    const o = plan as Record<string, unknown>;
    if (typeof o['Relation Name'] === 'string' && typeof o['Schema'] === 'string') into.add(`${o['Schema']}\u0000${o['Relation Name']}`);
    for (const v of Object.values(o)) if (typeof v === 'object') relationsOf(v, into);
  }
}

async function checkQuery(client: pg.ClientBase, kind: ChangeKind, query: string, problems: string[]): Promise<boolean> {
  const section = sectionName[kind];
  const run = await trial(client, () => client.query(`SELECT * FROM (${query}) q LIMIT 0`));
  if (run.error !== undefined) {
    problems.push(`${section} query fails: ${run.error}`);
    return false;
  }
  const fields = run.value!.fields;
  const want = expectedColumns[kind];
  const names = fields.map((f) => f.name);
  const types = await typeNames(
    client,
    fields.map((f) => f.dataTypeID),
  );
  let ok = true;
  want.forEach((col, i) => {
    const at = names.indexOf(col);
    if (at < 0) {
      problems.push(`${section} query: missing column "${col}" (it must return ${want.join(', ')}, in that order)`);
      ok = false;
      return;
    }
    if (at !== i) {
      problems.push(
        `${section} query: column "${col}" is number ${at + 1}, it must be number ${i + 1} (${want.join(', ')}): the sync reads columns by position`,
      );
      ok = false;
    }
    const cls = columnClass[col]!;
    const typ = types.get(fields[at]!.dataTypeID) ?? `oid ${fields[at]!.dataTypeID}`;
    if (!accepted[cls].includes(typ)) {
      problems.push(`${section} query: column "${col}" has type ${typ}, expected ${describe[cls]}`);
      ok = false;
    }
  });
  return ok;
}

interface ResolvedWatch extends Watch {
  oid: number;
  qualified: string;
  sql: string;
}

async function checkWatch(client: pg.ClientBase, w: Watch, problems: string[]): Promise<ResolvedWatch | undefined> {
  const label = `watch ${w.table} ${sectionName[w.kind]}`;
  const t = await resolveTable(client, w.table);
  if (t === undefined) {
    problems.push(`${label}: table "${w.table}" does not exist`);
    return undefined;
  }
  const { sql, missing } = await resolveKeyExpr(client, w.keyExpr);
  if (missing.length > 0) {
    problems.push(`${label}: the key expression names ${missing.map((m) => `{{${m}}}`).join(', ')}, which does not exist`);
    return undefined;
  }
  // The trigger function runs with search_path = pg_catalog, pg_temp: test it that way,
  // or an unqualified table name would pass here and fail inside the admin panel's write.
  const run = await trial(client, async () => {
    await client.query('SET LOCAL search_path = pg_catalog, pg_temp');
    return client.query(`SELECT ${sql} AS k FROM ${t.name} r LIMIT 0`);
  });
  if (run.error !== undefined) {
    problems.push(`${label}: the key expression fails: ${run.error} (other tables must be written {{table}}; the row is r)`);
    return undefined;
  }
  const typ = (await typeNames(client, [run.value!.fields[0]!.dataTypeID])).get(run.value!.fields[0]!.dataTypeID) ?? '?';
  if (!accepted.text.includes(typ)) {
    problems.push(`${label}: the key expression gives type ${typ}, expected text (the lower-cased key of the ${sectionName[w.kind]} query)`);
    return undefined;
  }
  return { ...w, oid: t.oid, qualified: t.name, sql };
}

/** Everything wrong with a profile against this database, as one line each; [] = fine. */
export async function checkProfile(client: pg.ClientBase, profile: Profile): Promise<string[]> {
  const problems: string[] = [];
  await client.query('BEGIN READ ONLY');
  try {
    // A panel's own tables first: on another release of the panel, what is missing is named
    // one table, column or type a line, rather than as the queries' errors.
    problems.push(...(await missingExpected(client, profile)));
    if (problems.length > 0) return problems;
    const good = new Set<ChangeKind>();
    for (const kind of changeKinds) if (await checkQuery(client, kind, profile.queries[kind], problems)) good.add(kind);

    // The native schema's triggers come with `mailmapd migrate`; only foreign profiles
    // declare watches.
    if (isNative(profile)) return problems;

    const watched = new Map<ChangeKind, Set<number>>();
    const seen = new Set<string>();
    for (const w of profile.watches ?? []) {
      const id = `${w.table}\u0000${w.kind}`;
      if (seen.has(id)) problems.push(`watch ${w.table} ${sectionName[w.kind]}: given twice (one table feeds one kind through one key expression)`);
      seen.add(id);
      const r = await checkWatch(client, w, problems);
      if (r === undefined) continue;
      let set = watched.get(w.kind);
      if (!set) watched.set(w.kind, (set = new Set()));
      set.add(r.oid);
    }

    for (const kind of good) {
      const plan = await trial(client, () => client.query(`EXPLAIN (VERBOSE, FORMAT JSON) ${profile.queries[kind]}`));
      if (plan.error !== undefined) continue;
      const rels = new Set<string>();
      relationsOf(plan.value!.rows[0]?.['QUERY PLAN'], rels);
      for (const rel of rels) {
        const [schema, name] = rel.split('\u0000') as [string, string];
        const t = await resolveTable(client, `"${schema.replaceAll('"', '""')}"."${name.replaceAll('"', '""')}"`);
        if (t === undefined || watched.get(kind)?.has(t.oid)) continue;
        problems.push(
          `${sectionName[kind]} query reads ${t.name}, but no watch sends its changes to ${sectionName[kind]}: ` +
            `changes to it would not reach the daemon (add a watch: table, kind ${sectionName[kind]}, key expression)`,
        );
      }
    }
    return problems;
  } finally {
    // Read only: nothing to undo, and a failed ROLLBACK must not hide the error that led here.
    await client.query('ROLLBACK').catch(() => {});
  }
}

/** The watches of a profile with their tables and key expressions resolved, for install. */
export async function resolveWatches(client: pg.ClientBase, profile: Profile): Promise<{ watches: ResolvedWatch[]; problems: string[] }> {
  const problems: string[] = [];
  const watches: ResolvedWatch[] = [];
  await client.query('BEGIN READ ONLY');
  try {
    for (const w of profile.watches ?? []) {
      const r = await checkWatch(client, w, problems);
      if (r) watches.push(r);
    }
  } finally {
    // Read only: nothing to undo, and a failed ROLLBACK must not hide the error that led here.
    await client.query('ROLLBACK').catch(() => {});
  }
  return { watches, problems };
}

export type { ResolvedWatch };
