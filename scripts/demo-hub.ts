// The demo that ships with the page: a tiny chat model and a small conversation data set, laid
// out in the Hub's URL scheme as static files, so the page downloads them from its own origin
// exactly as it downloads from huggingface.co (and its service worker keeps them for offline):
//   api/models/built-in/tiny-chat/revision/main     the repo's info, with its commit
//   api/models/built-in/tiny-chat/tree/<commit>     the file listing (sizes, SHA-256, blob ids)
//   built-in/tiny-chat/resolve/<commit>/<file>      the files
//   (and the same under api/datasets/ and datasets/ for built-in/chat)
// The model is tests/fixtures' tiny Llama (random weights, a byte-level tokenizer with a chat
// template); the data set is scripts/demo/chat.jsonl. vite.config.ts writes it into public/demo-hub
// when it is missing:   node bin/ts.mjs scripts/demo-hub.ts public/demo-hub
import { copyFile, cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { scan } from '../tests/fixtures/hub-server';
import { writeTinyCheckpoint } from '../tests/fixtures/tiny-checkpoint';

export const DEMO_MODEL = 'built-in/tiny-chat';
export const DEMO_DATA = 'built-in/chat';

const isLfs = (path: string) => /\.(safetensors|parquet|jsonl)$/.test(path);

/** One repo's folder as static Hub files under `out`. */
async function publish(out: string, type: 'model' | 'dataset', id: string, dir: string): Promise<void> {
  const { files, commit } = await scan(dir);
  const api = join(out, 'api', `${type}s`, id);
  const info = { _id: id, id, sha: commit, private: false, gated: false };
  const listing = [...files].map(([path, f]) => ({
    type: 'file',
    path,
    size: f.size,
    oid: f.oid,
    ...(isLfs(path) ? { lfs: { oid: f.sha256, size: f.size, pointerSize: 134 } } : {}),
  }));
  await mkdir(join(api, 'revision'), { recursive: true });
  await mkdir(join(api, 'tree'), { recursive: true });
  await writeFile(join(api, 'revision', 'main'), JSON.stringify(info));
  await writeFile(join(api, 'tree', commit), JSON.stringify(listing));
  for (const [path, f] of files) {
    const to = join(out, type === 'dataset' ? 'datasets' : '', id, 'resolve', commit, path);
    await mkdir(dirname(to), { recursive: true });
    await copyFile(f.abs, to);
  }
}

export async function writeDemoHub(out: string): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), 'demo-hub-'));
  try {
    await writeTinyCheckpoint(join(work, 'model'), 'llama', 2026);
    await mkdir(join(work, 'data'));
    await writeFile(join(work, 'data', 'train.jsonl'), await readFile(join(import.meta.dirname, 'demo', 'chat.jsonl')));
    // written beside `out` and moved into place whole: an interrupted run leaves no half demo behind
    const next = join(work, 'demo-hub');
    await publish(next, 'model', DEMO_MODEL, join(work, 'model'));
    await publish(next, 'dataset', DEMO_DATA, join(work, 'data'));
    await rm(out, { recursive: true, force: true });
    await mkdir(dirname(out), { recursive: true });
    await cp(next, out, { recursive: true });
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

export async function main(argv: string[]): Promise<number> {
  const out = resolve(argv[0] ?? 'public/demo-hub');
  await writeDemoHub(out);
  console.log(`wrote the demo (${DEMO_MODEL}, ${DEMO_DATA}) to ${out}`);
  return 0;
}
