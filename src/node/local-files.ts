// Checkpoint files from a local folder, for the Node command line and tests. (The browser reads
// from the Hub and IndexedDB instead; nothing under src/ but src/node and src/cli imports this.)
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { CheckpointFiles } from '../model/load';

export function localCheckpoint(dir: string): CheckpointFiles {
  return {
    async text(name) {
      try {
        return await readFile(join(dir, name), 'utf8');
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
        throw e;
      }
    },
    async stream(name) {
      const path = join(dir, name);
      const { size } = await stat(path).catch(() => {
        throw new Error(`${path} is missing: the checkpoint's index names it`);
      });
      return { chunks: createReadStream(path, { highWaterMark: 1 << 20 }) as AsyncIterable<Uint8Array>, size };
    },
  };
}
