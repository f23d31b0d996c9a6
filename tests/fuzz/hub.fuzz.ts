// The hostile Hub: the local test Hub (tests/fixtures/hub-server.ts), started in this process,
// stalls, lies about sizes, redirects in a loop, answers 5xx without end, and lists garbage:
// paths that climb out of the repo, sizes that are not sizes, a listing that is not a list.
// Each case drives the real code (the listing, a small file read whole, a Hub file read lazily,
// the command line's Hub cache) with short time limits, and must end in a clear error that
// names the repo (every Hub error names the repo or a URL that holds it), in bounded time.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileUrl, repoSnapshot } from '../../src/hub/hub';
import { HubBlob } from '../../src/hub/hub-blob';
import { datasetFiles } from '../../src/hub/select';
import { fetchWhole, type TransferOptions } from '../../src/hub/transfer';
import { cacheModel } from '../../src/node/hub-cache';
import { API_INFO, API_TREE, startHub, type Fault, type TestHub } from '../fixtures/hub-server';
import { writeTinyCheckpoint } from '../fixtures/tiny-checkpoint';
import { writeTinyDataset } from '../fixtures/tiny-data';
import { fuzzMain } from './child';
import type { FuzzSuite } from './harness';
import { mutateJson, rng } from './mutate';

const MODEL = 'tiny-random/llama';
const DATA = 'tiny-random/data';
const SHARD = 'model-00001-of-00002.safetensors';
/** Short limits, so a stall ends in about a second: 300 ms of silence per read, 1 s of retrying. */
const LIMITS: TransferOptions = { idleMs: 300, retryBudgetMs: 1000, backoff: 20, retries: 4 };

/** What a case does with the Hub once its faults are set. */
type Act = 'snapshot' | 'dataset' | 'whole' | 'stream' | 'slice' | 'cache';

interface Case {
  what: string;
  act: Act;
  faults?: [string, Fault][];
  /** The body the model's listing (`tree`) or info (`revision`) call returns instead of the real one. */
  tree?: unknown;
  info?: unknown;
  /** What the error must name besides the repo: the field at fault. */
  field?: string;
  /** For a file read: the size the listing gives it instead of its real one (a listing that lies). */
  listed?: number | 'one byte more';
}

type Entry = { type: string; path: string; size: number; oid: string; lfs?: { oid: string; size: number } };

let world: Promise<{ hub: TestHub; listing: Entry[]; root: string }> | undefined;

/** The Hub with a tiny model and a tiny data set, started once for the whole suite. */
function hubWorld() {
  world ??= (async () => {
    const root = await mkdtemp(join(tmpdir(), 'hub-fuzz-'));
    await writeTinyCheckpoint(join(root, 'llama'), 'llama', 3);
    await writeTinyDataset(join(root, 'data'));
    const hub = await startHub([
      { type: 'model', id: MODEL, dir: join(root, 'llama') },
      { type: 'dataset', id: DATA, dir: join(root, 'data') },
    ]);
    const listing = await fetch(`${hub.url}/api/models/${MODEL}/tree/main?recursive=true`);
    return { hub, listing: (await listing.json()) as Entry[], root };
  })();
  return world;
}

const stall = (after?: number): Fault => ({ kind: 'stall', after });
const storm = (status: 500 | 502 | 503 | 429): Fault => ({ kind: 'status', status });
/** The file each way of reading reads. */
const FILE: Record<Act, string> = {
  snapshot: '',
  dataset: '',
  whole: 'config.json',
  stream: 'tiny.jsonl',
  slice: 'tiny.parquet',
  cache: SHARD,
};

/** The hand-written cases: each fault against each way of reading that it threatens. */
function handWritten(listing: Entry[]): Case[] {
  const cases: Case[] = [];
  const add = (what: string, c: Omit<Case, 'what'>) => cases.push({ what, ...c });

  // the listing and the info calls
  for (const [name, target] of [
    ['info', API_INFO],
    ['listing', API_TREE],
  ] as const) {
    add(`${name}: stall before headers`, { act: 'snapshot', faults: [[target, stall()]] });
    add(`${name}: redirect loop`, { act: 'snapshot', faults: [[target, { kind: 'redirect-loop' }]] });
    add(`${name}: 503 storm`, { act: 'snapshot', faults: [[target, storm(503)]] });
    add(`${name}: 429 storm, data set`, { act: 'dataset', faults: [[target, storm(429)]] });
  }
  const trees: [string, unknown][] = [
    ['an object', {}],
    ['null', null],
    ['a number', 42],
    ['a string', '"files"'],
    ['not JSON', '[{"path": "con'],
    ['an array of numbers', [1, 2, 3]],
    ['an array of strings', ['config.json']],
    ['nested arrays', [[]]],
  ];
  for (const [what, tree] of trees) {
    add(`listing is ${what}`, { act: 'snapshot', tree, field: what === 'not JSON' ? 'JSON' : 'listing' });
  }
  const entry = (e: Record<string, unknown>) => [
    { type: 'file', path: 'config.json', size: 10, oid: 'a'.repeat(40), ...e },
  ];
  const entries: [string, unknown[]][] = [
    ['no path', entry({ path: undefined })],
    ['a numeric path', entry({ path: 7 })],
    ['no size', entry({ size: undefined })],
    ['a negative size', entry({ size: -1 })],
    ['a fractional size', entry({ size: 1.5 })],
    ['a size of 2^50', entry({ size: 2 ** 50 })],
    ['a size of 1e308', entry({ size: 1e308 })],
    ['a size as text', entry({ size: '10' })],
    ['a path with ../', entry({ path: '../../etc/passwd' })],
    ['a path ending in ..', entry({ path: 'a/..' })],
    ['an absolute path', entry({ path: '/etc/passwd' })],
    ['a backslash path', entry({ path: '..\\..\\x.json' })],
    ['an empty path', entry({ path: '' })],
    ['a double slash', entry({ path: 'a//b.json' })],
    ['a NUL in the path', entry({ path: 'a\u0000.json' })],
    ['an lfs oid that is not 64 hex', entry({ lfs: { oid: 'zz', size: 10 } })],
    ['an lfs oid in capitals', entry({ lfs: { oid: 'A'.repeat(64), size: 10 } })],
    ['an lfs of null', entry({ lfs: null })],
    ['an lfs size of -5', entry({ lfs: { oid: 'a'.repeat(64), size: -5 } })],
    ['an entry of null', [null]],
    ['a duplicate path', [...entry({}), ...entry({})]],
    ['a file inside a file', [...entry({}), ...entry({ path: 'config.json/x' })]],
  ];
  const field = (what: string) =>
    ['lfs', 'path', 'size', 'entry'].find((f) => what.includes(f)) ??
    (/duplicate|inside/.test(what) ? 'path' : 'entry');
  for (const [what, tree] of entries) add(`listing has ${what}`, { act: 'snapshot', tree, field: field(what) });
  const infos: [string, unknown][] = [
    ['no sha', { id: MODEL }],
    ['a branch name as sha', { sha: 'main' }],
    ['a short sha', { sha: 'a'.repeat(39) }],
    ['a sha with ../', { sha: `../${'a'.repeat(37)}` }],
    ['a numeric sha', { sha: 12 }],
    ['null', null],
    ['an array', []],
    ['not JSON', '{"sha": '],
  ];
  for (const [what, info] of infos) {
    add(`info has ${what}`, { act: 'snapshot', info, field: what === 'not JSON' ? 'JSON' : 'sha' });
  }

  // file bytes: a small file read whole, a data file streamed and sliced, the CLI's cache
  for (const act of ['whole', 'stream', 'slice', 'cache'] as const) {
    const file = FILE[act];
    add(`${file}: stall before headers (${act})`, { act, faults: [[file, stall()]] });
    add(`${file}: stall mid-body (${act})`, { act, faults: [[file, stall(10)]] });
    add(`${file}: redirect loop (${act})`, { act, faults: [[file, { kind: 'redirect-loop' }]] });
    add(`${file}: 500 storm (${act})`, { act, faults: [[file, storm(500)]] });
    add(`${file}: more bytes, no length (${act})`, { act, faults: [[file, { kind: 'oversend', bytes: 99 }]] });
    add(`${file}: Content-Length claims more (${act})`, { act, faults: [[file, { kind: 'length', claim: 1e6 }]] });
    add(`${file}: Content-Length says fewer (${act})`, { act, faults: [[file, { kind: 'length', claim: 3 }]] });
    add(`${file}: drops at byte 5, every time (${act})`, { act, faults: [[file, { kind: 'drop', after: 5 }]] });
  }
  add('config.json: truncated', { act: 'whole', faults: [['config.json', { kind: 'truncate', bytes: 7 }]] });
  add('tiny.jsonl: corrupt', { act: 'stream', faults: [['tiny.jsonl', { kind: 'corrupt', at: 2 }]] });
  add('config.json: 404', { act: 'whole', faults: [['config.json', { kind: 'status', status: 404 }]] });

  // the listing lies about sizes: what is allocated must not follow it
  const real = (path: string) => listing.find((e) => e.path === path)!.size;
  for (const size of [3e9, 'one byte more', 0, 2 ** 44] as const) {
    for (const act of ['whole', 'stream', 'slice'] as const) {
      add(`listing says ${FILE[act]} is ${size} (${act})`, { act, listed: size });
    }
    const shard = size === 'one byte more' ? real(SHARD) + 1 : size;
    add(`listing says the shard is ${size} (cache)`, {
      act: 'cache',
      tree: listing.map((e) =>
        e.path !== SHARD ? e : { ...e, size: shard, ...(e.lfs ? { lfs: { ...e.lfs, size: shard } } : {}) },
      ),
    });
  }
  const climb = listing.map((e) => (e.path === SHARD ? { ...e, path: `../../${SHARD}` } : e));
  add('listing climbs out of the cache (cache)', { act: 'cache', tree: climb });
  return cases;
}

/** Random mutations of the model's real listing, read through the whole CLI cache path. */
function mutations(listing: Entry[], seed: number, n: number): Case[] {
  const rand = rng(seed);
  return Array.from({ length: n }, (_, i) => {
    const { value, path } = mutateJson(listing, rand);
    return { what: `listing mutation ${i} at ${path}`, act: 'cache', tree: value };
  });
}

export const suite: FuzzSuite<Case> = {
  name: 'hostile Hub',
  caseMs: 6000,
  async cases(seed) {
    const { listing } = await hubWorld();
    return [...handWritten(listing), ...mutations(listing, seed, 40)];
  },
  // every Hub error names the repo, or the URL that holds it
  mentions: (c) => [repoOf(c), ...(c.field ? [c.field] : [])],
  async run(c) {
    const { hub, root } = await hubWorld();
    hub.clearFaults();
    const o: TransferOptions = { endpoint: hub.url, ...LIMITS };
    const repo = repoOf(c);
    // a file read goes through a snapshot taken before the faults, which are about the bytes
    const reads = c.act === 'whole' || c.act === 'stream' || c.act === 'slice';
    const snapshot = reads ? await repoSnapshot(repo, repo === DATA ? 'dataset' : 'model', o) : null;
    for (const [target, f] of c.faults ?? []) hub.fault(target, f);
    if (c.tree !== undefined) hub.answer(MODEL, 'tree', c.tree);
    if (c.info !== undefined) hub.answer(MODEL, 'revision', c.info);
    const real = snapshot?.files.find((f) => f.path === FILE[c.act]);
    const file = real && { ...real, size: c.listed === 'one byte more' ? real.size + 1 : (c.listed ?? real.size) };
    switch (c.act) {
      case 'snapshot':
        return repoSnapshot(MODEL, 'model', o);
      case 'dataset':
        return datasetFiles(DATA, o);
      case 'whole':
        return fetchWhole(fileUrl(snapshot!, file!.path, o), file!, o);
      case 'stream': {
        const reader = HubBlob.of(snapshot!, file!, o).stream().getReader();
        while (!(await reader.read()).done);
        return;
      }
      case 'slice':
        return HubBlob.of(snapshot!, file!, o).slice(-200).arrayBuffer();
      case 'cache': {
        const cacheDir = await mkdtemp(join(root, 'cache-'));
        try {
          return await cacheModel(MODEL, { ...o, cacheDir });
        } finally {
          await rm(cacheDir, { recursive: true, force: true });
        }
      }
    }
  },
};

const repoOf = (c: Case) => (c.act === 'dataset' || c.act === 'stream' || c.act === 'slice' ? DATA : MODEL);

export const main = fuzzMain(suite);
