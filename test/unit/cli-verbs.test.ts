// The verb table (src/cli/verbs.ts) is the one list of `mailmapd` verbs: the dispatch and
// the usage text come from it, and here the README's command table is held against it, so
// a verb added without its README row (or a row left for a verb that went) fails.

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { findVerb, usageText, verbs } from '../../src/cli/verbs.js';

const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

/** The verbs the README's command table names in its first column. */
function documentedVerbs(): Set<string> {
  const lines = readme.split('\n');
  const start = lines.findIndex((l) => /^\| command \| what it does \|$/.test(l));
  expect(start, 'the README has a table headed "| command | what it does |"').toBeGreaterThanOrEqual(0);
  const found = new Set<string>();
  for (const line of lines.slice(start + 2)) {
    if (!line.startsWith('|')) break;
    const firstCell = line.slice(1).split(/(?<!\\)\|/)[0]!;
    for (const m of firstCell.matchAll(/`(?:mailmapd )?([a-z][a-z-]*)/g)) found.add(m[1]!);
  }
  return found;
}

describe('the verb table', () => {
  it('the README command table lists every verb', () => {
    const documented = documentedVerbs();
    expect(verbs.map((v) => v.name).filter((n) => !documented.has(n))).toEqual([]);
  });

  it('the README command table lists no verb the command line lacks', () => {
    expect([...documentedVerbs()].filter((n) => findVerb(n) === undefined)).toEqual([]);
  });

  it('the usage text has a line for every verb, and names each once', () => {
    const text = usageText();
    for (const v of verbs) expect(text).toMatch(new RegExp(`^  ${v.name}\\b`, 'm'));
    expect(new Set(verbs.map((v) => v.name)).size).toBe(verbs.length);
  });
});
