// A random tiny Llama-family model for the tests: NF4 linears and BF16 tables on the GPU, and
// its float64 twin (tests/reference/llama.ts) holding the values the GPU holds.
import type { Gpu } from '../src/gpu/runtime';
import { ropeInverseFrequencies, type ModelConfig } from '../src/model/config';
import type { Batch } from '../src/model/causal-lm';
import { LlamaModel, type LlamaWeights } from '../src/model/llama/layer';
import { LoraLinear } from '../src/model/lora-linear';
import { uploadHalf, type HalfMatrix } from '../src/ops/half-matrix';
import { uploadNF4 } from '../src/ops/nf4';
import type { HalfVector } from '../src/ops/norm';
import { ropeTables } from '../src/ops/rope';
import { packHalf } from '../src/quant/half';
import { dequantizeNF4, quantizeNF4 } from '../src/quant/nf4';
import type { RefLinear, RefModel } from './reference/llama';
import { randn } from './reference/random';

export const TINY = {
  hidden_size: 64,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  num_hidden_layers: 2,
  intermediate_size: 96,
  vocab_size: 101,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  max_position_embeddings: 64,
};

/** A random tiny model on the GPU (NF4 linears, BF16 tables) and its float64 twin. */
export function buildTinyModel(gpu: Gpu, c: ModelConfig, r: () => number) {
  const half = (values: Float32Array): { v: HalfVector; rounded: Float32Array } => {
    const { words, rounded } = packHalf(values, 'BF16');
    return { v: { words: gpu.tensor([words.length], 'u32', words), length: values.length, dtype: 'BF16' }, rounded };
  };
  const matrix = (rows: number, cols: number, scale: number): { m: HalfMatrix; rounded: Float32Array } => {
    const { words, rounded } = packHalf(randn(r, rows * cols, scale), 'BF16');
    return { m: uploadHalf(gpu, [rows, cols], 'BF16', words), rounded };
  };
  const norm = () => half(randn(r, c.hidden, 0.1).map((x) => 1 + x));
  const modules: LoraLinear[] = [];
  const refLinears: RefLinear[] = [];
  const linear = (path: string, out: number, inF: number, bias: boolean): LoraLinear => {
    const q = quantizeNF4(randn(r, out * inF, 0.08), 64);
    const b = bias ? half(randn(r, out, 0.1)) : null;
    const m = new LoraLinear(path, { kind: 'nf4', w: uploadNF4(gpu, q, [out, inF]) }, b?.v ?? null);
    modules.push(m);
    refLinears.push({ w: dequantizeNF4(q), out, in: inF, b: b?.rounded });
    return m;
  };
  const embedM = matrix(c.vocab, c.hidden, 0.1);
  const headM = c.tieEmbeddings ? embedM : matrix(c.vocab, c.hidden, 0.1);
  const refLayers: RefModel['layers'] = [];
  const layers = Array.from({ length: c.layers }, (_, l) => {
    const p = `model.layers.${l}`;
    const inN = norm(),
      postN = norm();
    const qd = c.heads * c.headDim,
      kvd = c.kvHeads * c.headDim;
    const first = refLinears.length;
    const w = {
      inputNorm: inN.v,
      postNorm: postN.v,
      q: linear(`${p}.self_attn.q_proj`, qd, c.hidden, c.bias.qkv),
      k: linear(`${p}.self_attn.k_proj`, kvd, c.hidden, c.bias.qkv),
      v: linear(`${p}.self_attn.v_proj`, kvd, c.hidden, c.bias.qkv),
      o: linear(`${p}.self_attn.o_proj`, c.hidden, qd, false),
      gate: linear(`${p}.mlp.gate_proj`, c.intermediate, c.hidden, false),
      up: linear(`${p}.mlp.up_proj`, c.intermediate, c.hidden, false),
      down: linear(`${p}.mlp.down_proj`, c.hidden, c.intermediate, false),
    };
    const [q, k, v, o, gate, up, down] = refLinears.slice(first);
    refLayers.push({ inputNorm: inN.rounded, postNorm: postN.rounded, q, k, v, o, gate, up, down });
    return w;
  });
  const fin = norm();
  const weights: LlamaWeights = { embed: embedM.m, layers, norm: fin.v, head: headM.m };
  const inv = ropeInverseFrequencies(c);
  const model = new LlamaModel(gpu, c, weights, ropeTables(gpu, inv, c.maxPositions));
  const ref: RefModel = {
    c,
    embed: embedM.rounded,
    layers: refLayers,
    norm: fin.rounded,
    head: headM.rounded,
    invFreq: inv,
  };
  return { model, ref, modules, refLinears };
}

/** Two packed sequences of 6 and 7 tokens: positions restart, attention stays inside each. */
export function packedBatch(gpu: Gpu, c: ModelConfig, r: () => number) {
  const T = 13;
  const ids = Uint32Array.from({ length: T }, () => Math.floor(r() * c.vocab));
  const labels = Int32Array.from({ length: T }, (_, t) => (t === 5 || t === 12 || t === 2 ? -100 : ids[(t + 1) % T]));
  const positions = Uint32Array.from({ length: T }, (_, t) => (t < 6 ? t : t - 6));
  const start = Uint32Array.from({ length: T }, (_, t) => (t < 6 ? 0 : 6));
  const batch: Batch = {
    ids: gpu.tensor([T], 'u32', ids),
    labels: gpu.tensor([T], 'i32', labels),
    positions: gpu.tensor([T], 'u32', positions),
    start: gpu.tensor([T], 'u32', start),
  };
  return { T, ids, labels, positions, start, batch };
}
