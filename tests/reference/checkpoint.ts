// The float64 twin of a tiny checkpoint on disk, for the model tests and the browser tests:
// every tensor read as the GPU holds it (16-bit values as stored, linear weights NF4 round-tripped
// when loaded in 4 bits), assembled into the family's reference network (llama.ts, gemma.ts).
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readSafetensorsSync, toFloat32 } from '../../src/formats/safetensors';
import { ropeInverseFrequencies, type ModelConfig } from '../../src/model/config';
import { dequantizeNF4, quantizeNF4 } from '../../src/quant/nf4';
import { gemmaLogitsRef, gemmaLossRef, type RefGemma, type RefGemmaLayer } from './gemma';
import { llamaLogitsRef, llamaLossRef, type RefLayer, type RefLinear, type RefModel } from './llama';

/** Every tensor of a tiny two-shard checkpoint in `dir`, as f32 (16-bit values as stored). */
export async function checkpointValues(dir: string): Promise<Map<string, Float32Array>> {
  const values = new Map<string, Float32Array>();
  for (const shard of ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors']) {
    const bytes = new Uint8Array(await readFile(join(dir, shard)));
    for (const { info, data } of readSafetensorsSync(bytes)) values.set(info.name, toFloat32(info.dtype, data));
  }
  return values;
}

/**
 * The reference's linear layers read from `values` (NF4 round-tripped when `nf4`, as the GPU
 * holds them): `lin(path, out, in)` makes one, and `linears` keeps each by module path.
 */
export function refLinears(values: Map<string, Float32Array>, nf4: boolean) {
  const linears = new Map<string, RefLinear>();
  const lin = (path: string, out: number, inF: number): RefLinear => {
    const w = values.get(`${path}.weight`)!;
    const L: RefLinear = { w: nf4 ? dequantizeNF4(quantizeNF4(w, 64)) : w, out, in: inF };
    linears.set(path, L);
    return L;
  };
  return { linears, lin };
}

/** A family's float64 twin of a loaded checkpoint: its linears by module path, its logits and loss. */
export interface FamilyReference {
  linears: Map<string, RefLinear>;
  logits(ids: ArrayLike<number>, positions: ArrayLike<number>, start: ArrayLike<number>): Float64Array;
  loss(
    ids: ArrayLike<number>,
    labels: ArrayLike<number>,
    positions: ArrayLike<number>,
    start: ArrayLike<number>,
  ): number;
}

/** The seven linears of a layer at `p` (attention, then MLP), read by `lin` as the reference holds them. */
function layerLinears(lin: (path: string, out: number, inF: number) => RefLinear, p: string, c: ModelConfig) {
  const qd = c.heads * c.headDim,
    kvd = c.kvHeads * c.headDim;
  return {
    q: lin(`${p}.self_attn.q_proj`, qd, c.hidden),
    k: lin(`${p}.self_attn.k_proj`, kvd, c.hidden),
    v: lin(`${p}.self_attn.v_proj`, kvd, c.hidden),
    o: lin(`${p}.self_attn.o_proj`, c.hidden, qd),
    gate: lin(`${p}.mlp.gate_proj`, c.intermediate, c.hidden),
    up: lin(`${p}.mlp.up_proj`, c.intermediate, c.hidden),
    down: lin(`${p}.mlp.down_proj`, c.hidden, c.intermediate),
  };
}

/** A checkpoint's values, its reference linears, and a reader of each layer's named weights. */
async function referenceParts(dir: string, nf4: boolean) {
  const values = await checkpointValues(dir);
  const { linears, lin } = refLinears(values, nf4);
  const weight = (p: string) => (n: string) => values.get(`${p}.${n}.weight`)!;
  return { values, linears, lin, weight };
}

/** The float64 twin of a Llama-family checkpoint in `dir` (Qwen3's q/k norms where the config has them). */
export async function llamaReference(dir: string, nf4: boolean, c: ModelConfig): Promise<FamilyReference> {
  const { values, linears, lin, weight } = await referenceParts(dir, nf4);
  const layers: RefLayer[] = Array.from({ length: c.layers }, (_, l) => {
    const p = `model.layers.${l}`;
    const v = weight(p);
    return {
      inputNorm: v('input_layernorm'),
      postNorm: v('post_attention_layernorm'),
      ...(c.qkNorm ? { qNorm: v('self_attn.q_norm'), kNorm: v('self_attn.k_norm') } : {}),
      ...layerLinears(lin, p, c),
    };
  });
  const embed = values.get('model.embed_tokens.weight')!;
  const head = c.tieEmbeddings ? embed : values.get('lm_head.weight')!;
  const norm = values.get('model.norm.weight')!;
  const ref: RefModel = { c, embed, layers, norm, head, invFreq: ropeInverseFrequencies(c) };
  return {
    linears,
    logits: (ids, pos, start) => llamaLogitsRef(ref, ids, pos, start),
    loss: (ids, labels, pos, start) => llamaLossRef(ref, ids, labels, pos, start),
  };
}

/** The float64 twin of a Gemma 2 or 3 checkpoint in `dir` (q/k norms, local RoPE where the config has them). */
export async function gemmaReference(dir: string, nf4: boolean, c: ModelConfig): Promise<FamilyReference> {
  const { values, linears, lin, weight } = await referenceParts(dir, nf4);
  const layers: RefGemmaLayer[] = Array.from({ length: c.layers }, (_, l) => {
    const p = `model.layers.${l}`;
    const v = weight(p);
    return {
      inputNorm: v('input_layernorm'),
      postAttnNorm: v('post_attention_layernorm'),
      preFfNorm: v('pre_feedforward_layernorm'),
      postFfNorm: v('post_feedforward_layernorm'),
      ...(c.qkNorm ? { qNorm: v('self_attn.q_norm'), kNorm: v('self_attn.k_norm') } : {}),
      ...layerLinears(lin, p, c),
    };
  });
  const ref: RefGemma = {
    c,
    embed: values.get('model.embed_tokens.weight')!,
    layers,
    norm: values.get('model.norm.weight')!,
    invFreq: ropeInverseFrequencies(c),
    ...(c.ropeLocal ? { invFreqLocal: ropeInverseFrequencies({ ...c, rope: c.ropeLocal }) } : {}),
  };
  return {
    linears,
    logits: (ids, pos, start) => gemmaLogitsRef(ref, ids, pos, start),
    loss: (ids, labels, pos, start) => gemmaLossRef(ref, ids, labels, pos, start),
  };
}
