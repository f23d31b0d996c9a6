import { defineConfig } from 'vitest/config';

export default defineConfig({
  root: '.',
  worker: { format: 'es' },
  build: { target: 'es2022', outDir: 'dist' },
  test: {
    include: ['tests/unit/**/*.test.ts'],
    // SwiftShader runs WGSL on the CPU at a few hundred MFLOP/s: generous timeouts, and one
    // process per file (each holds its own Dawn device). Two files at a time: much of a test's
    // time is single-threaded (shader compilation, the command line's process start-up), so
    // two overlap well even on two cores.
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 300_000,
    hookTimeout: 120_000,
    teardownTimeout: 10_000,
  },
});
