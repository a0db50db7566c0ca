// Loads src/memory/malloc.c (built to dist/memory/malloc.node by scripts/build-malloc.mjs),
// which fixes glibc's mmap threshold so that the directory's freed buffers go back to the
// operating system instead of staying in the process after a full reload.

import { loadAddon } from '../native-addon.js';

/** True when freed large blocks now return to the OS; false without the addon or glibc. */
export function returnFreedMemoryToOs(): boolean {
  return loadAddon<{ mmapThresholdFixed: boolean }>('memory/malloc.node')?.mmapThresholdFixed === true;
}
