// Runs after tsc (`npm run build`, and so `npm ci`): makes the CLI executable and builds
// the parts that are not TypeScript. Each builder lives in its own module under scripts/.
import { chmodSync } from 'node:fs';

chmodSync(new URL('../dist/cli.js', import.meta.url), 0o755);

const builders = [
  (await import('./build-crypt.mjs')).default,
  (await import('./build-malloc.mjs')).default,
  (await import('./build-checkpassword.mjs')).default,
];
for (const build of builders) await build();
