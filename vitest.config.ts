import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Interop tests start real daemons, Postfix tools and Dovecot; two cores do not like 8 at once.
    maxWorkers: 2,
    fileParallelism: true,
  },
});
