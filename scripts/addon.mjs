// What the N-API addon builders (build-crypt.mjs, build-malloc.mjs) share: finding Node's
// headers, and compiling beside the target, loading the fresh binary for a self-test and
// only then renaming it into place (a running daemon may have the old file mapped).

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

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

/**
 * Builds `source` into `output` with gcc, trying each set of extra arguments in turn until
 * one compiles and passes `selfTest(addon)` (which throws on failure). Returns the first
 * line of each failure; empty when the addon was installed.
 */
export function buildAddon({ source, output, attempts = [[]], selfTest }) {
  // The temporary name ends in .node so that require() loads it as an addon.
  const tmp = output.replace(/\.node$/, `.${process.pid}.tmp.node`);
  mkdirSync(dirname(output), { recursive: true });
  const includes = nodeIncludeDirs().map((d) => `-I${d}`);
  const errors = [];
  for (const extra of attempts) {
    try {
      execFileSync('gcc', ['-O2', '-fPIC', '-shared', '-Wall', ...includes, '-o', tmp, source, ...extra], { stdio: 'pipe' });
      selfTest(createRequire(import.meta.url)(tmp));
      renameSync(tmp, output);
      return [];
    } catch (err) {
      errors.push(
        String(err?.stderr ?? err?.message ?? err)
          .trim()
          .split('\n')[0],
      );
      rmSync(tmp, { force: true });
    }
  }
  return errors;
}
