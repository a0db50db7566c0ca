// Alias rows become one comma-joined value per address, as Postfix wants it: every active
// destination once, in row order, however many rows an address has (a mailing list can
// have thousands, and its load must stay linear in them).

import { describe, expect, it } from 'vitest';
import { createAliasTable } from '../../src/directory/tables.js';
import { aliasRowAdder } from '../../src/sync/rows.js';

function collect(rows: unknown[][]) {
  const into = createAliasTable();
  const add = aliasRowAdder(into);
  for (const r of rows) add.add(r);
  add.finish();
  return Object.fromEntries([...into.keys()].map((k) => [k, into.get(k)]));
}

describe('alias rows', () => {
  it('joins each active destination once, in row order, folding case', () => {
    expect(
      collect([
        ['List@Example.org', 'b@x.test', true],
        ['info@example.org', 'a@x.test', 't'],
        ['list@example.org', 'A@X.test ', 1],
        ['list@example.org', 'B@x.test', true],
        ['list@example.org', 'off@x.test', false],
        ['list@example.org', 'c@x.test,a@x.test', true],
        ['info@example.org', 'a@x.test', true],
        ['', 'nobody@x.test', true],
        ['empty@example.org', ' ', true],
      ]),
    ).toEqual({ 'list@example.org': 'b@x.test,a@x.test,c@x.test', 'info@example.org': 'a@x.test' });
  });

  it('builds a 20,000-member list with every member once', () => {
    const rows: unknown[][] = [];
    for (let i = 0; i < 20_000; i++) rows.push(['list@example.org', `m${i}@x.test`, true], ['list@example.org', `m${i >> 1}@x.test`, true]);
    const members = collect(rows)['list@example.org']!.split(',');
    expect(members).toHaveLength(20_000);
    expect(new Set(members).size).toBe(20_000);
    expect(members.slice(0, 3)).toEqual(['m0@x.test', 'm1@x.test', 'm2@x.test']);
  });
});
