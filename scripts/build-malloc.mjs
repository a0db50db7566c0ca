// Builds dist/memory/malloc.node (src/memory/malloc.c: glibc's mmap threshold fixed, so that
// the directory's freed buffers return to the OS) with gcc alone. Called by
// scripts/postbuild.mjs, so `npm ci` builds it; runnable alone: node scripts/build-malloc.mjs.
// Without it (no gcc, a libc other than glibc) the daemon works the same, but memory freed
// after a full reload may stay with the process.

import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildAddon } from './addon.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
export const output = join(root, 'dist/memory/malloc.node');

export default async function build() {
  const errors = buildAddon({
    source: join(root, 'src/memory/malloc.c'),
    output,
    selfTest(addon) {
      if (addon.mmapThresholdFixed !== true) throw new Error('malloc.node: mallopt refused the threshold');
    },
  });
  if (errors.length === 0) {
    console.error(`build-malloc: built ${output}`);
    return true;
  }
  console.error(
    `build-malloc: WARNING: could not build the malloc setting (${errors.join('; ')}).\n` +
      'build-malloc: the daemon works without it, but memory freed by a full reload may stay with the process; install gcc and run `npm run build` again.',
  );
  return false;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  process.exitCode = (await build()) ? 0 : 1;
}
