// Checks every model family's tests make: LoRA gradients against central differences of the
// float64 loss at sampled entries, KV-cache decoding against the full forward pass; and the tiny
// trainable model and the short training each family's learning test starts from.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { hostBatch, uploadBatch } from '../src/data/batches';
import { readSafetensorsSync, toFloat32 } from '../src/formats/safetensors';
import type { Gpu } from '../src/gpu/runtime';
import type { Batch, CausalLM } from '../src/model/causal-lm';
import type { ModelConfig } from '../src/model/config';
import { buildModel, loadCheckpoint } from '../src/model/load';
import { attachLora, type LoraLinear, type LoraSet } from '../src/model/lora-linear';
import { localCheckpoint } from '../src/node/local-files';
import { ADAMW_DEFAULTS } from '../src/ops/optim';
import { dequantizeNF4, quantizeNF4 } from '../src/quant/nf4';
import { Trainer } from '../src/train/trainer';
import { writeTinyCheckpoint, type TinyKind } from './fixtures/tiny-checkpoint';
import type { RefLinear } from './reference/llama';
import { relError } from './reference/random';

/**
 * The GPU's LoRA gradients (from `grads`, the flat buffer) and central differences of `loss`,
 * at `perTensor` random entries of every module's A and B. `values(m, which)` are the float64
 * arrays the reference reads, perturbed in place and restored.
 */
export function sampledLoraGradients(
  modules: LoraLinear[], grads: Float32Array, values: (m: LoraLinear, which: 'A' | 'B') => Float64Array,
  loss: () => number, r: () => number, perTensor = 3,
): { got: number[]; want: number[] } {
  const got: number[] = [], want: number[] = [];
  for (const m of modules) {
    for (const which of ['A', 'B'] as const) {
      const view = which === 'A' ? m.lora!.dA : m.lora!.dB;
      const v = values(m, which);
      for (let s = 0; s < perTensor; s++) {
        const j = Math.floor(r() * v.length);
        const keep = v[j], eps = 1e-4;
        v[j] = keep + eps;
        const lp = loss();
        v[j] = keep - eps;
        const lm = loss();
        v[j] = keep;
        want.push((lp - lm) / (2 * eps));
        got.push(grads[view.offset / 4 + j]);
      }
    }
  }
  return { got, want };
}

/**
 * Decodes `ids` with a KV cache (all but the last two at once, then one at a time) and returns
 * the largest relative error of each step's logits against the full pass over `batch`.
 */
export async function decodeError(gpu: Gpu, model: CausalLM, ids: number[], batch: Batch): Promise<number> {
  const T = ids.length, V = model.config.vocab;
  const full = await gpu.read(model.logits(batch));
  const cache = model.newCache(T);
  const rows = [await gpu.read(model.decode(ids.slice(0, T - 2), cache))];
  rows.push(await gpu.read(model.decode([ids[T - 2]], cache)), await gpu.read(model.decode([ids[T - 1]], cache)));
  model.releaseCache(cache);
  return Math.max(...rows.map((row, i) => relError(row, full.subarray((T - 3 + i) * V, (T - 2 + i) * V))));
}

/** A tiny checkpoint of `kind` written from `seed` into `dir`, loaded in NF4, with LoRA r 8 (alpha 16) attached. */
export async function tinyWithLora(gpu: Gpu, dir: string, kind: TinyKind, seed: number, r: () => number) {
  await writeTinyCheckpoint(dir, kind, seed);
  const loaded = await loadCheckpoint(gpu, localCheckpoint(dir), { load_in_4bit: true });
  const model = buildModel(gpu, loaded);
  const lora = attachLora(gpu, loaded.linears, { r: 8, alpha: 16, dropout: 0, random: r });
  return { loaded, c: loaded.config, model, lora };
}

/** The losses of `steps` AdamW steps on one batch at a constant 2e-2: a model that learns brings them down. */
export async function trainLosses(
  gpu: Gpu, model: CausalLM, lora: LoraSet, batch: Batch, counted: number, steps = 20,
): Promise<number[]> {
  const trainer = new Trainer(gpu, model, lora,
    { ...ADAMW_DEFAULTS, learning_rate: 2e-2, lr_scheduler_type: 'constant', warmup_steps: 0, max_steps: steps });
  const losses: number[] = [];
  for (let s = 0; s < steps; s++) losses.push((await trainer.trainStep([{ batch, counted }])).loss);
  return losses;
}

/**
 * Random token ids as one padding-free batch of two sequences, [0, split) and [split, T) (positions
 * restart at split; split = T gives one sequence), with its host copy, windowed as the config's
 * layers attend (Mistral's window; Gemma's local layers).
 */
export function randomBatch(gpu: Gpu, r: () => number, c: ModelConfig, T = 13, split = 6) {
  const ids = Array.from({ length: T }, () => 2 + Math.floor(r() * (c.vocab - 2)));
  const positions = ids.map((_, t) => (t < split ? t : t - split));
  const h = hostBatch([{ input_ids: ids, labels: ids, position_ids: positions }], c.slidingWindow, c.localWindow);
  return { ids, h, batch: uploadBatch(gpu, h) };
}

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
