// Checks every model family's tests make: LoRA gradients against central differences of the
// float64 loss at sampled entries, KV-cache decoding against the full forward pass; and the tiny
// trainable model and the short training each family's learning test starts from.
import { expect } from 'vitest';
import { hostBatch, uploadBatch } from '../src/data/batches';
import { readSafetensorsSync } from '../src/formats/safetensors';
import type { Gpu, Tensor } from '../src/gpu/runtime';
import type { Batch, CausalLM } from '../src/model/causal-lm';
import type { ModelConfig } from '../src/model/config';
import { buildModel, loadCheckpoint } from '../src/model/load';
import { attachLora, type LoraLinear, type LoraSet } from '../src/model/lora-linear';
import { localCheckpoint } from '../src/node/local-files';
import { ADAMW_DEFAULTS } from '../src/ops/optim';
import { Trainer } from '../src/train/trainer';
import { writeTinyCheckpoint, type TinyKind } from './fixtures/tiny-checkpoint';
import type { FamilyReference } from './reference/checkpoint';
import { randn, relError, rng } from './reference/random';
import { exportAdapter } from '../src/model/adapter';

// the checkpoint's float64 twins live with the other references (they need no GPU)
export { checkpointValues, gemmaReference, llamaReference, type FamilyReference } from './reference/checkpoint';

/**
 * The GPU's LoRA gradients (from `grads`, the flat buffer) and central differences of `loss`,
 * at `perTensor` random entries of every module's A and B. `values(m, which)` are the float64
 * arrays the reference reads, perturbed in place and restored.
 */
export function sampledLoraGradients(
  modules: LoraLinear[],
  grads: Float32Array,
  values: (m: LoraLinear, which: 'A' | 'B') => Float64Array,
  loss: () => number,
  r: () => number,
  perTensor = 3,
): { got: number[]; want: number[] } {
  const got: number[] = [],
    want: number[] = [];
  for (const m of modules) {
    for (const which of ['A', 'B'] as const) {
      const view = which === 'A' ? m.lora!.dA : m.lora!.dB;
      const v = values(m, which);
      for (let s = 0; s < perTensor; s++) {
        const j = Math.floor(r() * v.length);
        const keep = v[j],
          eps = 1e-4;
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
  const T = ids.length,
    V = model.config.vocab;
  const inUse = gpu.memory.inUse;
  const take = async (t: Tensor) => {
    const values = await gpu.read(t);
    t.release();
    return values;
  };
  const full = await take(model.logits(batch));
  const cache = model.newCache(T);
  const rows = [await take(model.decode(ids.slice(0, T - 2), cache))];
  rows.push(await take(model.decode([ids[T - 2]], cache)), await take(model.decode([ids[T - 1]], cache)));
  model.releaseCache(cache);
  // the passes freed everything they made but the logits they returned
  expect(gpu.memory.inUse, 'GPU memory after decoding').toBe(inUse);
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
  gpu: Gpu,
  model: CausalLM,
  lora: LoraSet,
  batch: Batch,
  counted: number,
  steps = 20,
): Promise<number[]> {
  const trainer = new Trainer(gpu, model, lora, {
    ...ADAMW_DEFAULTS,
    learning_rate: 2e-2,
    lr_scheduler_type: 'constant',
    warmup_steps: 0,
    max_steps: steps,
  });
  const losses: number[] = [];
  const inUse = gpu.memory.inUse;
  for (let s = 0; s < steps; s++) {
    losses.push((await trainer.trainStep([{ batch, counted }])).loss);
    expect(gpu.memory.inUse, `GPU memory after step ${s + 1}`).toBe(inUse); // a step frees all it made
  }
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

/**
 * The first check of every family test: the checkpoint in `dir` loaded in 16 bits or NF4, LoRA
 * (r 4, B random so every gradient is nonzero) copied into the reference, and the relative errors
 * of the logits, the loss and sampled LoRA gradients (finite differences) on two packed sequences.
 */
export async function referenceErrors(
  gpu: Gpu,
  dir: string,
  nf4: boolean,
  r: () => number,
  reference: (c: ModelConfig) => Promise<FamilyReference>,
) {
  const loaded = await loadCheckpoint(gpu, localCheckpoint(dir), { load_in_4bit: nf4 });
  const c = loaded.config;
  const model = buildModel(gpu, loaded);
  const ref = await reference(c);
  const set = attachLora(gpu, loaded.linears, { r: 4, alpha: 8, dropout: 0, random: r });
  for (const m of loaded.linears) gpu.write(m.lora!.B, randn(r, m.lora!.B.numel, 0.05));
  for (const m of loaded.linears) {
    const A = Float64Array.from(await gpu.read(m.lora!.A)),
      B = Float64Array.from(await gpu.read(m.lora!.B));
    Object.assign(ref.linears.get(m.path)!, { A, B, r: 4, scale: 2 });
  }
  const { h, batch } = randomBatch(gpu, r, c, 13, 6);
  const logits = relError(await gpu.read(model.logits(batch)), ref.logits(h.ids, h.positions, h.start));
  const losses = await gpu.read(model.forwardBackward(batch, 1 / h.counted, 0));
  const refLoss = ref.loss(h.ids, h.labels, h.positions, h.start);
  const loss = Math.abs(losses.reduce((s, v) => s + v, 0) / h.counted - refLoss) / refLoss;
  const { got, want } = sampledLoraGradients(
    loaded.linears,
    await gpu.read(set.grads),
    (m, which) => ref.linears.get(m.path)![which] as Float64Array,
    () => ref.loss(h.ids, h.labels, h.positions, h.start),
    r,
  );
  for (const t of [...model.weightTensors(), ...model.ropeTensors(), set.params, set.grads]) t.release();
  return { config: c, logits, loss, grads: relError(got, want) };
}

/**
 * The second check of every family test: a tiny `kind` checkpoint trained 20 steps on one batch
 * (its losses), then decoded with a KV cache against the full pass (the error), and its adapter
 * exported as PEFT writes one (the tensor names and adapter_config.json).
 */
export async function learnDecodeExport(gpu: Gpu, dir: string, kind: TinyKind, seed: number, base: string) {
  const r = rng(seed);
  const { c, model, lora } = await tinyWithLora(gpu, dir, kind, seed, r);
  const T = 12;
  const { ids, h, batch } = randomBatch(gpu, r, c, T, T);
  const losses = await trainLosses(gpu, model, lora, batch, h.counted);
  // after training, so the decoded logits carry LoRA through every part of the layer
  const decode = await decodeError(gpu, model, ids, batch);
  const files = await exportAdapter(gpu, lora, {
    base_model_name_or_path: base,
    revision: null,
    lora_alpha: 16,
    lora_dropout: 0,
    use_rslora: false,
  });
  const names = readSafetensorsSync(files['adapter_model.safetensors']).map((t) => t.info.name);
  return { config: c, losses, decode, names, adapterConfig: JSON.parse(files['adapter_config.json']) };
}
