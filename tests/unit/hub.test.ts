// Hub downloads against the local test hub: listing, caching, resuming a dropped connection
// with a Range request, refusing corrupt bytes, gated repos and missing ones; data sets read
// lazily (Parquet by ranges, text streamed), split by file names, or taken from the Hub's
// Parquet conversion.
import { createHash } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, readFile, readdir, readlink, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { globRegExp, pickConfig, readmeConfigs } from '../../src/data/dataset-configs';
import { configSplitFiles, splitFiles } from '../../src/data/prepare';
import { readRows, SkipCounts, type Row } from '../../src/data/read';
import { fileUrl, HubError, isRepoId, repoSnapshot } from '../../src/hub/hub';
import { HubBlob } from '../../src/hub/hub-blob';
import { dataFiles, datasetFiles } from '../../src/hub/select';
import { fetchWhole } from '../../src/hub/transfer';
import { cacheDataset, cacheModel, hubCacheDir, hubOptionsFromEnv } from '../../src/node/hub-cache';
import { localDataSplits } from '../../src/node/local-data';
import { API_INFO, startHub, type TestHub } from '../fixtures/hub-server';
import { writeTinyCheckpoint } from '../fixtures/tiny-checkpoint';
import { tinyTexts, writeTinyDataset } from '../fixtures/tiny-data';

let root: string;
let hub: TestHub;

const CONFIGURED_FILES = [
  'chat/train-0.jsonl',
  'chat/train-1.jsonl',
  'chat/test.jsonl',
  'chat/notes.jsonl',
  'text/a.jsonl',
  'text/b.jsonl',
  'nested/train.jsonl',
  'nested/valid.jsonl',
  'other.jsonl',
];
const CONFIGURED_README = [
  '---',
  'license: mit',
  'configs:',
  '- config_name: chat',
  '  data_files:',
  '  - split: train',
  '    path: "chat/train-*"',
  '  - split: test',
  '    path: [chat/test.jsonl]',
  '- config_name: text',
  '  default: true',
  '  data_files: text/*.jsonl',
  '- config_name: sub',
  '  data_dir: nested',
  '---',
  '# A data set with configs',
].join('\n');
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
  // a data set whose README.md declares configs, as HuggingFaceH4/ultrachat_200k's and many others' do
  for (const file of CONFIGURED_FILES) {
    await mkdir(join(root, 'configured', file, '..'), { recursive: true });
    await writeFile(join(root, 'configured', file), `{"text": "${file}"}\n`);
  }
  await writeFile(join(root, 'configured', 'README.md'), CONFIGURED_README);
  hub = await startHub([
    { type: 'model', id: 'tiny-random/llama', dir: join(root, 'llama') },
    { type: 'model', id: 'tiny-random/gated', dir: join(root, 'llama'), token: 'hf_secret' },
    { type: 'dataset', id: 'tiny-random/guanaco', dir: join(root, 'data') },
    { type: 'dataset', id: 'tiny-random/scripted', dir: join(root, 'scripted'), parquet: join(root, 'converted') },
    { type: 'dataset', id: 'tiny-random/configured', dir: join(root, 'configured') },
  ]);
});
afterAll(() => hub.close());

const sha = async (path: string) =>
  createHash('sha256')
    .update(await readFile(path))
    .digest('hex');

describe('Hub downloads', () => {
  it('lists a repo at its commit and caches just the files a model needs, once', async () => {
    const snap = await repoSnapshot('tiny-random/llama', 'model', { endpoint: hub.url });
    expect(snap.commit).toMatch(/^[0-9a-f]{40}$/);
    expect(snap.files.find((f) => f.path === SHARD)!.sha256).toBe(await sha(join(root, 'llama', SHARD)));
    const cacheDir = join(root, 'cache-a');
    const { dir, files } = await cacheModel('tiny-random/llama', { endpoint: hub.url, cacheDir });
    expect(files.map((f) => f.path).sort()).toEqual([
      'config.json',
      'model-00001-of-00002.safetensors',
      'model-00002-of-00002.safetensors',
      'model.safetensors.index.json',
      'tokenizer.json',
      'tokenizer_config.json',
    ]);
    for (const f of files) expect(await sha(join(dir, f.path))).toBe(await sha(join(root, 'llama', f.path)));
    const before = hub.log.length;
    await cacheModel('tiny-random/llama', { endpoint: hub.url, cacheDir });
    expect(hub.log.length).toBe(before); // nothing fetched again
  });

  it('resumes a connection dropped mid-shard with a Range request, to identical bytes', async () => {
    hub.fault(SHARD, { kind: 'drop', after: 5000, times: 1 });
    const start = hub.log.length;
    const { dir } = await cacheModel('tiny-random/llama', {
      endpoint: hub.url,
      cacheDir: join(root, 'cache-b'),
      ...fast,
    });
    hub.clearFaults();
    const requests = hub.log.slice(start).filter((l) => l.includes(SHARD));
    expect(requests).toEqual([`tiny-random/llama/${SHARD} all`, `tiny-random/llama/${SHARD} bytes=5000-`]);
    expect(await sha(join(dir, SHARD))).toBe(await sha(join(root, 'llama', SHARD)));
  });

  it('discards a corrupt file and a truncated one, with a message that says so', async () => {
    const cacheDir = join(root, 'cache-c');
    hub.fault(SHARD, { kind: 'corrupt', at: 100 });
    await expect(cacheModel('tiny-random/llama', { endpoint: hub.url, cacheDir, ...fast })).rejects.toThrow(
      /model-00001-of-00002.safetensors is corrupt: its SHA-256 is .* the Hub lists/,
    );
    hub.fault(SHARD, { kind: 'truncate', bytes: 3000 });
    await expect(cacheModel('tiny-random/llama', { endpoint: hub.url, cacheDir, ...fast })).rejects.toThrow(
      /the server sends 3000 bytes from offset 0; the repo lists the file at \d+ bytes/,
    );
    hub.fault(SHARD, { kind: 'drop', after: 3000 }); // every time
    await expect(cacheModel('tiny-random/llama', { endpoint: hub.url, cacheDir, ...fast, retries: 2 })).rejects.toThrow(
      /failed at byte 3000 of \d+ .* 2 reconnections failed; try again: it resumes/,
    );
    hub.clearFaults();
    // nothing corrupt was kept: the next try completes from the stored part, to the right bytes
    const { dir } = await cacheModel('tiny-random/llama', { endpoint: hub.url, cacheDir, ...fast });
    expect(await sha(join(dir, SHARD))).toBe(await sha(join(root, 'llama', SHARD)));
    expect((await readdir(join(dir, '..', '..', 'blobs'))).filter((f) => f.endsWith('.incomplete'))).toEqual([]);
  });

  it('asks for a token for a gated repo, never showing it, and says what is missing', async () => {
    await expect(
      cacheModel('tiny-random/gated', { endpoint: hub.url, cacheDir: join(root, 'cache-d') }),
    ).rejects.toThrow(/asks for an access token \(401\)/);
    const wrong = cacheModel('tiny-random/gated', {
      endpoint: hub.url,
      cacheDir: join(root, 'cache-d'),
      token: 'hf_wrong',
    });
    await expect(wrong).rejects.toThrow(/refused the access token/);
    await expect(wrong).rejects.not.toThrow(/hf_wrong/);
    const { dir } = await cacheModel('tiny-random/gated', {
      endpoint: hub.url,
      cacheDir: join(root, 'cache-d'),
      token: 'hf_secret',
    });
    expect((await stat(join(dir, SHARD))).size).toBeGreaterThan(0);
    await expect(
      cacheModel('tiny-random/nope', { endpoint: hub.url, cacheDir: join(root, 'cache-d') }),
    ).rejects.toThrow(/model tiny-random\/nope was not found on the Hub \(404\)/);
    expect(isRepoId('../etc/passwd')).toBe(false);
    expect(isRepoId('timdettmers/openassistant-guanaco')).toBe(true);
  });

  it("takes a data set's files, and splits them by their names", async () => {
    const { dir, files } = await cacheDataset('tiny-random/guanaco', {
      endpoint: hub.url,
      cacheDir: join(root, 'cache-e'),
    });
    expect(files.map((f) => f.path).sort()).toEqual([
      'tiny.csv',
      'tiny.json',
      'tiny.jsonl',
      'tiny.parquet',
      'tiny.txt',
    ]);
    expect((await stat(join(dir, 'tiny.parquet'))).size).toBeGreaterThan(0);
    // as datasets resolves a repo's files into splits (data_files.py: the sharded layout first,
    // then split keywords in folder names, then in file names; else everything is train)
    const split = (...names: string[]) =>
      Object.fromEntries(
        Object.entries(splitFiles(names.map((name) => ({ name })))).map(([k, v]) => [k, v!.map((f) => f.name)]),
      );
    // HuggingFaceH4/ultrachat_200k: four splits, named as they are, never merged into train and test
    expect(
      split(
        'data/train_sft-00000-of-00003.parquet',
        'data/train_sft-00001-of-00003.parquet',
        'data/test_sft-00000-of-00001.parquet',
        'data/train_gen-00000-of-00003.parquet',
        'data/test_gen-00000-of-00001.parquet',
      ),
    ).toEqual({
      train_sft: ['data/train_sft-00000-of-00003.parquet', 'data/train_sft-00001-of-00003.parquet'],
      test_sft: ['data/test_sft-00000-of-00001.parquet'],
      train_gen: ['data/train_gen-00000-of-00003.parquet'],
      test_gen: ['data/test_gen-00000-of-00001.parquet'],
    });
    // folders first: the nearest that names a split (train_sub/test is test)
    expect(
      split('default/test/0000.parquet', 'default/validation/0000.parquet', 'train_sub/test/0001.parquet'),
    ).toEqual({
      test: ['default/test/0000.parquet', 'train_sub/test/0001.parquet'],
      validation: ['default/validation/0000.parquet'],
    });
    // then file names; a file that names no split is left out once others name theirs
    expect(
      split('openassistant_best_replies_train.jsonl', 'openassistant_best_replies_eval.jsonl', 'notes.jsonl'),
    ).toEqual({
      train: ['openassistant_best_replies_train.jsonl'],
      test: ['openassistant_best_replies_eval.jsonl'],
    });
    // none names a split: all are training data
    expect(split('a.jsonl', 'b.csv')).toEqual({ train: ['a.jsonl', 'b.csv'] });
  });

  it('reads Hub data lazily: Parquet by byte ranges, a row group at a time; JSONL streamed and checked', async () => {
    const o = { endpoint: hub.url, ...fast };
    const { snapshot, files } = await datasetFiles('tiny-random/guanaco', o);
    const read = async (path: string) => {
      const rows: Row[] = [];
      for await (const r of readRows(
        path,
        HubBlob.of(snapshot, files.find((f) => f.path === path)!, o),
        new SkipCounts(),
      ))
        rows.push(r);
      return rows;
    };
    const expected = tinyTexts().map((text) => ({ text }));
    hub.log.length = 0;
    expect(await read('tiny.parquet')).toEqual(expected);
    // the footer is read first, then the row groups, each read by a byte range: never the whole file
    const parquet = hub.log.filter((l) => l.startsWith('tiny-random/guanaco/tiny.parquet'));
    expect(parquet.filter((l) => /bytes=\d+-\d*$/.test(l)).length, parquet.join('\n')).toBeGreaterThanOrEqual(3);
    expect(
      parquet.filter((l) => l.endsWith(' all')),
      parquet.join('\n'),
    ).toEqual([]);
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
    // a scripted data set's configs are its conversion's folders: a name is looked for there
    expect((await datasetFiles('tiny-random/scripted', o, 'default')).files.length).toBe(2);
    await expect(datasetFiles('tiny-random/scripted', o, 'mrpc')).rejects.toThrow(
      `tiny-random/scripted's Parquet conversion has no config "mrpc"; it has default`,
    );
    await expect(datasetFiles('tiny-random/llama-less', o)).rejects.toThrow(/not found|does not exist/i);
    const f = (path: string) => ({ path, size: 1, sha256: null });
    expect(
      dataFiles([f('dataset_infos.json'), f('data/train.jsonl'), f('README.md'), f('.gitattributes')], 'x').map(
        (x) => x.path,
      ),
    ).toEqual(['data/train.jsonl']);
  });
});

describe("a data set's configs, as datasets reads its README.md", () => {
  const paths = (splits: Record<string, { name: string }[] | undefined>) =>
    Object.fromEntries(Object.entries(splits).map(([k, v]) => [k, v!.map((f) => f.name)]));

  it('takes the default config, or the one named, and only its files; offline too', async () => {
    const o = { endpoint: hub.url, cacheDir: join(root, 'cache-configs') };
    // `default: true` marks "text": its one pattern makes a train split
    const text = await datasetFiles('tiny-random/configured', o);
    expect(text.config?.name).toBe('text');
    expect(
      paths(
        configSplitFiles(
          text.files.map((f) => ({ name: f.path })),
          text.config,
          'x',
        ),
      ),
    ).toEqual({
      train: ['text/a.jsonl', 'text/b.jsonl'],
    });
    // "chat" by name: each split's patterns, files no pattern names (notes.jsonl) left out, nothing else fetched
    hub.log.length = 0;
    const chat = await cacheDataset('tiny-random/configured', { ...o, config: 'chat' });
    const fetched = hub.log.map((l) => l.split(' ')[0].replace('tiny-random/configured/', '')).sort();
    expect(fetched).toEqual(['README.md', 'chat/test.jsonl', 'chat/train-0.jsonl', 'chat/train-1.jsonl']);
    const want = { train: ['chat/train-0.jsonl', 'chat/train-1.jsonl'], test: ['chat/test.jsonl'] };
    expect(
      paths(
        configSplitFiles(
          chat.files.map((f) => ({ name: f.path })),
          chat.config,
          'x',
        ),
      ),
    ).toEqual(want);
    // offline, the cached README.md chooses the same files, with no request
    hub.log.length = 0;
    const offline = await cacheDataset('tiny-random/configured', { ...o, config: 'chat', offline: true });
    expect(
      paths(
        configSplitFiles(
          offline.files.map((f) => ({ name: f.path })),
          offline.config,
          'x',
        ),
      ),
    ).toEqual(want);
    expect(hub.log).toEqual([]);
    // a data_dir alone: its files split by their names inside it
    const sub = await datasetFiles('tiny-random/configured', o, 'sub');
    expect(
      paths(
        configSplitFiles(
          sub.files.map((f) => ({ name: f.path })),
          sub.config,
          'x',
        ),
      ),
    ).toEqual({
      train: ['nested/train.jsonl'],
      validation: ['nested/valid.jsonl'],
    });
    await expect(datasetFiles('tiny-random/configured', o, 'nope')).rejects.toThrow(
      'tiny-random/configured has no config "nope"; its configs are "chat", "text", "sub"',
    );
    await expect(datasetFiles('tiny-random/guanaco', o, 'nope')).rejects.toThrow(
      'has no config "nope": its README.md names no configs, so it has only "default"',
    );
    // a local folder laid out the same way reads the same
    expect(paths(await localDataSplits(join(root, 'configured'), 'chat'))).toEqual(want);
    expect(paths(await localDataSplits(join(root, 'configured')))).toEqual({ train: ['text/a.jsonl', 'text/b.jsonl'] });
  });

  it("picks the default as load_dataset does, and matches fsspec's globs", () => {
    const card = (configs: string) => readmeConfigs(`---\nconfigs:\n${configs}\n---\n`, 'd');
    const two = card('- config_name: a\n  data_files: a.csv\n- config_name: b\n  data_files: b.csv');
    expect(() => pickConfig(two, null, 'd')).toThrow('d has several configs and no default one: pick one of "a", "b"');
    expect(pickConfig(two.slice(1), null, 'd')?.name).toBe('b'); // the only one
    expect(pickConfig(card('- config_name: x\n- config_name: default'), null, 'd')?.name).toBe('default');
    expect(() => pickConfig(card('- config_name: x\n  default: true\n- config_name: default'), null, 'd')).toThrow(
      'several default configs',
    );
    expect(readmeConfigs('# no front matter\nconfigs: []', 'd')).toEqual([]);
    expect(() => card('- data_files: a.csv')).toThrow('configs[0] must be a mapping with a "config_name"');
    expect(() => card('- config_name: a\n  data_files: [{split: train}]')).toThrow('"data_files" must be');
    const twice = '- config_name: a\n  data_files: [{split: train, path: a}, {split: train, path: b}]';
    expect(() => card(twice)).toThrow('the split "train" is given twice');
    expect(card('- config_name: a\n  data_dir: ./en/')[0].dataDir).toBe('en');
    const match = (pattern: string, path: string) => globRegExp(pattern).test(path);
    expect(match('data/*.parquet', 'data/a.parquet')).toBe(true);
    expect(match('data/*.parquet', 'data/x/a.parquet')).toBe(false); // * stays inside a folder
    expect(match('data/**/*.parquet', 'data/x/y/a.parquet')).toBe(true);
    expect(match('data/**/*.parquet', 'data/a.parquet')).toBe(true); // **/ may be no folder at all
    expect(match('data/train-?.jsonl', 'data/train-1.jsonl')).toBe(true);
    expect(match('[!t]*.csv', 'train.csv')).toBe(false);
    expect(match('a.b(1).csv', 'a.b(1).csv')).toBe(true); // the rest is literal
    expect(match('a.b.csv', 'aXb.csv')).toBe(false);
  });
});

describe("huggingface_hub's cache, shared with Python", () => {
  // huggingface_hub's layout (file_download.py): blobs named by the LFS SHA-256 or the git blob id,
  // snapshots/<commit>/<path> linking to them relatively, refs/<revision> holding the commit
  const gitBlobId = (bytes: Buffer) =>
    createHash('sha1')
      .update(Buffer.concat([Buffer.from(`blob ${bytes.length}\0`), bytes]))
      .digest('hex');

  it('lays a download out as huggingface_hub does: blobs, snapshot links, refs/main', async () => {
    const cacheDir = join(root, 'hf-a');
    const { dir, snapshot } = await cacheModel('tiny-random/llama', { endpoint: hub.url, cacheDir });
    const repoDir = join(cacheDir, 'models--tiny-random--llama');
    expect(dir).toBe(join(repoDir, 'snapshots', snapshot.commit));
    expect(await readFile(join(repoDir, 'refs', 'main'), 'utf8')).toBe(snapshot.commit);
    // an LFS file's blob is its SHA-256; a small file's, its git blob id
    expect(await readlink(join(dir, SHARD))).toBe(`../../blobs/${await sha(join(root, 'llama', SHARD))}`);
    const config = await readFile(join(root, 'llama', 'config.json'));
    expect(await readlink(join(dir, 'config.json'))).toBe(`../../blobs/${gitBlobId(config)}`);
    expect(await readFile(join(dir, 'config.json'))).toEqual(config);
    expect((await readdir(join(repoDir, 'blobs'))).filter((f) => f.endsWith('.incomplete'))).toEqual([]);
  });

  it('uses a model Python downloaded, fetching nothing, and works offline from it', async () => {
    // the cache as huggingface_hub's snapshot_download leaves it (built by hand from the rule above)
    const cacheDir = join(root, 'hf-python');
    const snap = await repoSnapshot('tiny-random/llama', 'model', { endpoint: hub.url });
    const repoDir = join(cacheDir, 'models--tiny-random--llama');
    await mkdir(join(repoDir, 'blobs'), { recursive: true });
    for (const f of snap.files) {
      const bytes = await readFile(join(root, 'llama', f.path));
      const etag = f.sha256 ?? gitBlobId(bytes);
      await writeFile(join(repoDir, 'blobs', etag), bytes);
      const at = join(repoDir, 'snapshots', snap.commit, f.path);
      await mkdir(join(at, '..'), { recursive: true });
      await symlink(`../../blobs/${etag}`, at);
    }
    await mkdir(join(repoDir, 'refs'));
    await writeFile(join(repoDir, 'refs', 'main'), snap.commit);
    const before = hub.log.length;
    const online = await cacheModel('tiny-random/llama', { endpoint: hub.url, cacheDir });
    expect(hub.log.length).toBe(before); // the listing is an API call; no file was fetched
    // offline: no request at all (a dead endpoint), the revision through refs/main
    const offline = await cacheModel('tiny-random/llama', { endpoint: 'http://127.0.0.1:9', cacheDir, offline: true });
    expect(offline.dir).toBe(online.dir);
    expect(offline.files.map((f) => f.path).sort()).toEqual(online.files.map((f) => f.path).sort());
    await expect(
      cacheModel('tiny-random/gated', { endpoint: 'http://127.0.0.1:9', cacheDir, offline: true }),
    ).rejects.toThrow(/HF_HUB_OFFLINE is set and the cache holds no model tiny-random\/gated at main/);
    // a ref that names no commit, and a revision that would leave refs/, find nothing (not the
    // files of the folder a path in them would reach)
    await mkdir(join(repoDir, 'outside'));
    await writeFile(join(repoDir, 'outside', 'config.json'), '{}');
    await writeFile(join(repoDir, 'refs', 'broken'), '../outside');
    for (const revision of ['broken', '../../refs/main'])
      await expect(
        cacheModel('tiny-random/llama', { endpoint: 'http://127.0.0.1:9', cacheDir, offline: true, revision }),
      ).rejects.toThrow(`the cache holds no model tiny-random/llama at ${revision}`);
  });

  it('finds the cache and the token where huggingface_hub does: HF_HUB_CACHE, HF_HOME, the token file', async () => {
    const saved = { ...process.env };
    try {
      const home = join(root, 'hf-home');
      await mkdir(home, { recursive: true });
      await writeFile(join(home, 'token'), 'hf_from_login\n');
      for (const k of ['HF_HUB_CACHE', 'HUGGINGFACE_HUB_CACHE', 'HF_TOKEN', 'HUGGING_FACE_HUB_TOKEN', 'HF_TOKEN_PATH'])
        delete process.env[k];
      process.env.HF_HOME = home;
      expect(hubCacheDir()).toBe(join(home, 'hub'));
      expect(hubOptionsFromEnv().token).toBe('hf_from_login');
      process.env.HF_TOKEN = 'hf_env';
      expect(hubOptionsFromEnv().token).toBe('hf_env');
      process.env.HF_HUB_CACHE = join(root, 'elsewhere');
      expect(hubCacheDir()).toBe(join(root, 'elsewhere'));
      delete process.env.HF_HOME;
      delete process.env.HF_HUB_CACHE;
      process.env.XDG_CACHE_HOME = join(root, 'xdg');
      expect(hubCacheDir()).toBe(join(root, 'xdg', 'huggingface', 'hub'));
    } finally {
      for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
      Object.assign(process.env, saved);
    }
  });
});

describe('a Hub that stalls, storms or lies', () => {
  // short limits: a read waits 300 ms for the server, a file loses at most 1 s to failures
  const limits = { idleMs: 300, retryBudgetMs: 1000, backoff: 20 };
  const model = async () => {
    const o = { endpoint: hub.url, ...limits };
    const snapshot = await repoSnapshot('tiny-random/llama', 'model', o);
    const file = (path: string) => snapshot.files.find((f) => f.path === path)!;
    return { o, snapshot, file, url: (path: string) => fileUrl(snapshot, path, o) };
  };

  it('ends a stall before the headers or mid-body in a HubError naming the URL; a pause stays a pause', async () => {
    const { o, file, url } = await model();
    for (const fault of [{ kind: 'stall' } as const, { kind: 'stall', after: 100 } as const]) {
      hub.fault('config.json', fault);
      const read = fetchWhole(url('config.json'), file('config.json'), o);
      await expect(read).rejects.toThrow(HubError);
      const stalled = /llama\/resolve\/[0-9a-f]{40}\/config\.json: the server sent no (answer|bytes) for 300 ms/;
      await expect(read).rejects.toThrow(stalled);
    }
    hub.fault(API_INFO, { kind: 'stall' });
    await expect(repoSnapshot('tiny-random/llama', 'model', o)).rejects.toThrow(
      /api\/models\/tiny-random\/llama\/revision\/main: the server sent no answer/,
    );
    // the user's abort during a stall is an AbortError, not a timeout
    hub.fault('config.json', { kind: 'stall' });
    const pause = new AbortController();
    const paused = fetchWhole(url('config.json'), file('config.json'), { ...o, idleMs: 60_000, signal: pause.signal });
    setTimeout(() => pause.abort(), 50);
    await expect(paused).rejects.toMatchObject({ name: 'AbortError' });
    hub.clearFaults();
  });

  it('stops a 5xx storm at the retry budget, not after retries times a growing backoff', async () => {
    const { o, file, url } = await model();
    hub.fault('config.json', { kind: 'status', status: 503 });
    const before = hub.log.length;
    const storm = fetchWhole(url('config.json'), file('config.json'), { ...o, retries: 1000, backoff: 100 });
    await expect(storm).rejects.toThrow(
      /config.json \(http:.*\): the download failed at byte 0 of \d+ \(.*answered 503.* s lost to failures\) and/,
    );
    // the backoffs alone (100, 200, 400 ms, then 800) pass the 1 s budget by the fifth request, however slow
    const requests = hub.log.length - before;
    expect(requests).toBeGreaterThan(1);
    expect(requests).toBeLessThanOrEqual(5);
    hub.clearFaults();
  });

  it('believes no size a listing or a server gives: nothing is allocated on their word', async () => {
    const { o, file, url } = await model();
    const before = hub.log.length;
    const huge = { ...file('config.json'), size: 3e9 };
    await expect(fetchWhole(url('config.json'), huge, o)).rejects.toThrow(
      /config.json .* is listed at 3000000000 bytes; a config.json is read whole only up to 16 MiB/,
    );
    expect(hub.log.length).toBe(before); // refused before asking
    // a HubBlob's listed size reserves nothing either: the server's real bytes end it
    const { snapshot, files } = await datasetFiles('tiny-random/guanaco', o);
    const parquet = files.find((f) => f.path === 'tiny.parquet')!;
    await expect(HubBlob.of(snapshot, { ...parquet, size: 2 ** 44 }, o).arrayBuffer()).rejects.toThrow(
      /tiny.parquet .*: the server sends \d+ bytes from offset 0; the repo lists the file at 175921/,
    );
    hub.fault('config.json', { kind: 'oversend', bytes: 5 });
    await expect(fetchWhole(url('config.json'), file('config.json'), o)).rejects.toThrow(
      /config.json .*: the server sent more than the \d+ bytes asked/,
    );
    hub.clearFaults();
  });

  it('refuses a listing that is not a list of safe files, naming the repo and the field', async () => {
    const o = { endpoint: hub.url, ...limits };
    const cases: [unknown, RegExp][] = [
      [{ files: [] }, /the Hub's listing for model tiny-random\/llama is not what a Hub sends .* a JSON array of file/],
      [
        [{ type: 'file', path: '../../.bashrc', size: 1 }],
        /listing of model tiny-random\/llama is not usable: entry 0: path "..\/..\/.bashrc" could leave the repo's/,
      ],
      [
        [{ type: 'file', path: 'a.bin', size: -1 }],
        /listing of model tiny-random\/llama .*entry 0 \(a.bin\): size is -1; a file's size is a whole number/,
      ],
      [
        [{ type: 'file', path: 'a.bin', size: 1, lfs: { oid: 'xyz', size: 1 } }],
        /entry 0 \(a.bin\): lfs.oid is "xyz"; it is a SHA-256, 64 lowercase hex digits/,
      ],
    ];
    for (const [tree, message] of cases) {
      hub.answer('tiny-random/llama', 'tree', tree);
      await expect(repoSnapshot('tiny-random/llama', 'model', o)).rejects.toThrow(message);
    }
    hub.clearFaults();
    hub.answer('tiny-random/llama', 'revision', { sha: '../../../etc' });
    await expect(repoSnapshot('tiny-random/llama', 'model', o)).rejects.toThrow(
      /info for model tiny-random\/llama gives sha "..\/..\/..\/etc", which is not a commit/,
    );
    hub.clearFaults();
    hub.fault(API_INFO, { kind: 'redirect-loop' });
    await expect(repoSnapshot('tiny-random/llama', 'model', o)).rejects.toThrow(
      /tiny-random\/llama\/revision\/main: the server redirects without end/,
    );
    hub.clearFaults();
  });
});
