// Builds bin/mailmapd-checkpassword from src/checkpassword/checkpassword.c with the system C compiler
// (cc with the usual hardening flags, no other dependency). Called by scripts/postbuild.mjs, so `npm ci`
// builds it; runnable alone: node scripts/build-checkpassword.mjs.
//
// Why C: Dovecot forks the program for every login, Node's own start costs ~60 ms, and Node
// cannot start at all under the auth service's default 256 MB vsz_limit.

import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const source = join(root, 'src/checkpassword/checkpassword.c');
export const output = join(root, 'bin/mailmapd-checkpassword');

// Dovecot runs the program for every login, handing it the client's password on
// descriptor 3: build it the way distributions build such programs — fortified libc calls,
// stack protector, position-independent, read-only relocations bound at start.
export const flags = [
  '-O2',
  '-D_FORTIFY_SOURCE=2',
  '-fstack-protector-strong',
  '-fPIE',
  '-pie',
  '-Wl,-z,relro,-z,now',
  '-Wall',
  '-Wextra',
  '-Wformat',
  '-Wformat-security',
];

export default async function build() {
  mkdirSync(dirname(output), { recursive: true });
  // Build beside the target and rename: Dovecot may be executing the old binary right now.
  const tmp = `${output}.${process.pid}.tmp`;
  try {
    execFileSync('cc', [...flags, '-o', tmp, source], { stdio: ['ignore', 'inherit', 'inherit'] });
    chmodSync(tmp, 0o755);
    renameSync(tmp, output);
  } catch (err) {
    rmSync(tmp, { force: true });
    // A warning, not a failed install: socketmap and the auth socket work without it.
    console.error(
      `build-checkpassword: WARNING: cannot compile ${source}: ${err instanceof Error ? err.message.split('\n')[0] : err}\n` +
        'build-checkpassword: Dovecot checkpassword logins need it: install a C compiler (gcc) and run `npm run build` again.',
    );
    return false;
  }
  console.error(`build-checkpassword: built ${output}`);
  return true;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  process.exitCode = (await build()) ? 0 : 1;
}
