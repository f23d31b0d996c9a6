// Runs a TypeScript module's `main(argv)` through Vite's module runner: the same transforms as
// the app (TypeScript, WGSL imported as text), no build step, always the code in the tree.
//   node bin/ts.mjs path/to/module.ts [args...]
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runnerImport } from 'vite';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** Imports `file` (relative to the repository) and runs its main; resolves to the exit code. */
export async function runMain(file, argv) {
  const { module } = await runnerImport(resolve(root, file), { configFile: false, root, logLevel: 'error' });
  return module.main(argv);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [file, ...argv] = process.argv.slice(2);
  process.exitCode = await runMain(file, argv);
}
