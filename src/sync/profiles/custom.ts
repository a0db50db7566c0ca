// An administrator's own queries, like Postfix's *.cf files: `schema = custom:/path`.
// The format (documented in config/schema.custom.example.sql) is SQL with section
// comments:
//
//   -- domains:          then the query, up to the next section (a trailing ; is dropped)
//   -- alias_domains:    optional: left out = none
//   -- mailboxes:
//   -- aliases:          optional: left out = none
//   -- watch TABLE KIND KEY_EXPR      any number, anywhere; KIND as in the section names
//
// Other comments and blank lines are ignored. Parsing checks only the shape; whether the
// queries run and give the right columns is `mailmapd check`'s job (profile-check.ts).

import { changeKinds, type ChangeKind } from '../../directory/directory.js';
import { sectionName, type Profile, type Watch } from '../profile.js';
import { emptyQuery } from './empty.js';

export class ProfileSyntaxError extends Error {}

/** A section or watch line may name a kind by its section name or by the kind itself. */
const kindNames: Record<string, ChangeKind> = Object.fromEntries(
  changeKinds.flatMap((k) => [
    [sectionName[k], k],
    [k, k],
  ]),
);

export function parseCustomProfile(text: string, source: string): Profile {
  const bodies = new Map<ChangeKind, { line: number; sql: string[] }>();
  const watches: Watch[] = [];
  let current: ChangeKind | undefined;
  const fail = (line: number, msg: string): never => {
    throw new ProfileSyntaxError(`${source}:${line}: ${msg}`);
  };
  const lines = text.split(/\r?\n/);
  lines.forEach((raw, i) => {
    const n = i + 1;
    const section = /^\s*--\s*([a-z_]+)\s*:\s*$/i.exec(raw);
    if (section) {
      const kind = kindNames[section[1]!.toLowerCase()];
      if (kind === undefined) fail(n, `unknown section "${section[1]}" (expected domains, alias_domains, mailboxes or aliases)`);
      if (bodies.has(kind!)) fail(n, `section "${sectionName[kind!]}" appears twice`);
      current = kind!;
      bodies.set(current, { line: n, sql: [] });
      return;
    }
    const watch = /^\s*--\s*watch\b(.*)$/i.exec(raw);
    if (watch) {
      const m = /^\s+(\S+)\s+(\S+)\s+(.+?)\s*$/.exec(watch[1]!);
      if (!m) fail(n, 'a watch line is "-- watch TABLE KIND KEY_EXPRESSION"');
      const kind = kindNames[m![2]!.toLowerCase()];
      if (kind === undefined) fail(n, `unknown kind "${m![2]}" (expected domains, alias_domains, mailboxes or aliases)`);
      watches.push({ table: m![1]!, kind: kind!, keyExpr: m![3]! });
      return;
    }
    if (/^\s*--/.test(raw) || raw.trim() === '') return;
    if (current === undefined) fail(n, 'SQL before the first section (start with "-- domains:")');
    bodies.get(current!)!.sql.push(raw);
  });
  const queries = {} as Record<ChangeKind, string>;
  for (const kind of changeKinds) {
    const body = bodies.get(kind);
    if (body === undefined) {
      if (kind === 'domain' || kind === 'mailbox') fail(lines.length, `the "-- ${sectionName[kind]}:" section is missing`);
      queries[kind] = emptyQuery(kind);
      continue;
    }
    const sql = body.sql.join('\n').trim().replace(/;\s*$/, '').trim();
    if (sql === '') fail(body.line, `the "${sectionName[kind]}" section has no query`);
    if (sql.includes(';')) fail(body.line, `the "${sectionName[kind]}" section must hold one query (found a ";" inside)`);
    queries[kind] = sql;
  }
  return { name: 'custom', source, queries, watches };
}
