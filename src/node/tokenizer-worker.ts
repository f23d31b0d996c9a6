// The tokenizer's worker in Node: a worker thread (bin/tokenizer-worker.mjs) with a heap limit,
// so that a chat template that builds gigabytes ends that thread, not the command line.
import { Worker } from 'node:worker_threads';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Reply } from '../engine/tokenizer-worker';
import type { SpawnTokenizerWorker, TokenizerPort } from '../engine/tokenizer-client';

const BOOTSTRAP = resolve(dirname(fileURLToPath(import.meta.url)), '../../bin/tokenizer-worker.mjs');

/**
 * Starts tokenizer workers with at most `heapMb` of V8 heap (1 GiB: Gemma's 256k-token
 * tokenizer.json builds in about 400 MB; a hostile template fills it in seconds and the thread
 * ends with "out of memory" instead of the process).
 */
export function nodeTokenizerWorker(o: { heapMb?: number } = {}): SpawnTokenizerWorker {
  return (): TokenizerPort => {
    const w = new Worker(BOOTSTRAP, { resourceLimits: { maxOldGenerationSizeMb: o.heapMb ?? 1024 } });
    const port: TokenizerPort = {
      post: (r) => w.postMessage(r),
      listen(onReply, onDeath) {
        w.on('message', (r: Reply) => onReply(r));
        w.on('error', (e) => onDeath(e.message));
        w.on('exit', (code) => onDeath(`it exited with code ${code}`));
        // an idle worker does not keep the command line running (a call in flight has its timer
        // armed, which does); unref after the listeners, which would ref it again
        w.unref();
      },
      terminate: () => void w.terminate(),
    };
    return port;
  };
}
