// Builds dist/password/crypt.node, the N-API binding of the system's crypt(3), with gcc
// alone (no node-gyp, no network). Called by scripts/postbuild.mjs, so `npm ci` builds it;
// runnable alone: node scripts/build-crypt.mjs.
//
// Node's headers and <crypt.h> are used when present; without them src/password/crypt.c
// declares the handful of stable symbols itself, so only a C compiler and libcrypt.so.1
// (part of every Debian/Ubuntu base system) are needed. When even that fails, the build
// warns and the daemon falls back to its slower pure-JavaScript crypt (and says so in its log).

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildAddon } from './addon.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const source = join(root, 'src/password/crypt.c');
export const output = join(root, 'dist/password/crypt.node');

/** `-lcrypt` needs the dev symlink libcrypt.so; the runtime library alone is enough by path. */
function libcryptArgs() {
  const args = [['-lcrypt']];
  for (const dir of [
    '/lib/x86_64-linux-gnu',
    '/usr/lib/x86_64-linux-gnu',
    '/lib/aarch64-linux-gnu',
    '/usr/lib/aarch64-linux-gnu',
    '/lib64',
    '/usr/lib64',
    '/lib',
    '/usr/lib',
  ]) {
    const lib = join(dir, 'libcrypt.so.1');
    if (existsSync(lib)) args.push([lib]);
  }
  return args;
}

/** Checks a fresh binary against a known SHA512-CRYPT vector before it is installed. */
function selfTest(addon) {
  const setting = '$6$saltstring';
  const want = '$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1';
  if (addon.crypt(Buffer.from('Hello world!'), setting) !== want) throw new Error('crypt.node self-test failed');
}

export default async function build() {
  const errors = buildAddon({ source, output, attempts: libcryptArgs(), selfTest });
  if (errors.length === 0) {
    console.error(`build-crypt: built ${output}`);
    return true;
  }
  console.error(
    `build-crypt: WARNING: could not build the native crypt binding (${errors.join('; ')}).\n` +
      'build-crypt: SHA512/SHA256/MD5-CRYPT will use the slow pure-JavaScript fallback and BLF-CRYPT/bcrypt will not verify.\n' +
      'build-crypt: install gcc (and libcrypt1) and run `npm run build` again.',
  );
  return false;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  process.exitCode = (await build()) ? 0 : 1;
}
