// Loads an N-API addon that scripts/addon.mjs built into dist/ (crypt.node, malloc.node).
// From dist/ the file sits beside the compiled modules; tests run the TypeScript in src/,
// which finds the built copy in dist/.

import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/** The addon at `path` under dist/ (e.g. 'password/crypt.node'), or undefined when none loads. */
export function loadAddon<T>(path: string): T | undefined {
  const require = createRequire(import.meta.url);
  for (const candidate of [`./${path}`, `../dist/${path}`]) {
    const file = fileURLToPath(new URL(candidate, import.meta.url));
    if (!existsSync(file)) continue;
    try {
      return require(file) as T;
    } catch {
      // An unloadable binary (other architecture or libc, missing library): try the next.
    }
  }
  return undefined;
}
