// PEFT adapters from strangers, as folders and as zips: hostile and mutated adapter_config.json,
// mutated and misshapen adapter_model.safetensors, zip bombs (64 MiB of zeros at level 9, a few
// KB on disk) and zips whose central directory lies about sizes. Each goes through the command
// line's reader (localAdapterFiles, with the loaded model's budget) or the page's (readAdapterZip)
// into Session.loadAdapter on a tiny Llama on Dawn: it must load, or be refused with an error
// that names the file, before anything large is allocated.
import { zipSync } from 'fflate';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Session } from '../../src/engine/session';
import { readAdapterZip } from '../../src/formats/adapter-zip';
import { readAdapterSafetensors, writeAdapterSafetensors } from '../../src/formats/peft';
import { writeSafetensors } from '../../src/formats/safetensors';
import { localAdapterFiles, localCheckpoint } from '../../src/node/local-files';
import { writeTinyCheckpoint } from '../fixtures/tiny-checkpoint';
import { testGpu } from '../gpu';
import { fuzzMain } from './child';
import type { FuzzSuite } from './harness';
import { mutateBytes, mutateJson, rng } from './mutate';

const CONFIG = 'adapter_config.json';
const WEIGHTS = 'adapter_model.safetensors';
const ZIP = 'adapter.zip';

type Case = {
  what: string;
  /** folder: the two files; zip: a zip through the command line's reader; page: a zip through the page's. */
  form: 'folder' | 'zip' | 'page';
  config?: string;
  weights?: Uint8Array;
  zip?: Uint8Array;
  mentions: string;
};

let session: Session | null = null;
let root = '';

/** The tiny model every case loads into, and a valid adapter for it (r 4 on q_proj and v_proj). */
async function setUp(seed: number): Promise<{ config: string; weights: Uint8Array }> {
  const gpu = await testGpu();
  root = await mkdtemp(join(tmpdir(), 'fuzz-adapter-'));
  await writeTinyCheckpoint(join(root, 'model'), 'llama', 3);
  session = await Session.load(gpu, localCheckpoint(join(root, 'model')), { name: 'tiny', load_in_4bit: false });
  const lora = { r: 4, lora_alpha: 8, lora_dropout: 0, target_modules: ['q_proj', 'v_proj'], use_rslora: false };
  session.attachLora(lora, seed);
  const files = await session.exportAdapter();
  return { config: files[CONFIG], weights: files[WEIGHTS] };
}

const zipOf = (files: Record<string, Uint8Array>, level: 0 | 9 = 9) => zipSync(files, { level });
const enc = (s: string) => new TextEncoder().encode(s);

/** The zip with a central directory field of the entry `name` overwritten: sizes are read from there. */
function forge(zip: Uint8Array, name: string, field: 'compressed' | 'original', value: number): Uint8Array {
  const out = zip.slice();
  const view = new DataView(out.buffer);
  for (let at = 0; at + 46 <= out.length; at++) {
    if (view.getUint32(at, true) !== 0x02014b50) continue;
    const nameLength = view.getUint16(at + 28, true);
    if (new TextDecoder().decode(out.subarray(at + 46, at + 46 + nameLength)) !== name) continue;
    view.setUint32(at + (field === 'compressed' ? 20 : 24), value, true);
    return out;
  }
  throw new Error(`no central directory entry ${name}`);
}

/** The weights with their first tensor's declared shape replaced (offsets and bytes kept). */
function reshaped(w: Uint8Array, shape: number[]): Uint8Array {
  const n = Number(new DataView(w.buffer, w.byteOffset).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(w.subarray(8, 8 + n)));
  const first = Object.keys(header).find((k) => k !== '__metadata__')!;
  header[first] = { ...header[first], shape };
  const json = enc(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + w.length - 8 - n);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(w.subarray(8 + n), 8 + json.length);
  return out;
}

function handWritten(valid: { config: string; weights: Uint8Array }): Case[] {
  const cfg = JSON.parse(valid.config);
  const config = (what: string, value: unknown): Case => {
    const text = typeof value === 'string' ? value : JSON.stringify(value);
    return { what: `config: ${what}`, form: 'folder', config: text, weights: valid.weights, mentions: CONFIG };
  };
  const weights = (what: string, bytes: Uint8Array): Case => ({
    what: `weights: ${what}`,
    form: 'folder',
    config: valid.config,
    weights: bytes,
    mentions: WEIGHTS,
  });
  const zip = (what: string, bytes: Uint8Array, form: 'zip' | 'page' = 'zip', mentions = ZIP): Case => ({
    what: `zip: ${what}`,
    form,
    zip: bytes,
    mentions,
  });
  const layers = readAdapterSafetensors(valid.weights, 4);
  const t = (name: string, shape: number[], dtype: 'F32' | 'I32' = 'F32') => ({
    name,
    dtype,
    shape,
    data: new Uint8Array(shape.reduce((a, b) => a * b, 1) * 4),
  });
  const A = `base_model.model.${layers[0].module}.lora_A.weight`;
  const B = A.replace('lora_A', 'lora_B');
  const configBytes = enc(valid.config);
  const bomb = zipOf({ [CONFIG]: configBytes, [WEIGHTS]: new Uint8Array(64 * 2 ** 20) });
  const good = zipOf({ [CONFIG]: configBytes, [WEIGHTS]: valid.weights });
  const infinite = JSON.stringify({ ...cfg, lora_alpha: 0 }).replace('"lora_alpha":0', '"lora_alpha":1e999');
  const rank2 = layers.map((l) => ({
    ...l,
    r: 2,
    A: l.A.subarray(0, 2 * l.inFeatures),
    B: l.B.subarray(0, 2 * l.outFeatures),
  }));
  const wider = layers.map((l) => ({ ...l, inFeatures: 96, A: new Float32Array(4 * 96) }));
  return [
    config('null', 'null'),
    config('an array', '[]'),
    config('a number', '12'),
    config('not JSON', '{"r": 4,'),
    config('empty object', {}),
    config('peft_type IA3', { ...cfg, peft_type: 'IA3' }),
    config('r 0', { ...cfg, r: 0 }),
    config('r 1e9', { ...cfg, r: 1e9 }),
    config('r 2048', { ...cfg, r: 2048 }),
    config('r 4.5', { ...cfg, r: 4.5 }),
    config('r "4"', { ...cfg, r: '4' }),
    config('r 8 (weights have 4)', { ...cfg, r: 8 }),
    config('lora_alpha Infinity', infinite),
    config('lora_alpha -1', { ...cfg, lora_alpha: -1 }),
    config('target_modules [1]', { ...cfg, target_modules: [1] }),
    config('target_modules null', { ...cfg, target_modules: null }),
    config('target_modules unknown', { ...cfg, target_modules: ['embed_tokens'] }),
    config('target_modules with escapes', { ...cfg, target_modules: ['\u001b[2Jq_proj'] }),
    config('target_modules q_proj only', { ...cfg, target_modules: 'q_proj' }),
    config('use_dora true', { ...cfg, use_dora: true }),
    config('rank_pattern set', { ...cfg, rank_pattern: { q_proj: 8 } }),
    config('rank_pattern a string', { ...cfg, rank_pattern: 'x' }),
    config('modules_to_save', { ...cfg, modules_to_save: ['lm_head'] }),
    config('fan_in_fan_out "yes"', { ...cfg, fan_in_fan_out: 'yes' }),
    weights('lora_B missing', writeSafetensors([t(A, [4, 64])])),
    weights('a 3-D lora_A', writeSafetensors([t(A, [4, 64, 1]), t(B, [64, 4])])),
    weights('an I32 lora_A', writeSafetensors([t(A, [4, 64], 'I32'), t(B, [64, 4])])),
    weights('rank 2 weights', writeAdapterSafetensors(rank2)),
    weights(
      'a module the model lacks',
      writeAdapterSafetensors([...layers, { ...layers[0], module: 'model.layers.9.self_attn.q_proj' }]),
    ),
    weights('one module short', writeAdapterSafetensors(layers.slice(1))),
    weights("a wider model's", writeAdapterSafetensors(wider)),
    weights('a name with escapes', writeSafetensors([t('\u001b]0;pwned\u0007', [1])])),
    weights('1 MiB over the bound', writeSafetensors([t(A, [4, 64]), t('padding', [2 ** 18])])),
    weights('a header claiming 2^40 elements', reshaped(valid.weights, [2 ** 20, 2 ** 20])),
    weights('empty', new Uint8Array(0)),
    zip('a valid zip', good),
    zip('a valid zip, on the page', good, 'page'),
    zip('a stored (level 0) zip', zipOf({ [CONFIG]: configBytes, [WEIGHTS]: valid.weights }, 0)),
    zip('64 MiB of zeros at level 9', bomb),
    zip('64 MiB of zeros at level 9, on the page', bomb, 'page', 'adapter'),
    zip('weights declared 4 GiB − 1', forge(good, WEIGHTS, 'original', 2 ** 32 - 1)),
    zip('weights declared 4 GiB − 1, on the page', forge(good, WEIGHTS, 'original', 2 ** 32 - 1), 'page'),
    zip('config declared 2 GiB', forge(good, CONFIG, 'original', 2 ** 31), 'page'),
    zip('weights declared 10 bytes', forge(good, WEIGHTS, 'original', 10), 'page', 'adapter'),
    zip('weights declared 3 MiB compressed', forge(good, WEIGHTS, 'compressed', 3 * 2 ** 20), 'page'),
    zip('no weights', zipOf({ [CONFIG]: configBytes })),
    zip(
      'the weights twice',
      zipOf({ [CONFIG]: configBytes, [WEIGHTS]: valid.weights, [`x/${WEIGHTS}`]: valid.weights }),
    ),
    // names are only compared, never used as paths: a traversal name is harmless, other entries skipped
    zip(
      'a path-traversal name and a README',
      zipOf({ [`../../${CONFIG}`]: configBytes, [WEIGHTS]: valid.weights, README: enc('hi') }),
    ),
    zip('not a zip', enc('PK\u0005\u0006 this is not a zip at all'), 'page'),
    zip('empty', new Uint8Array(0), 'page'),
  ];
}

function mutated(valid: { config: string; weights: Uint8Array }, seed: number): Case[] {
  const rand = rng(seed);
  const cfg = JSON.parse(valid.config);
  const cases: Case[] = [];
  for (let i = 0; i < 30; i++) {
    const { value, path } = mutateJson(cfg, rand);
    const text = JSON.stringify(value) ?? 'null';
    const weights = valid.weights;
    cases.push({ what: `config: ${path} mutated`, form: 'folder', config: text, weights, mentions: CONFIG });
  }
  for (let i = 0; i < 20; i++) {
    // mostly in the header, where the lies are
    const w = valid.weights;
    const n = 8 + Number(new DataView(w.buffer, w.byteOffset).getBigUint64(0, true));
    const { bytes, how } = mutateBytes(w.subarray(0, n), rand);
    const weights = Uint8Array.of(...bytes, ...w.subarray(n));
    cases.push({ what: `weights: ${how}`, form: 'folder', config: valid.config, weights, mentions: WEIGHTS });
  }
  const good = zipOf({ [CONFIG]: enc(valid.config), [WEIGHTS]: valid.weights });
  for (let i = 0; i < 20; i++) {
    const { bytes, how } = mutateBytes(good, rand);
    cases.push({ what: `zip: ${how}`, form: i % 2 ? 'page' : 'zip', zip: bytes, mentions: 'adapter' });
  }
  return cases;
}

export const suite: FuzzSuite<Case> = {
  name: 'adapter folders and zips',
  caseMs: 15_000,
  async cases(seed) {
    const valid = await setUp(seed);
    return [...handWritten(valid), ...mutated(valid, seed)];
  },
  mentions: (c) => c.mentions,
  async run(c) {
    const s = session!;
    const dir = await mkdtemp(join(root, 'case-'));
    try {
      let files: { config: string; weights: Uint8Array };
      if (c.form === 'page') files = readAdapterZip(c.zip!, ZIP);
      else {
        const path = c.form === 'zip' ? join(dir, ZIP) : dir;
        if (c.form === 'zip') await writeFile(path, c.zip!);
        else {
          await writeFile(join(dir, CONFIG), c.config!);
          await writeFile(join(dir, WEIGHTS), c.weights!);
        }
        files = await localAdapterFiles(path, (config) => s.adapterWeightsBound(config));
      }
      return s.loadAdapter(files, { replace: true });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  },
};

export const main = fuzzMain(suite);
