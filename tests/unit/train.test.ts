import { beforeAll, describe, expect, it } from 'vitest';
import type { Gpu } from '../../src/gpu/runtime';
import { parseModelConfig } from '../../src/model/registry';
import { attachLora } from '../../src/model/lora-linear';
import { ADAMW_DEFAULTS } from '../../src/ops/optim';
import { checkSchedule, lrMultiplier, type SchedulerKwargs, type SchedulerType } from '../../src/train/schedule';
import { Trainer, type StepLog } from '../../src/train/trainer';
import { releaseBatch } from '../../src/data/batches';
import { testGpu } from '../gpu';
import { rng } from '../reference/random';
import { TINY, buildTinyModel, packedBatch } from '../tiny-model';

let gpu: Gpu;
beforeAll(async () => {
  gpu = await testGpu();
});

describe('learning-rate schedules, as transformers defines them', () => {
  // multiplier at step k with warmup w to `total` steps, learning rate 1e-3 (polynomial reads it)
  const at = (type: SchedulerType, k: number, w: number, total: number, kw: SchedulerKwargs = {}) =>
    lrMultiplier({ lr_scheduler_type: type, warmup_steps: w, learning_rate: 1e-3, lr_scheduler_kwargs: kw }, k, total);

  it('warms up linearly, then holds, decays linearly, or follows half a cosine', () => {
    expect([0, 1, 2, 5, 9].map((k) => at('linear', k, 2, 10))).toEqual([0, 0.5, 1, 5 / 8, 1 / 8]);
    expect([0, 1, 2, 6, 10].map((k) => at('cosine', k, 2, 10))).toEqual([
      0,
      0.5,
      1,
      0.5 + 0.5 * Math.cos(Math.PI / 2),
      0,
    ]);
    expect([0, 3].map((k) => at('constant_with_warmup', k, 2, 10))).toEqual([0, 1]);
    expect(at('constant', 0, 5, 10)).toBe(1);
  });

  it("follows transformers' other schedules and their lr_scheduler_kwargs", () => {
    // after warmup 2 of 10 steps, progress p = (k − 2) / 8
    const close = (got: number[], want: number[]) => {
      for (const [i, g] of got.entries()) expect(g, `${i}`).toBeCloseTo(want[i], 12);
    };
    // hard restarts, 2 cycles: ½(1 + cos(π · (2p mod 1))), restarting at p = ½; 0 from p = 1
    close(
      [2, 4, 6, 8, 10].map((k) => at('cosine_with_restarts', k, 2, 10, { num_cycles: 2 })),
      [1, 0.5, 1, 0.5, 0],
    );
    // cosine ending at min_lr_rate 0.1: at the end 0.1, half-way 0.1 + 0.9 · ½
    close(
      [10, 6].map((k) => at('cosine_with_min_lr', k, 2, 10, { min_lr_rate: 0.1 })),
      [0.1, 0.55],
    );
    close(
      [10].map((k) => at('cosine_with_min_lr', k, 2, 10, { min_lr: 2e-4 })),
      [0.2],
    );
    // polynomial, power 2, lr_end 1e-4: ((1e-3 − 1e-4)(1 − p)² + 1e-4) / 1e-3
    close(
      [2, 6, 10, 12].map((k) => at('polynomial', k, 2, 10, { power: 2, lr_end: 1e-4 })),
      [1, (9e-4 * 0.25 + 1e-4) / 1e-3, 0.1, 0.1],
    );
    // inverse square root, timescale = warmup: 1 / √((k + 0) / 2)
    close(
      [2, 8, 18].map((k) => at('inverse_sqrt', k, 2, 100)),
      [1, 0.5, 1 / 3],
    );
    close(
      [2].map((k) => at('inverse_sqrt', k, 0, 100, { timescale: 4 })),
      [1 / Math.sqrt(1.5)],
    );
    // warmup-stable-decay, 4 decay steps: warmup 2, stable 10 − 2 − 4 = 4, then half a cosine to 0
    const c = (x: number) => 0.5 * (1 + Math.cos(Math.PI * x));
    close(
      [0, 1, 2, 5, 6, 7, 9, 10, 12].map((k) => at('warmup_stable_decay', k, 2, 10, { num_decay_steps: 4 })),
      [0, 0.5, 1, 1, 1, c(0.25), c(0.75), 0, 0],
    );
    // from and to min_lr_ratio 0.1, cosine warmup, linear decay: f · 0.9 + 0.1
    const wsd = { num_decay_steps: 4, min_lr_ratio: 0.1, warmup_type: 'cosine', decay_type: 'linear' } as const;
    close(
      [0, 1, 7, 10].map((k) => at('warmup_stable_decay', k, 2, 10, wsd)),
      [0.1, 0.5 * 0.9 + 0.1, 0.75 * 0.9 + 0.1, 0.1],
    );
    // num_stable_steps given (1): the decay starts at step 3; 1-sqrt warmup and decay
    const sqrt = { num_decay_steps: 4, num_stable_steps: 1, warmup_type: '1-sqrt', decay_type: '1-sqrt' } as const;
    close(
      [1, 2, 3, 4, 7].map((k) => at('warmup_stable_decay', k, 2, 10, sqrt)),
      [1 - Math.sqrt(0.5), 1, 1, 0.5, 0],
    );
  });

  it('refuses arguments a schedule does not take, naming the ones it does', () => {
    const s = (type: SchedulerType, kw: SchedulerKwargs) => ({
      lr_scheduler_type: type,
      warmup_steps: 0,
      learning_rate: 1e-3,
      lr_scheduler_kwargs: kw,
    });
    expect(() => checkSchedule(s('linear', { num_cycles: 2 }))).toThrow(
      'lr_scheduler_kwargs: linear takes no arguments, not num_cycles',
    );
    expect(() => checkSchedule(s('cosine_with_min_lr', {}))).toThrow(
      'needs one of lr_scheduler_kwargs min_lr and min_lr_rate',
    );
    expect(() => checkSchedule(s('polynomial', { lr_end: 1e-2 }))).toThrow('must be smaller than learning_rate');
    expect(() => checkSchedule(s('warmup_stable_decay', {}))).toThrow('needs lr_scheduler_kwargs num_decay_steps');
    const shape = { num_decay_steps: 2, decay_type: 'exp' } as unknown as SchedulerKwargs;
    expect(() => checkSchedule(s('warmup_stable_decay', shape))).toThrow(
      'decay_type must be one of linear, cosine, 1-sqrt, not "exp"',
    );
  });
});

/** Steps on one repeated packed batch, split into two micro-batches of accumulation. */
async function run(
  seed: number,
  dropout: number,
  steps: number,
  gradient_checkpointing = true,
  layers = TINY.num_hidden_layers,
  dropoutSeed?: number,
): Promise<StepLog[]> {
  const inUse = gpu.memory.inUse;
  const r = rng(seed);
  const c = parseModelConfig({ ...TINY, num_hidden_layers: layers, model_type: 'llama', tie_word_embeddings: true });
  const { model, modules } = buildTinyModel(gpu, c, r);
  const lora = attachLora(gpu, modules, { r: 8, alpha: 16, dropout, random: r });
  const a = packedBatch(gpu, c, r),
    b = packedBatch(gpu, c, r);
  const micro = [a, b].map((x) => ({ batch: x.batch, counted: x.labels.filter((l) => l >= 0).length }));
  const trainer = new Trainer(gpu, model, lora, {
    ...ADAMW_DEFAULTS,
    learning_rate: 1e-2,
    weight_decay: 0.01,
    max_grad_norm: 1,
    lr_scheduler_type: 'linear',
    warmup_steps: 2,
    max_steps: 30,
    gradient_checkpointing,
    seed: dropoutSeed,
  });
  const logs: StepLog[] = [];
  const held = gpu.memory.inUse;
  const made = () => gpu.counters.buffersCreated + gpu.counters.bindGroupsCreated;
  let afterFirst = 0;
  for (let s = 0; s < steps; s++) {
    logs.push(await trainer.trainStep(micro));
    // a step frees all it made (scopes): the model, adapter, moments and batches are all that stay
    expect(gpu.memory.inUse, `after step ${s + 1}`).toBe(held);
    // and after the first, it makes no GPU buffer or bind group: pooled buffers, cached bind
    // groups, uniforms in the ring's slots, whatever seeds and rates change
    if (s === 0) afterFirst = made();
    else expect(made(), `GPU objects made by step ${s + 1}`).toBe(afterFirst);
  }
  // and everything goes when the session would let it go
  trainer.release();
  for (const t of [...model.weightTensors(), ...model.ropeTensors()]) t.release();
  lora.params.release();
  lora.grads.release();
  for (const t of [a, b]) releaseBatch(t.batch);
  expect(gpu.memory.inUse).toBe(inUse);
  return logs;
}

describe('QLoRA training on the tiny model', () => {
  it('at least halves the loss in 30 steps, with accumulation, clipping and dropout', async () => {
    const logs = await run(42, 0.05, 30);
    const first = logs[0].loss,
      last = logs[logs.length - 1].loss;
    if (process.env.PRINT_LOSS) console.log(JSON.stringify(logs));
    expect(last, `losses ${logs.map((l) => l.loss.toFixed(3)).join(' ')}`).toBeLessThan(first / 2);
    expect(logs[0].learning_rate).toBe(0); // warmup starts at 0, as in transformers
    expect(logs[1].learning_rate).toBeCloseTo(5e-3, 12);
    expect(logs.every((l) => Number.isFinite(l.grad_norm) && l.grad_norm > 0)).toBe(true);
    expect(logs[29].step).toBe(30);
  });

  it('gives the same losses, run after run, for one seed, and without gradient checkpointing', async () => {
    const dispatched = async (f: () => Promise<StepLog[]>) => {
      const before = gpu.counters.dispatches;
      const logs = await f();
      return { logs, dispatches: gpu.counters.dispatches - before };
    };
    const x = await dispatched(() => run(7, 0.1, 6));
    const y = await dispatched(() => run(7, 0.1, 6));
    expect(y.logs.map((l) => l.loss)).toEqual(x.logs.map((l) => l.loss));
    expect(y.logs.map((l) => l.grad_norm)).toEqual(x.logs.map((l) => l.grad_norm));
    // keeping each layer's intermediates instead of recomputing them changes no bit (same dropout
    // masks, same kernels on the same values), and skips the layers' second forward
    const kept = await dispatched(() => run(7, 0.1, 6, false));
    expect(kept.logs.map((l) => l.loss)).toEqual(x.logs.map((l) => l.loss));
    expect(kept.logs.map((l) => l.grad_norm)).toEqual(x.logs.map((l) => l.grad_norm));
    expect(kept.dispatches).toBeLessThan(x.dispatches);
    // the last layer keeps its intermediates even with checkpointing (its backward comes next):
    // a one-layer model recomputes nothing, a two-layer one its first layer's forward only
    const one = await dispatched(() => run(7, 0.1, 2, true, 1));
    const oneKept = await dispatched(() => run(7, 0.1, 2, false, 1));
    expect(one.dispatches).toBe(oneKept.dispatches);
    expect(one.logs.map((l) => l.loss)).toEqual(oneKept.logs.map((l) => l.loss));
    const layerForward = (x.dispatches - kept.dispatches) / (6 * 2); // 6 steps of 2 micro-batches
    // another run seed draws other dropout masks from the first step on (the same adapter here):
    // the first loss is the same (B is 0, so no mask shows in the output), its gradient is not
    const reseeded = await run(7, 0.1, 1, true, TINY.num_hidden_layers, 1);
    expect(reseeded[0].loss).toBe(x.logs[0].loss);
    expect(reseeded[0].grad_norm).not.toBe(x.logs[0].grad_norm);
    expect(Number.isInteger(layerForward) && layerForward > 0, `${layerForward} dispatches a layer`).toBe(true);
  });
});
