// Checkpoint files from strangers: safetensors headers (mutated JSON, lying lengths and offsets,
// giant shapes), shard indexes that disagree with their shards, and bitsandbytes quant_states.
// Each case is a tiny fixture checkpoint with one file replaced, loaded by the real loader
// (loadCheckpoint, then the network built and released) on Dawn: it must load, or be refused
// with an error that names the file.
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Session } from '../../src/engine/session';
import { parseHeader, writeSafetensors, type TensorInfo, type TensorToWrite } from '../../src/formats/safetensors';
import type { Gpu } from '../../src/gpu/runtime';
import { loadCheckpoint } from '../../src/model/load';
import { localCheckpoint } from '../../src/node/local-files';
import { writeTinyCheckpoint } from '../fixtures/tiny-checkpoint';
import { testGpu } from '../gpu';
import { fuzzMain } from './child';
import type { FuzzSuite } from './harness';
import { mutateBytes, mutateJson, pick, rng } from './mutate';

type Files = Map<string, Uint8Array>;
type Case = { what: string; fixture: 'plain' | 'bnb'; replace: [string, Uint8Array][]; mentions: string };

const INDEX = 'model.safetensors.index.json';
const SHARD1 = 'model-00001-of-00002.safetensors';
const SHARD2 = 'model-00002-of-00002.safetensors';
const enc = (s: string) => new TextEncoder().encode(s);

async function readFixture(kind: 'plain' | 'bnb'): Promise<Files> {
  const dir = await mkdtemp(join(tmpdir(), `fuzz-st-${kind}-`));
  try {
    await writeTinyCheckpoint(dir, 'llama', 2, { bnb4bit: kind === 'bnb' });
    const files: Files = new Map();
    for (const f of await readdir(dir)) files.set(f, new Uint8Array(await readFile(join(dir, f))));
    return files;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** A shard's header JSON and its data section. */
function split(file: Uint8Array): { header: Record<string, unknown>; data: Uint8Array } {
  const n = Number(new DataView(file.buffer, file.byteOffset).getBigUint64(0, true));
  return { header: JSON.parse(new TextDecoder().decode(file.subarray(8, 8 + n))), data: file.subarray(8 + n) };
}

/** A shard from header JSON (any value) and data bytes, the length prefix set to match. */
function join8(header: unknown, data: Uint8Array, lengthPrefix?: bigint): Uint8Array {
  const text = typeof header === 'string' ? header : (JSON.stringify(header) ?? 'null');
  const json = header instanceof Uint8Array ? header : enc(text);
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, lengthPrefix ?? BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

function handWritten(plain: Files, bnb: Files): Case[] {
  const s1 = plain.get(SHARD1)!;
  const { header, data } = split(s1);
  const names = Object.keys(header).filter((k) => k !== '__metadata__');
  const first = names[0];
  const entry = header[first] as { dtype: string; shape: number[]; data_offsets: [number, number] };
  const patched = (patch: Record<string, unknown>) => join8({ ...header, ...patch }, data);
  const withEntry = (e: Record<string, unknown>) => patched({ [first]: { ...entry, ...e } });
  const shard = (what: string, bytes: Uint8Array): Case => ({
    what,
    fixture: 'plain',
    replace: [[SHARD1, bytes]],
    mentions: SHARD1,
  });
  const index = (what: string, value: unknown): Case => ({
    what,
    fixture: 'plain',
    replace: [[INDEX, enc(typeof value === 'string' ? value : JSON.stringify(value))]],
    mentions: INDEX,
  });
  const indexJson = JSON.parse(new TextDecoder().decode(plain.get(INDEX)!));
  const remap = (tensor: string, file: unknown) => ({
    ...indexJson,
    weight_map: { ...indexJson.weight_map, [tensor]: file },
  });
  const [begin, end] = entry.data_offsets;
  const next = header[names[1]] as { data_offsets: number[] };
  const cases: Case[] = [
    shard('header length 2^64 − 1', join8(header, data, 2n ** 64n - 1n)),
    shard('header length past the file', join8(header, data, BigInt(s1.length))),
    shard('header length 0', join8('', data, 0n)),
    shard('header an array', join8('[1,2]', data)),
    shard('header not UTF-8', join8(Uint8Array.of(...enc('{"'), 0xff, ...enc('": 1}')), data)),
    shard('header null', join8('null', data)),
    shard('a 7-byte file', s1.slice(0, 7)),
    shard('cut inside a tensor', s1.slice(0, s1.length - 5)),
    shard('trailing bytes after the last tensor', join8(header, Uint8Array.of(...data, 1, 2, 3))),
    shard('dtype F8_E4M3', withEntry({ dtype: 'F8_E4M3' })),
    shard('dtype toString', withEntry({ dtype: 'toString' })),
    shard('shape [2^26, 2^26, 2^26]', withEntry({ shape: [2 ** 26, 2 ** 26, 2 ** 26] })),
    shard('shape of rank 40', withEntry({ shape: Array(40).fill(1) })),
    shard('shape [-1, 64]', withEntry({ shape: [-1, 64] })),
    shard('shape with 2^53 + 2', withEntry({ shape: [2 ** 53 + 2] })),
    shard('giant shape with offsets to match', withEntry({ shape: [65536, 65536], data_offsets: [0, 2 ** 33] })),
    shard('offsets reversed', withEntry({ data_offsets: [end, begin] })),
    shard('offsets past the end', withEntry({ data_offsets: [begin + 2 ** 40, end + 2 ** 40] })),
    shard(
      'offsets overlapping the next',
      patched({ [names[1]]: { ...next, data_offsets: next.data_offsets.map((o) => o - 2) } }),
    ),
    shard('offsets as strings', withEntry({ data_offsets: ['0', '8'] })),
    shard('__metadata__ of numbers', patched({ __metadata__: { format: 1 } })),
    shard('__metadata__ null', patched({ __metadata__: null })),
    shard('__metadata__ a string', patched({ __metadata__: 'pt' })),
    shard('an entry that is null', patched({ [first]: null })),
    shard(
      'a tensor the config does not have, named with escapes',
      patched({ '\u001b[2Jevil\u0007': { dtype: 'U8', shape: [0], data_offsets: [0, 0] } }),
    ),
    shard(
      'the embedding one row wider',
      rewriteShape(s1, 'model.embed_tokens.weight', (s) => [s[0] + 1, s[1]]),
    ),
    shard(
      'a norm of 2-D shape',
      rewriteShape(s1, names.find((n) => n.endsWith('norm.weight'))!, (s) => [1, s[0]]),
    ),
    index('index: a tensor in a missing shard', remap(first, 'model-00009-of-00009.safetensors')),
    index('index: a path outside the folder', remap(first, '../../etc/passwd.safetensors')),
    index('index: a tensor the shard does not hold', remap('model.extra.weight', SHARD1)),
    index('index: weight_map empty', { ...indexJson, weight_map: {} }),
    index('index: weight_map an array', { ...indexJson, weight_map: [SHARD1] }),
    index('index: total_size -1', { ...indexJson, metadata: { total_size: -1 } }),
    index('index: metadata a string', { ...indexJson, metadata: 'x' }),
    index('index: null', null),
    index('index: not JSON', '{"weight_map": '),
  ];
  // bitsandbytes 4-bit: the quant_state JSON of one module, replaced
  for (const [what, state] of [
    ['quant_state null', 'null'],
    ['quant_state an array', '[]'],
    ['quant_state not JSON', '{'],
    ['blocksize a string', { quant_type: 'nf4', blocksize: '64', shape: [64, 64] }],
    ['blocksize 48', { quant_type: 'nf4', blocksize: 48, shape: [64, 64] }],
    ['blocksize 128 (disagrees with absmax)', null],
    ['shape [1, 2]', { quant_type: 'nf4', blocksize: 64, shape: [1, 2] }],
    ['shape transposed', null],
    ['shape of strings', { quant_type: 'nf4', blocksize: 64, shape: ['64', '64'] }],
    ['quant_type fp4', { quant_type: 'fp4', blocksize: 64, shape: [64, 64] }],
    ['nested_offset a string', null],
  ] as [string, unknown][])
    cases.push(bnbCase(bnb, `bnb: ${what}`, (s) => state ?? tweakState(what, s)));
  return cases;
}

function tweakState(what: string, s: Record<string, unknown>): unknown {
  if (what.startsWith('blocksize 128')) return { ...s, blocksize: 128 };
  if (what.startsWith('shape transposed')) return { ...s, shape: [...(s.shape as number[])].reverse() };
  return { ...s, nested_offset: 'x' };
}

/** The shard holding the first quant_state, with that state replaced by `f` of it. */
function bnbCase(bnb: Files, what: string, f: (state: Record<string, unknown>) => unknown): Case {
  for (const name of [SHARD1, SHARD2]) {
    const tensors = readTensors(bnb.get(name)!);
    const at = tensors.findIndex((t) => t.name.endsWith('.quant_state.bitsandbytes__nf4'));
    if (at < 0) continue;
    const value = f(JSON.parse(new TextDecoder().decode(tensors[at].data)));
    const bytes = enc(typeof value === 'string' ? value : JSON.stringify(value));
    tensors[at] = { ...tensors[at], shape: [bytes.length], data: bytes };
    return { what, fixture: 'bnb', replace: [[name, writeSafetensors(tensors)]], mentions: '.safetensors' };
  }
  throw new Error('the bnb fixture has no quant_state');
}

function readTensors(file: Uint8Array): TensorToWrite[] {
  const h = parseHeader(file, file.length);
  const bytes = (t: TensorInfo) => file.subarray(h.dataOffset + t.begin, h.dataOffset + t.end);
  return h.tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape, data: bytes(t) }));
}

/** The shard rewritten with one tensor's shape changed (its bytes resized to match). */
function rewriteShape(file: Uint8Array, name: string, f: (shape: number[]) => number[]): Uint8Array {
  return writeSafetensors(
    readTensors(file).map((t) => {
      if (t.name !== name) return t;
      const shape = f(t.shape);
      return { ...t, shape, data: new Uint8Array(shape.reduce((a, b) => a * b, 1) * 2) };
    }),
  );
}

/** Seeded random cases: header JSON mutated, header bytes mutated, the index mutated, quant_states mutated. */
function mutated(plain: Files, bnb: Files, seed: number): Case[] {
  const rand = rng(seed);
  const cases: Case[] = [];
  for (let i = 0; i < 40; i++) {
    const name = pick(rand, [SHARD1, SHARD2]);
    const { header, data } = split(plain.get(name)!);
    const { value, path } = mutateJson(header, rand);
    const replace: [string, Uint8Array][] = [[name, join8(value, data)]];
    cases.push({ what: `${name} header: ${path} mutated`, fixture: 'plain', replace, mentions: name });
  }
  for (let i = 0; i < 20; i++) {
    const file = plain.get(SHARD1)!;
    const n = 8 + Number(new DataView(file.buffer, file.byteOffset).getBigUint64(0, true));
    const { bytes, how } = mutateBytes(file.subarray(0, n), rand);
    const out = new Uint8Array(bytes.length + file.length - n);
    out.set(bytes);
    out.set(file.subarray(n), bytes.length);
    const replace: [string, Uint8Array][] = [[SHARD1, out]];
    cases.push({ what: `${SHARD1} header bytes: ${how}`, fixture: 'plain', replace, mentions: SHARD1 });
  }
  const index = JSON.parse(new TextDecoder().decode(plain.get(INDEX)!));
  for (let i = 0; i < 25; i++) {
    const { value, path } = mutateJson(index, rand);
    const text = enc(JSON.stringify(value) ?? 'null');
    cases.push({ what: `index: ${path} mutated`, fixture: 'plain', replace: [[INDEX, text]], mentions: INDEX });
  }
  for (let i = 0; i < 15; i++) {
    let path = '';
    const c = bnbCase(bnb, '', (s) => {
      const m = mutateJson(s, rand);
      path = m.path;
      return m.value;
    });
    cases.push({ ...c, what: `bnb quant_state: ${path} mutated` });
  }
  return cases;
}

let fixtures: { plain: Files; bnb: Files } | null = null;
let gpu: Gpu | null = null;

export const suite: FuzzSuite<Case> = {
  name: 'safetensors headers and shard indexes',
  caseMs: 15_000,
  async cases(seed) {
    fixtures = { plain: await readFixture('plain'), bnb: await readFixture('bnb') };
    return [...handWritten(fixtures.plain, fixtures.bnb), ...mutated(fixtures.plain, fixtures.bnb, seed)];
  },
  mentions: (c) => c.mentions,
  async run(c) {
    gpu ??= await testGpu();
    // a local folder, as the command line reads one
    const dir = await mkdtemp(join(tmpdir(), 'fuzz-st-case-'));
    try {
      const files = new Map(fixtures![c.fixture]);
      for (const [name, bytes] of c.replace) files.set(name, bytes);
      for (const [name, bytes] of files) await writeFile(join(dir, name), bytes);
      const loaded = await loadCheckpoint(gpu, localCheckpoint(dir), { load_in_4bit: c.fixture === 'bnb' });
      Session.fromLoaded(gpu, loaded, 'fuzz', null).release();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  },
};

export const main = fuzzMain(suite);
