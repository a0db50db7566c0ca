// `postinstall` of the package (`npm install -g mailmapd-<version>.tgz`): builds the parts
// that are not JavaScript — dist/password/crypt.node, dist/memory/malloc.node and
// bin/mailmapd-checkpassword — for this host, from the C sources the package ships, with
// the system C compiler alone (no TypeScript, no node-gyp, no network). The tarball carries
// copies built where it was packed; a build that fails here leaves those in place and says so.
//
// In a git checkout (tsconfig.json present) it does nothing: `npm ci` runs `prepare`, whose
// `npm run build` compiles the TypeScript and then these same builders.

import { existsSync } from 'node:fs';

if (!existsSync(new URL('../tsconfig.json', import.meta.url))) {
  const builders = ['./build-crypt.mjs', './build-malloc.mjs', './build-checkpassword.mjs'];
  for (const module of builders) await (await import(module)).default();
}
