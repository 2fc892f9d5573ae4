import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // Memory tests call global.gc() to measure live heap rather than garbage.
    execArgv: ['--expose-gc'],
    reporters: ['default'],
  },
});
