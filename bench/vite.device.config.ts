// Bundles bench/device-bench.ts into one ES module that imports nothing but `webgpu` (and Node's
// built-ins), for a GPU machine without npm: see bench/device-run.sh.
import { defineConfig } from 'vite';

export default defineConfig({
  ssr: { noExternal: true, external: ['webgpu'] },
  build: {
    ssr: 'bench/device-bench.ts',
    outDir: '.device-build',
    emptyOutDir: true,
    target: 'node20',
    rollupOptions: { output: { entryFileNames: 'device-bench.mjs' } },
  },
});
