import { configDefaults, defineConfig } from 'vitest/config';

// Four projects. `unit` needs no PostgreSQL, no root, no socket and no peer: it runs in
// seconds (`npm run test:unit`). `integration` runs the daemon's parts and the daemon
// against a real PostgreSQL; `interop` against the real Postfix and Dovecot; `compare` asks
// mailmapd and Postfix's or Dovecot's own SQL lookups the same questions. `npm test` runs
// all four. A test file anywhere else under test/ counts as integration.
const pg = ['test/helpers/pg-global-setup.ts'];
const apart = ['test/unit/**', 'test/interop/**', 'test/compare/**'];

export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Interop tests start real daemons, Postfix tools and Dovecot; two cores do not like 8 at once.
    maxWorkers: 2,
    fileParallelism: true,
    projects: [
      { extends: true, test: { name: 'unit', include: ['test/unit/**/*.test.ts'] } },
      {
        extends: true,
        // The PostgreSQL of the run: the machine's on 127.0.0.1:5432, else an embedded one.
        test: { name: 'integration', include: ['test/**/*.test.ts'], exclude: [...configDefaults.exclude, ...apart], globalSetup: pg },
      },
      { extends: true, test: { name: 'interop', include: ['test/interop/**/*.test.ts'], globalSetup: pg } },
      { extends: true, test: { name: 'compare', include: ['test/compare/**/*.test.ts'], globalSetup: pg } },
    ],
  },
});
