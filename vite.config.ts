import { defineConfig } from 'vitest/config';

export default defineConfig({
  root: '.',
  worker: { format: 'es' },
  build: { target: 'es2022', outDir: 'dist' },
  test: {
    include: ['tests/unit/**/*.test.ts'],
    // SwiftShader runs WGSL on the CPU at a few hundred MFLOP/s: generous timeouts, and one
    // process per file (each holds its own Dawn device).
    pool: 'forks',
    testTimeout: 120_000,
    hookTimeout: 120_000,
    teardownTimeout: 10_000,
  },
});
