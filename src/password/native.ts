// Loads the native crypt(3) binding (src/password/crypt.c, built to dist/password/crypt.node
// by scripts/build-crypt.mjs) or, when it is missing, the pure-JavaScript fallback.
// `cryptBackend.native` tells the pool, which logs a warning once when the fallback is used.

import { loadAddon } from '../native-addon.js';
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

function load(): CryptBackend {
  const addon = loadAddon<Addon>('password/crypt.node');
  if (addon !== undefined) return { native: true, crypt: addon.crypt, gensalt: addon.gensalt };
  return { native: false, crypt: jsCrypt, gensalt: (prefix, _count, random) => jsGensalt(prefix, random) };
}

export const cryptBackend: CryptBackend = load();
