// Loads the native crypt(3) binding (src/password/crypt.c, built to dist/password/crypt.node
// by scripts/build-crypt.mjs) or, when it is missing, the pure-JavaScript fallback.
// `cryptBackend.native` tells the pool, which logs a warning once when the fallback is used.

import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { jsCrypt, jsGensalt } from './jscrypt.js';

export interface CryptBackend {
  native: boolean;
  /** crypt(3); null when the setting is not one the backend understands. */
  crypt(password: Buffer, setting: string): string | null;
  /** crypt_gensalt(3): `count` 0 = the algorithm's default cost. */
  gensalt(prefix: string, count: number, random: Buffer): string | null;
}

interface Addon {
  crypt(password: Buffer, setting: string): string | null;
  gensalt(prefix: string, count: number, random: Buffer): string | null;
}

// Next to this module in dist/; from src/ (tests run the TypeScript) the built copy in dist/.
const candidates = ['./crypt.node', '../../dist/password/crypt.node'].map((p) => fileURLToPath(new URL(p, import.meta.url)));

function load(): CryptBackend {
  const require = createRequire(import.meta.url);
  for (const file of candidates) {
    if (!existsSync(file)) continue;
    try {
      const addon = require(file) as Addon;
      return { native: true, crypt: addon.crypt, gensalt: addon.gensalt };
    } catch {
      // An unloadable binary (other architecture, missing libcrypt): try the next, then fall back.
    }
  }
  return { native: false, crypt: jsCrypt, gensalt: (prefix, _count, random) => jsGensalt(prefix, random) };
}

export const cryptBackend: CryptBackend = load();
