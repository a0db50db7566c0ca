// The README's Layout names every directory under src/ (each as `src/<name>/`), so that a
// new one cannot land without the line a newcomer reads first.

import { readdirSync, readFileSync } from 'node:fs';
import { expect, it } from 'vitest';

const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
const layout = readme.slice(readme.indexOf('### Layout'), readme.indexOf('### Where to change what'));

it('the README layout lists every directory under src/', () => {
  expect(layout.length).toBeGreaterThan(100);
  const dirs = readdirSync(new URL('../../src/', import.meta.url), { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .map((d) => d.name);
  expect(dirs.filter((d) => !layout.includes(`\`src/${d}/\``))).toEqual([]);
});
