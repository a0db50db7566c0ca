// Loads src/memory/malloc.c (built to dist/memory/malloc.node by scripts/build-malloc.mjs),
// which fixes glibc's mmap threshold so that the directory's freed buffers go back to the
// operating system instead of staying in the process after a full reload.

import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

// Next to this module in dist/; from src/ (tests run the TypeScript) the built copy in dist/.
const candidates = ['./malloc.node', '../../dist/memory/malloc.node'].map((p) => fileURLToPath(new URL(p, import.meta.url)));

/** True when freed large blocks now return to the OS; false without the addon or glibc. */
export function returnFreedMemoryToOs(): boolean {
  const require = createRequire(import.meta.url);
  for (const file of candidates) {
    if (!existsSync(file)) continue;
    try {
      return (require(file) as { mmapThresholdFixed: boolean }).mmapThresholdFixed === true;
    } catch {
      // Another architecture or libc: try the next, then go without.
    }
  }
  return false;
}
