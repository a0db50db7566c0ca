import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The PostgreSQL of the run: the machine's on 127.0.0.1:5432, else an embedded one.
    globalSetup: ['test/helpers/pg-global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Interop tests start real daemons, Postfix tools and Dovecot; two cores do not like 8 at once.
    maxWorkers: 2,
    fileParallelism: true,
  },
});
