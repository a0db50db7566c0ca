// A panel's tables as the database holds them: which of a panel's layouts it has (Modoboa
// 1.0 keeps users in admin_user, 2.x in core_user), and which of the tables, columns and
// types a profile expects are missing or different — one line each, so that an
// administrator on another release of the panel sees the mismatch at once.

import type pg from 'pg';
import type { ColumnType, Profile } from './profile.js';

/** PostgreSQL's type names (pg_type.typname) each family accepts. */
const families: Record<ColumnType, readonly string[]> = {
  text: ['text', 'varchar', 'bpchar', 'name', 'citext'],
  integer: ['int2', 'int4', 'int8', 'numeric'],
  boolean: ['bool'],
  timestamp: ['timestamptz', 'timestamp'],
  json: ['json', 'jsonb'],
};

const shown: Record<ColumnType, string> = {
  text: 'text or varchar',
  integer: 'an integer',
  boolean: 'boolean',
  timestamp: 'timestamp with time zone',
  json: 'json or jsonb',
};

/** What the database has of the tables a profile expects: table → column → typname; absent table = undefined. */
async function tablesOf(client: pg.ClientBase, tables: string[]): Promise<Map<string, Map<string, string> | undefined>> {
  const r = await client.query<{ t: string; found: boolean; col: string | null; typ: string | null }>(
    `SELECT t, c.oid IS NOT NULL AS found, a.attname AS col, ty.typname AS typ
       FROM unnest($1::text[]) AS t
       LEFT JOIN pg_class c ON c.oid = to_regclass(t)
       LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
       LEFT JOIN pg_type ty ON ty.oid = a.atttypid`,
    [tables],
  );
  const out = new Map<string, Map<string, string> | undefined>();
  for (const row of r.rows) {
    if (!row.found) {
      out.set(row.t, undefined);
      continue;
    }
    let cols = out.get(row.t);
    if (cols === undefined) out.set(row.t, (cols = new Map()));
    if (row.col !== null) cols.set(row.col, row.typ ?? '?');
  }
  return out;
}

/** Every expected table, column and type the database lacks, one line each; [] = all there. */
export async function missingExpected(client: pg.ClientBase, profile: Profile): Promise<string[]> {
  const expects = profile.expects ?? {};
  const have = await tablesOf(client, Object.keys(expects));
  const problems: string[] = [];
  const of = profile.layout === undefined ? `schema ${profile.name}` : `schema ${profile.name} (${profile.layout})`;
  for (const [table, columns] of Object.entries(expects)) {
    const cols = have.get(table);
    if (cols === undefined) {
      problems.push(`${of}: table ${table} is missing`);
      continue;
    }
    for (const [column, type] of Object.entries(columns)) {
      const typ = cols.get(column);
      if (typ === undefined) problems.push(`${of}: table ${table} has no column ${column} (${shown[type]})`);
      else if (!families[type].includes(typ)) problems.push(`${of}: column ${table}.${column} has type ${typ}, expected ${shown[type]}`);
    }
  }
  return problems;
}

/**
 * The layout of a panel this database holds: the first whose expected tables all exist, else
 * the one with most of them (its check then names what is missing). A profile without
 * layouts is itself.
 */
export async function chooseLayout(client: pg.ClientBase, profile: Profile): Promise<Profile> {
  const layouts = profile.layouts;
  if (layouts === undefined || layouts.length === 0) return profile;
  const tables = [...new Set(layouts.flatMap((l) => Object.keys(l.expects ?? {})))];
  const have = await tablesOf(client, tables);
  let best = layouts[0]!;
  let bestCount = -1;
  for (const l of layouts) {
    const names = Object.keys(l.expects ?? {});
    const count = names.filter((t) => have.get(t) !== undefined).length;
    if (count === names.length) return l;
    if (count > bestCount) {
      best = l;
      bestCount = count;
    }
  }
  return best;
}
