// Hub downloads against the local test hub: listing, caching, resuming a dropped connection
// with a Range request, refusing corrupt bytes, gated repos and missing ones.
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, readdir, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isRepoId, repoSnapshot } from '../../src/hub/hub';
import { cacheDataset, cacheModel } from '../../src/node/hub-cache';
import { startHub, type TestHub } from '../fixtures/hub-server';
import { writeTinyCheckpoint } from '../fixtures/tiny-checkpoint';
import { writeTinyDataset } from '../fixtures/tiny-data';

let root: string;
let hub: TestHub;
const SHARD = 'model-00001-of-00002.safetensors';
const fast = { backoff: 10 };

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'hub-'));
  await writeTinyCheckpoint(join(root, 'llama'), 'llama', 3);
  await writeTinyDataset(join(root, 'data'));
  hub = await startHub([
    { type: 'model', id: 'tiny-random/llama', dir: join(root, 'llama') },
    { type: 'model', id: 'tiny-random/gated', dir: join(root, 'llama'), token: 'hf_secret' },
    { type: 'dataset', id: 'tiny-random/guanaco', dir: join(root, 'data') },
  ]);
});
afterAll(() => hub.close());

const sha = async (path: string) => createHash('sha256').update(await readFile(path)).digest('hex');

describe('Hub downloads', () => {
  it('lists a repo at its commit and caches just the files a model needs, once', async () => {
    const snap = await repoSnapshot('tiny-random/llama', 'model', { endpoint: hub.url });
    expect(snap.commit).toMatch(/^[0-9a-f]{40}$/);
    expect(snap.files.find((f) => f.path === SHARD)!.sha256).toBe(await sha(join(root, 'llama', SHARD)));
    const cacheDir = join(root, 'cache-a');
    const { dir, files } = await cacheModel('tiny-random/llama', { endpoint: hub.url, cacheDir });
    expect(files.map((f) => f.path).sort()).toEqual(['config.json', 'model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors',
      'model.safetensors.index.json', 'tokenizer.json', 'tokenizer_config.json']);
    for (const f of files) expect(await sha(join(dir, f.path))).toBe(await sha(join(root, 'llama', f.path)));
    const before = hub.log.length;
    await cacheModel('tiny-random/llama', { endpoint: hub.url, cacheDir });
    expect(hub.log.length).toBe(before); // nothing fetched again
  });

  it('resumes a connection dropped mid-shard with a Range request, to identical bytes', async () => {
    hub.fault(SHARD, { kind: 'drop', after: 5000, times: 1 });
    const start = hub.log.length;
    const { dir } = await cacheModel('tiny-random/llama', { endpoint: hub.url, cacheDir: join(root, 'cache-b'), ...fast });
    hub.clearFaults();
    const requests = hub.log.slice(start).filter((l) => l.includes(SHARD));
    expect(requests).toEqual([`tiny-random/llama/${SHARD} all`, `tiny-random/llama/${SHARD} bytes=5000-`]);
    expect(await sha(join(dir, SHARD))).toBe(await sha(join(root, 'llama', SHARD)));
  });

  it('discards a corrupt file and a truncated one, with a message that says so', async () => {
    const cacheDir = join(root, 'cache-c');
    hub.fault(SHARD, { kind: 'corrupt', at: 100 });
    await expect(cacheModel('tiny-random/llama', { endpoint: hub.url, cacheDir, ...fast })).rejects.toThrow(/model-00001-of-00002.safetensors is corrupt: its SHA-256 is .* the Hub lists/);
    hub.fault(SHARD, { kind: 'truncate', bytes: 3000 });
    await expect(cacheModel('tiny-random/llama', { endpoint: hub.url, cacheDir, ...fast })).rejects.toThrow(/the server sends 3000 bytes from offset 0; the repo lists the file at \d+ bytes/);
    hub.fault(SHARD, { kind: 'drop', after: 3000 }); // every time
    await expect(cacheModel('tiny-random/llama', { endpoint: hub.url, cacheDir, ...fast, retries: 2 })).rejects.toThrow(/failed at byte 3000 of \d+ .* 2 reconnections failed; try again: it resumes/);
    hub.clearFaults();
    // nothing corrupt was kept: the next try completes from the stored part, to the right bytes
    const { dir } = await cacheModel('tiny-random/llama', { endpoint: hub.url, cacheDir, ...fast });
    expect(await sha(join(dir, SHARD))).toBe(await sha(join(root, 'llama', SHARD)));
    expect((await readdir(dir)).filter((f) => f.endsWith('.part'))).toEqual([]);
  });

  it('asks for a token for a gated repo, never showing it, and says what is missing', async () => {
    await expect(cacheModel('tiny-random/gated', { endpoint: hub.url, cacheDir: join(root, 'cache-d') })).rejects.toThrow(/asks for an access token \(401\)/);
    const wrong = cacheModel('tiny-random/gated', { endpoint: hub.url, cacheDir: join(root, 'cache-d'), token: 'hf_wrong' });
    await expect(wrong).rejects.toThrow(/refused the access token/);
    await expect(wrong).rejects.not.toThrow(/hf_wrong/);
    const { dir } = await cacheModel('tiny-random/gated', { endpoint: hub.url, cacheDir: join(root, 'cache-d'), token: 'hf_secret' });
    expect((await stat(join(dir, SHARD))).size).toBeGreaterThan(0);
    await expect(cacheModel('tiny-random/nope', { endpoint: hub.url, cacheDir: join(root, 'cache-d') })).rejects.toThrow(/model tiny-random\/nope was not found on the Hub \(404\)/);
    expect(isRepoId('../etc/passwd')).toBe(false);
    expect(isRepoId('timdettmers/openassistant-guanaco')).toBe(true);
  });

  it("takes a data set's files for the train split", async () => {
    const { dir, files } = await cacheDataset('tiny-random/guanaco', { endpoint: hub.url, cacheDir: join(root, 'cache-e') });
    expect(files.map((f) => f.path).sort()).toEqual(['tiny.csv', 'tiny.json', 'tiny.jsonl', 'tiny.parquet', 'tiny.txt']);
    expect((await stat(join(dir, 'tiny.parquet'))).size).toBeGreaterThan(0);
  });
});
