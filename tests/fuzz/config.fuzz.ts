// config.json from strangers: the hand-written hostile configs of issue 11 and seeded mutations
// of every tiny fixture's config. Each goes through the loader's own steps that run from the
// config alone (parseConfigText, the expected tensor shapes checked against the fixture's real
// shard headers, the RoPE frequencies, the memory estimate), and must be accepted or refused
// with an error that names config.json.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseHeader, parseShardIndex, type SafetensorsHeader } from '../../src/formats/safetensors';
import type { Gpu } from '../../src/gpu/runtime';
import { CONFIG_LIMITS, ropeInverseFrequencies } from '../../src/model/config';
import { adapterWeightsBound, estimateTrainingMemory } from '../../src/model/estimate';
import { GpuTensors, parseConfigText } from '../../src/model/load';
import { writeTinyCheckpoint, type TinyKind } from '../fixtures/tiny-checkpoint';
import { fuzzMain } from './child';
import type { FuzzSuite } from './harness';
import { mutateJson, rng } from './mutate';

/** `headers`: the fixture's shards, by file name, that the config must agree with. */
type Case = { what: string; text: string; headers: [string, SafetensorsHeader][] };

const KINDS: TinyKind[] = ['llama', 'qwen2', 'phi3', 'gemma2', 'falcon', 'falcon-grouped'];
/** Seeded mutations per fixture. */
export const MUTATIONS = 20;

type Fixture = { config: Record<string, unknown>; headers: [string, SafetensorsHeader][] };

/** Each fixture's config.json and its shards' headers (what the config must agree with). */
async function fixtures(): Promise<Map<TinyKind, Fixture>> {
  const root = await mkdtemp(join(tmpdir(), 'fuzz-config-'));
  const out = new Map<TinyKind, Fixture>();
  try {
    for (const kind of KINDS) {
      const dir = join(root, kind);
      await writeTinyCheckpoint(dir, kind, 1);
      const index = parseShardIndex(await readFile(join(dir, 'model.safetensors.index.json'), 'utf8'));
      const headers: [string, SafetensorsHeader][] = [];
      for (const shard of index.shards.keys()) {
        const bytes = new Uint8Array(await readFile(join(dir, shard)));
        headers.push([shard, parseHeader(bytes, bytes.length, shard)]);
      }
      out.set(kind, { config: JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')), headers });
    }
  } finally {
    await rm(root, { recursive: true, force: true });
  }
  return out;
}

/** The configs issue 11 reports, and their neighbours, on the tiny Llama's config. */
function handWritten(llama: Record<string, unknown>, falcon: Record<string, unknown>): [string, string][] {
  const with_ = (base: Record<string, unknown>, patch: Record<string, unknown>) =>
    JSON.stringify({ ...base, ...patch });
  const mistral = { ...llama, model_type: 'mistral' };
  return [
    ['num_hidden_layers 1e9', with_(llama, { num_hidden_layers: 1e9 })],
    ['max_position_embeddings 1e9', with_(llama, { max_position_embeddings: 1e9 })],
    ['max_position_embeddings 2^21, head_dim 1024', with_(llama, { max_position_embeddings: 2 ** 21, head_dim: 1024 })],
    [
      'rms_norm_eps Infinity (1e999)',
      with_(llama, { rms_norm_eps: 0 }).replace('"rms_norm_eps":0', '"rms_norm_eps":1e999'),
    ],
    ['rms_norm_eps 2', with_(llama, { rms_norm_eps: 2 })],
    ['rope_theta -1', with_(llama, { rope_theta: -1 })],
    ['rope_theta 1e999', with_(llama, { rope_theta: 0 }).replace('"rope_theta":0', '"rope_theta":1e999')],
    ['mistral sliding_window -4', with_(mistral, { sliding_window: -4 })],
    ['mistral sliding_window "4096"', with_(mistral, { sliding_window: '4096' })],
    ['hidden_size 2^31', with_(llama, { hidden_size: 2 ** 31 })],
    ['vocab_size 2^40', with_(llama, { vocab_size: 2 ** 40 })],
    ['intermediate_size 1.5', with_(llama, { intermediate_size: 1.5 })],
    ['num_key_value_heads 3 of 4', with_(llama, { num_key_value_heads: 3 })],
    ['head_dim 7', with_(llama, { head_dim: 7 })],
    ['rope_scaling factor NaN-ish string', with_(llama, { rope_scaling: { rope_type: 'linear', factor: 'NaN' } })],
    [
      'rope_scaling llama3 original 1e12',
      with_(llama, {
        rope_scaling: {
          rope_type: 'llama3',
          factor: 8,
          low_freq_factor: 1,
          high_freq_factor: 4,
          original_max_position_embeddings: 1e12,
        },
      }),
    ],
    [
      'gemma softcap -1',
      with_({ ...llama, model_type: 'gemma2', hidden_act: 'gelu_pytorch_tanh' }, { attn_logit_softcapping: -1 }),
    ],
    ['eos_token_id list of strings', with_(llama, { eos_token_id: ['</s>'] })],
    ['tie_word_embeddings "yes"', with_(llama, { tie_word_embeddings: 'yes' })],
    ['quantization_config 7', with_(llama, { quantization_config: 7 })],
    ['falcon n_layer 1e9', with_(falcon, { n_layer: 1e9, num_hidden_layers: undefined })],
    ['falcon num_kv_heads 0', with_(falcon, { new_decoder_architecture: true, num_kv_heads: 0 })],
    ['model_type with escapes', with_(llama, { model_type: '\u001b[31mred\u0007' })],
    ['null', 'null'],
    ['an array', '[]'],
    ['a number', '12'],
    ['not JSON', '{"model_type": "llama",'],
    ['empty', ''],
  ];
}

export const suite: FuzzSuite<Case> = {
  name: 'config.json',
  caseMs: 5000,
  async cases(seed) {
    const fx = await fixtures();
    const llama = fx.get('llama')!;
    const cases: Case[] = handWritten(llama.config, fx.get('falcon')!.config).map(([what, text]) => ({
      what,
      text,
      headers: llama.headers,
    }));
    for (const [kind, { config, headers }] of fx) {
      const rand = rng(seed + KINDS.indexOf(kind));
      for (let i = 0; i < MUTATIONS; i++) {
        const { value, path } = mutateJson(config, rand);
        cases.push({ what: `${kind}: ${path} mutated`, text: JSON.stringify(value) ?? 'null', headers });
      }
    }
    return cases;
  },
  mentions: () => 'config.json',
  async run(c) {
    const config = parseConfigText(c.text);
    // what the loader does next from the config alone; no GPU is touched before a tensor arrives
    const tensors = new GpuTensors(null as unknown as Gpu, config, { load_in_4bit: true });
    for (const [shard, h] of c.headers) tensors.checkHeader(h, shard);
    const inv = ropeInverseFrequencies(config);
    if (!inv.every(Number.isFinite)) throw new TypeError('an accepted config gives non-finite RoPE frequencies');
    if (config.maxPositions * (config.headDim / 2) > CONFIG_LIMITS.ropeTableValues) {
      throw new TypeError('an accepted config has an unbounded RoPE table');
    }
    const m = estimateTrainingMemory(config, {
      max_length: 64,
      batch: 1,
      r: 8,
      targets: config.linearModules,
      load_in_4bit: true,
    });
    if (!Number.isFinite(m.total) || !Number.isFinite(adapterWeightsBound(config, 8, 'all-linear'))) {
      throw new TypeError('an accepted config gives a non-finite estimate');
    }
    return config;
  },
};

export const main = fuzzMain(suite);
