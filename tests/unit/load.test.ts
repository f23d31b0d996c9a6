import { beforeAll, describe, expect, it } from 'vitest';
import { writeSafetensors, type TensorToWrite } from '../../src/formats/safetensors';
import type { Gpu } from '../../src/gpu/runtime';
import { ropeInverseFrequencies } from '../../src/model/config';
import { parseModelConfig } from '../../src/model/registry';
import { buildModel, loadCheckpoint, type CheckpointFiles } from '../../src/model/load';
import { packHalf } from '../../src/quant/half';
import { dequantizeNF4, quantizeNF4 } from '../../src/quant/nf4';
import { testGpu } from '../gpu';
import { llamaLogitsRef, type RefLinear, type RefModel } from '../reference/llama';
import { freshSeed, randn, relError, rng } from '../reference/random';
import { TINY, packedBatch } from '../tiny-model';

let gpu: Gpu;
beforeAll(async () => {
  gpu = await testGpu();
});

const CONFIG = { ...TINY, model_type: 'qwen2', tie_word_embeddings: false };

/** A BF16 checkpoint of the tiny Qwen2 shape in two shards, and the float64 model it holds. */
function checkpoint(seed: number) {
  const r = rng(seed);
  const c = parseModelConfig(CONFIG);
  const tensors: TensorToWrite[] = [];
  const values = new Map<string, Float32Array>();
  const add = (name: string, shape: number[], scale: number, offset = 0) => {
    const { words, rounded } = packHalf(
      randn(
        r,
        shape.reduce((a, b) => a * b, 1),
        scale,
      ).map((v) => v + offset),
      'BF16',
    );
    tensors.push({ name, dtype: 'BF16', shape, data: new Uint8Array(words.buffer, 0, rounded.length * 2) });
    values.set(name, rounded);
  };
  const qd = c.heads * c.headDim,
    kvd = c.kvHeads * c.headDim;
  add('model.embed_tokens.weight', [c.vocab, c.hidden], 0.1);
  add('lm_head.weight', [c.vocab, c.hidden], 0.1);
  add('model.norm.weight', [c.hidden], 0.1, 1);
  const linears: [string, number, number][] = [
    ['self_attn.q_proj', qd, c.hidden],
    ['self_attn.k_proj', kvd, c.hidden],
    ['self_attn.v_proj', kvd, c.hidden],
    ['self_attn.o_proj', c.hidden, qd],
    ['mlp.gate_proj', c.intermediate, c.hidden],
    ['mlp.up_proj', c.intermediate, c.hidden],
    ['mlp.down_proj', c.hidden, c.intermediate],
  ];
  for (let l = 0; l < c.layers; l++) {
    const p = `model.layers.${l}`;
    add(`${p}.input_layernorm.weight`, [c.hidden], 0.1, 1);
    add(`${p}.post_attention_layernorm.weight`, [c.hidden], 0.1, 1);
    for (const [path, out, inF] of linears) add(`${p}.${path}.weight`, [out, inF], 0.08);
    for (const x of ['q', 'k', 'v']) add(`${p}.self_attn.${x}_proj.bias`, [x === 'q' ? qd : kvd], 0.1);
  }
  const half = Math.ceil(tensors.length / 2);
  const names = ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'];
  const files = new Map<string, Uint8Array | string>([
    ['config.json', JSON.stringify(CONFIG)],
    [names[0], writeSafetensors(tensors.slice(0, half))],
    [names[1], writeSafetensors(tensors.slice(half))],
    [
      'model.safetensors.index.json',
      JSON.stringify({
        metadata: {},
        weight_map: Object.fromEntries(tensors.map((t, i) => [t.name, names[i < half ? 0 : 1]])),
      }),
    ],
  ]);
  const lin = (name: string, out: number, inF: number, bias?: string): RefLinear => ({
    w: dequantizeNF4(quantizeNF4(values.get(name)!, 64)),
    out,
    in: inF,
    b: bias ? values.get(bias) : undefined,
  });
  const ref: RefModel = {
    c,
    embed: values.get('model.embed_tokens.weight')!,
    head: values.get('lm_head.weight')!,
    norm: values.get('model.norm.weight')!,
    invFreq: ropeInverseFrequencies(c),
    layers: Array.from({ length: c.layers }, (_, l) => {
      const p = `model.layers.${l}`;
      const [q, k, v, o, gate, up, down] = linears.map(([path, out, inF]) =>
        lin(
          `${p}.${path}.weight`,
          out,
          inF,
          path.startsWith('self_attn.') && path !== 'self_attn.o_proj' ? `${p}.${path}.bias` : undefined,
        ),
      );
      return {
        inputNorm: values.get(`${p}.input_layernorm.weight`)!,
        postNorm: values.get(`${p}.post_attention_layernorm.weight`)!,
        q,
        k,
        v,
        o,
        gate,
        up,
        down,
      };
    }),
  };
  return { files, ref, names };
}

function source(files: Map<string, Uint8Array | string>, cut = 0): CheckpointFiles {
  return {
    text: async (name) => {
      const f = files.get(name);
      return typeof f === 'string' ? f : null;
    },
    stream: async (name) => {
      const f = files.get(name);
      if (!(f instanceof Uint8Array)) throw new Error(`${name}: not found`);
      const bytes = f.subarray(0, f.length - cut);
      return {
        chunks: (async function* () {
          for (let i = 0; i < bytes.length; i += 997) yield bytes.subarray(i, i + 997);
        })(),
        size: f.length,
      };
    },
  };
}

describe('loading a sharded BF16 checkpoint', () => {
  it('streams both shards, quantizes the linears to NF4 on the GPU, and gives the reference logits', async () => {
    const seed = freshSeed();
    const { files, ref } = checkpoint(seed);
    const seen: string[] = [];
    const loaded = await loadCheckpoint(gpu, source(files), { load_in_4bit: true }, (n) => seen.push(n));
    expect(seen.length).toBe(3 + 2 * (2 + 7 + 3));
    expect(loaded.linears.map((l) => l.path)).toContain('model.layers.1.mlp.down_proj');
    const c = loaded.config;
    const model = buildModel(gpu, loaded);
    const b = packedBatch(gpu, c, rng(seed + 1));
    const logits = await gpu.read(model.logits(b.batch));
    expect(relError(logits, llamaLogitsRef(ref, b.ids, b.positions, b.start)), `seed ${seed}`).toBeLessThan(1e-4);
  });

  it('reads a tied model whose checkpoint also stores lm_head.weight, ignoring that copy', async () => {
    const seed = freshSeed();
    const { files, ref } = checkpoint(seed);
    const tied = new Map(files);
    tied.set('config.json', JSON.stringify({ ...CONFIG, tie_word_embeddings: true }));
    const loaded = await loadCheckpoint(gpu, source(tied), { load_in_4bit: true });
    const model = buildModel(gpu, loaded);
    const b = packedBatch(gpu, loaded.config, rng(seed + 1));
    const logits = await gpu.read(model.logits(b.batch));
    // the head is the embedding, not the stored lm_head.weight (drawn apart from it)
    const want = llamaLogitsRef({ ...ref, c: loaded.config, head: ref.embed }, b.ids, b.positions, b.start);
    expect(relError(logits, want), `seed ${seed}`).toBeLessThan(1e-4);
  });

  it('refuses a truncated shard, a missing tensor, a wrong shape and an unknown model type, clearly', async () => {
    const { files, names } = checkpoint(1);
    await expect(loadCheckpoint(gpu, source(files, 5), { load_in_4bit: true })).rejects.toThrow(
      /model-0000\d-of-00002.safetensors ended at byte \d+, inside tensor .*: it is truncated/,
    );
    const missing = new Map(files);
    missing.set(names[1], writeSafetensors([]));
    await expect(loadCheckpoint(gpu, source(missing), { load_in_4bit: false })).rejects.toThrow(
      /index.json places \d+ tensor\(s\) in model-0000\d-of-00002.safetensors that its header/,
    );
    // the index agreeing with the emptied shard: the config's tensors are still missing
    const index = JSON.parse(files.get('model.safetensors.index.json') as string);
    for (const [k, v] of Object.entries(index.weight_map)) if (v === names[1]) delete index.weight_map[k];
    missing.set('model.safetensors.index.json', JSON.stringify(index));
    await expect(loadCheckpoint(gpu, source(missing), { load_in_4bit: false })).rejects.toThrow(
      /lacks \d+ tensor\(s\) the config needs/,
    );
    const wrong = new Map(files);
    wrong.set('config.json', JSON.stringify({ ...CONFIG, intermediate_size: 80 }));
    await expect(loadCheckpoint(gpu, source(wrong), { load_in_4bit: true })).rejects.toThrow(
      /mlp\.(gate|up|down)_proj\.weight is \[[\d,]+\], config.json implies/,
    );
    const alien = new Map(files);
    alien.set('config.json', JSON.stringify({ ...CONFIG, model_type: 'gpt_neox' }));
    await expect(loadCheckpoint(gpu, source(alien), { load_in_4bit: true })).rejects.toThrow(
      /model_type "gpt_neox" is not supported yet/,
    );
  });
});
