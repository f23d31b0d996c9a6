// The tokenizer's worker thread in Node (src/node/tokenizer-worker.ts starts it): it runs
// src/engine/tokenizer-worker.ts through Vite's module runner, as bin/ts.mjs runs the command
// line, so the page and Node share that TypeScript module. Requests that arrive while it loads
// wait in parentPort's queue: a port delivers nothing until it has a listener.
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parentPort } from 'node:worker_threads';
import { runnerImport } from 'vite';

// stdout is the command line's, which carries nothing but JSON with --json: transformers.js'
// notes go to stderr (reading the worker's stdout instead would keep the process from exiting)
console.log = console.info = console.debug = console.warn;

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const file = resolve(root, 'src/engine/tokenizer-worker.ts');
const { module } = await runnerImport(file, { configFile: false, root, logLevel: 'error' });
module.serveTokenizer({
  postMessage: (m) => parentPort.postMessage(m),
  onMessage: (handle) => parentPort.on('message', handle),
});
