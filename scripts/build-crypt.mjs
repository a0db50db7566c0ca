// Builds dist/password/crypt.node, the N-API binding of the system's crypt(3), with gcc
// alone (no node-gyp, no network). Called by scripts/postbuild.mjs, so `npm ci` builds it;
// runnable alone: node scripts/build-crypt.mjs.
//
// Node's headers and <crypt.h> are used when present; without them src/password/crypt.c
// declares the handful of stable symbols itself, so only a C compiler and libcrypt.so.1
// (part of every Debian/Ubuntu base system) are needed. When even that fails, the build
// warns and the daemon falls back to its slower pure-JavaScript crypt (and says so in its log).

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const source = join(root, 'src/password/crypt.c');
export const output = join(root, 'dist/password/crypt.node');

function nodeIncludeDirs() {
  const candidates = [
    join(dirname(process.execPath), '../include/node'),
    '/usr/include/node',
    '/usr/local/include/node',
    process.config.variables.nodedir ? join(process.config.variables.nodedir, 'include/node') : '',
    join(process.env.HOME ?? '', `.cache/node-gyp/${process.versions.node}/include/node`),
  ];
  return [...new Set(candidates.filter((d) => d !== '' && existsSync(join(d, 'node_api.h'))))].slice(0, 1);
}

/** `-lcrypt` needs the dev symlink libcrypt.so; the runtime library alone is enough by path. */
function libcryptArgs() {
  const args = [['-lcrypt']];
  for (const dir of ['/lib/x86_64-linux-gnu', '/usr/lib/x86_64-linux-gnu', '/lib/aarch64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/lib64', '/usr/lib64', '/lib', '/usr/lib']) {
    const lib = join(dir, 'libcrypt.so.1');
    if (existsSync(lib)) args.push([lib]);
  }
  return args;
}

/** Loads the fresh binary and checks it against a known SHA512-CRYPT vector before installing it. */
function selfTest(file) {
  const addon = createRequire(import.meta.url)(file);
  const setting = '$6$saltstring';
  const want = '$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1';
  if (addon.crypt(Buffer.from('Hello world!'), setting) !== want) throw new Error('crypt.node self-test failed');
}

export default async function build() {
  // The temporary name ends in .node so that require() loads it as an addon.
  const tmp = output.replace(/\.node$/, `.${process.pid}.tmp.node`);
  mkdirSync(dirname(output), { recursive: true });
  const includes = nodeIncludeDirs().map((d) => `-I${d}`);
  const errors = [];
  for (const lib of libcryptArgs()) {
    try {
      execFileSync('gcc', ['-O2', '-fPIC', '-shared', '-Wall', ...includes, '-o', tmp, source, ...lib], { stdio: 'pipe' });
      selfTest(tmp);
      // rename, never overwrite in place: a running daemon may have the old file mapped.
      renameSync(tmp, output);
      console.error(`build-crypt: built ${output}`);
      return true;
    } catch (err) {
      errors.push(String(err?.stderr ?? err?.message ?? err).trim().split('\n')[0]);
      rmSync(tmp, { force: true });
    }
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
