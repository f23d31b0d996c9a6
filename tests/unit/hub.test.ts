// Hub downloads against the local test hub: listing, caching, resuming a dropped connection
// with a Range request, refusing corrupt bytes, gated repos and missing ones; data sets read
// lazily (Parquet by ranges, text streamed), split by file names, or taken from the Hub's
// Parquet conversion.
import { createHash } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { splitFiles } from '../../src/data/prepare';
import { readRows, SkipCounts, type Row } from '../../src/data/read';
import { isRepoId, repoSnapshot } from '../../src/hub/hub';
import { HubBlob } from '../../src/hub/hub-blob';
import { dataFiles, datasetFiles } from '../../src/hub/select';
import { cacheDataset, cacheModel } from '../../src/node/hub-cache';
import { startHub, type TestHub } from '../fixtures/hub-server';
import { writeTinyCheckpoint } from '../fixtures/tiny-checkpoint';
import { tinyTexts, writeTinyDataset } from '../fixtures/tiny-data';

let root: string;
let hub: TestHub;
const SHARD = 'model-00001-of-00002.safetensors';
const fast = { backoff: 10 };

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'hub-'));
  await writeTinyCheckpoint(join(root, 'llama'), 'llama', 3);
  const data = await writeTinyDataset(join(root, 'data'));
  // a data set only a loading script reads, and the Hub's Parquet conversion of it
  await mkdir(join(root, 'scripted'));
  await writeFile(join(root, 'scripted', 'scripted.py'), 'import datasets\n');
  await writeFile(join(root, 'scripted', 'dataset_infos.json'), '{"default": {}}\n');
  await writeFile(join(root, 'scripted', 'raw.txt'), 'the script reads this\n'); // not rows: the script's input
  for (const split of ['train', 'test']) {
    await mkdir(join(root, 'converted', 'default', split), { recursive: true });
    await copyFile(data.parquet, join(root, 'converted', 'default', split, '0000.parquet'));
  }
  hub = await startHub([
    { type: 'model', id: 'tiny-random/llama', dir: join(root, 'llama') },
    { type: 'model', id: 'tiny-random/gated', dir: join(root, 'llama'), token: 'hf_secret' },
    { type: 'dataset', id: 'tiny-random/guanaco', dir: join(root, 'data') },
    { type: 'dataset', id: 'tiny-random/scripted', dir: join(root, 'scripted'), parquet: join(root, 'converted') },
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

  it("takes a data set's files, and splits them by their names", async () => {
    const { dir, files } = await cacheDataset('tiny-random/guanaco', { endpoint: hub.url, cacheDir: join(root, 'cache-e') });
    expect(files.map((f) => f.path).sort()).toEqual(['tiny.csv', 'tiny.json', 'tiny.jsonl', 'tiny.parquet', 'tiny.txt']);
    expect((await stat(join(dir, 'tiny.parquet'))).size).toBeGreaterThan(0);
    const named = ['openassistant_best_replies_train.jsonl', 'openassistant_best_replies_eval.jsonl', 'data/validation-00000-of-00001.parquet', 'default/test/0000.parquet', 'train_sub/test/0001.parquet'];
    expect(splitFiles(named.map((name) => ({ name })))).toEqual({
      train: [{ name: named[0] }], test: [{ name: named[1] }, { name: named[3] }, { name: named[4] }], validation: [{ name: named[2] }],
    });
    expect(splitFiles([{ name: 'a.jsonl' }, { name: 'b.csv' }])).toEqual({ train: [{ name: 'a.jsonl' }, { name: 'b.csv' }] });
    // a file that names no split is for training; one named for evaluation never is
    expect(splitFiles([{ name: 'data.jsonl' }, { name: 'eval.jsonl' }])).toEqual({ train: [{ name: 'data.jsonl' }], test: [{ name: 'eval.jsonl' }] });
  });

  it('reads a Hub data set lazily: Parquet by byte ranges, a row group at a time; JSONL streamed and checked', async () => {
    const o = { endpoint: hub.url, ...fast };
    const { snapshot, files } = await datasetFiles('tiny-random/guanaco', o);
    const read = async (path: string) => {
      const rows: Row[] = [];
      for await (const r of readRows(path, HubBlob.of(snapshot, files.find((f) => f.path === path)!, o), new SkipCounts())) rows.push(r);
      return rows;
    };
    const expected = tinyTexts().map((text) => ({ text }));
    hub.log.length = 0;
    expect(await read('tiny.parquet')).toEqual(expected);
    // the footer is read first (hyparquet reads the last 512 KiB, here the whole tiny file), then
    // each of the two row groups by its own byte range
    const ranges = hub.log.filter((l) => l.startsWith('tiny-random/guanaco/tiny.parquet') && /bytes=\d+-\d+$/.test(l));
    expect(ranges.length, hub.log.join('\n')).toBeGreaterThanOrEqual(3);
    expect(await read('tiny.jsonl')).toEqual(expected);
    hub.fault('tiny.jsonl', { kind: 'corrupt', at: 3 });
    await expect(read('tiny.jsonl')).rejects.toThrow(/tiny.jsonl is corrupt: its SHA-256/);
    // the first two requests (the 4-byte head, the whole file) are cut at byte 40: the second resumes
    hub.fault('tiny.jsonl', { kind: 'drop', after: 40, times: 2 });
    expect(await read('tiny.jsonl')).toEqual(expected); // a dropped connection resumes by a Range request
    expect(hub.log).toContain('tiny-random/guanaco/tiny.jsonl bytes=40-');
    hub.clearFaults();
  });

  it("takes the Hub's Parquet conversion of a data set it cannot read itself, with its splits", async () => {
    const o = { endpoint: hub.url };
    const { snapshot, files } = await datasetFiles('tiny-random/scripted', o);
    expect(files.map((f) => f.path)).toEqual(['default/test/0000.parquet', 'default/train/0000.parquet']);
    expect(snapshot.commit).not.toBe((await repoSnapshot('tiny-random/scripted', 'dataset', o)).commit);
    const splits = splitFiles(files);
    expect(Object.keys(splits).sort()).toEqual(['test', 'train']);
    await expect(datasetFiles('tiny-random/llama-less', o)).rejects.toThrow(/not found|does not exist/i);
    const f = (path: string) => ({ path, size: 1, sha256: null });
    expect(dataFiles([f('dataset_infos.json'), f('data/train.jsonl'), f('README.md'), f('.gitattributes')], 'x').map((x) => x.path)).toEqual(['data/train.jsonl']);
  });
});
