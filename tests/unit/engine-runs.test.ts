// The page's engine keeps its training runs in IndexedDB (fake-indexeddb here; Dawn on
// SwiftShader for the GPU): a run whose tab died is listed with its checkpoints and resumes to
// the losses the uninterrupted run logs, bit for bit; a GPU lost mid-run is replaced, the model
// reloaded from the store and the run carried on from its last checkpoint, to the same losses.
import 'fake-indexeddb/auto';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { create, globals } from 'webgpu';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine, type TrainEvent } from '../../src/engine/engine';
import type { LoraSettings } from '../../src/engine/session';
import type { RunSettings } from '../../src/engine/training-run';
import type { PrepareSettings } from '../../src/data/prepare';
import { SWIFTSHADER_ICD } from '../../src/node/dawn';
import { nodeTokenizerWorker } from '../../src/node/tokenizer-worker';
import { startHub, type TestHub } from '../fixtures/hub-server';
import { writeTinyCheckpoint } from '../fixtures/tiny-checkpoint';
import { writeTinyDataset } from '../fixtures/tiny-data';

let hub: TestHub;
let key: string;
let file: File;

const PREPARE: PrepareSettings = {
  dataset_text_field: 'text',
  max_length: 64,
  packing: false,
  packing_strategy: 'bfd',
  completion_only_loss: null,
  assistant_only_loss: false,
  dataset_train_split: 'train',
  dataset_test_split: 'test',
  evaluate: false,
  test_size: null,
  seed: 42,
  batch: 1,
};
const LORA: LoraSettings = { r: 4, lora_alpha: 8, lora_dropout: 0.1, target_modules: 'all-linear', use_rslora: false };
// 4 blocks at batch 1: an epoch is 4 steps, reshuffled; dropout on; a checkpoint every 2 steps
const RUN: RunSettings = {
  learning_rate: 2e-2,
  adam_beta1: 0.9,
  adam_beta2: 0.999,
  adam_epsilon: 1e-8,
  weight_decay: 0,
  max_grad_norm: 1,
  lr_scheduler_type: 'cosine',
  warmup_steps: 1,
  max_steps: 7,
  num_train_epochs: 1,
  per_device_train_batch_size: 1,
  gradient_accumulation_steps: 1,
  seed: 3,
  shuffle: true,
  logging_steps: 1,
  save_steps: 2,
  save_total_limit: 2,
};

async function engineWithModel(): Promise<Engine> {
  const engine = new Engine({ tokenizerWorker: nodeTokenizerWorker() });
  await engine.init(create([]));
  if (!key) key = (await engine.downloadModel('tiny-random/llama', { endpoint: hub.url })).key;
  await engine.loadModel(key);
  await engine.prepareData({ kind: 'file', file }, PREPARE);
  return engine;
}

const losses = (events: TrainEvent[]) =>
  events.flatMap((e) => (e.type === 'train' ? [[e.log.step, e.log.loss] as const] : []));

beforeAll(async () => {
  process.env.VK_ICD_FILENAMES ??= SWIFTSHADER_ICD;
  Object.assign(globalThis, globals);
  const root = await mkdtemp(join(tmpdir(), 'engine-runs-'));
  await writeTinyCheckpoint(join(root, 'llama'), 'llama', 13);
  const data = await writeTinyDataset(join(root, 'data'));
  file = new File([await readFile(data.jsonl)], 'tiny.jsonl');
  hub = await startHub([{ type: 'model', id: 'tiny-random/llama', dir: join(root, 'llama') }]);
});
afterAll(() => hub.close());

describe("the engine's runs", () => {
  const full: TrainEvent[] = [];
  let trainLoss = Number.NaN;
  /** A second run, on from the first one's adapter (not a fresh one). */
  const further: TrainEvent[] = [];

  it('keeps a run in IndexedDB: its settings, log and latest checkpoints', async () => {
    const engine = await engineWithModel();
    const summary = await engine.train(LORA, RUN, (e) => {
      full.push(e);
    });
    expect(summary.global_step).toBe(7);
    trainLoss = summary.train_loss;
    expect(losses(full).map(([s]) => s)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    const saves = full.filter((e) => e.type === 'save');
    expect(saves.map((e) => e.type === 'save' && [e.step, e.pruned])).toEqual([
      [2, []],
      [4, []],
      [6, [2]],
      [7, [4]],
    ]);
    const [run] = await engine.listRuns();
    expect(run).toMatchObject({ state: 'finished', step: 7, maxSteps: 7, checkpoints: [6, 7], data: 'tiny.jsonl' });
    expect(run.history.map((h) => h.loss)).toEqual(losses(full).map(([, l]) => l));
    await engine.train(LORA, RUN, (e) => {
      further.push(e);
    });
    expect(losses(further)[0][1]).toBeLessThan(losses(full)[0][1]); // it goes on from the trained adapter
  });

  it('resumes a run whose tab died, from its last checkpoint, to the same losses', async () => {
    const dying = await engineWithModel();
    const seen: TrainEvent[] = [];
    // the tab dies as step 5 is shown: nothing after it runs, nothing is marked
    void dying.train(LORA, RUN, (e) => {
      seen.push(e);
      if (e.type === 'train' && e.log.step === 5) return new Promise<void>(() => {});
    });
    await expect.poll(() => losses(seen).length, { timeout: 120_000 }).toBe(5);

    const later = await engineWithModel(); // the page reloaded
    const [run] = await later.listRuns();
    expect(run).toMatchObject({ state: 'running', step: 5, checkpoints: [2, 4] });
    const resumed: TrainEvent[] = [];
    const summary = await later.resumeRun(run.id, (e) => {
      resumed.push(e);
    });
    const restored = resumed[0];
    expect(restored).toMatchObject({ type: 'restored', step: 4, maxSteps: 7 });
    expect(restored.type === 'restored' && restored.history.map((h) => h.step)).toEqual([1, 2, 3, 4]);
    expect(losses(resumed)).toEqual(losses(full).slice(4));
    expect(summary.train_loss).toBe(trainLoss); // the mean over all 7 steps, the first 4 from the checkpoint
    const after = (await later.listRuns()).find((r) => r.id === run.id)!;
    expect(after).toMatchObject({ state: 'finished', step: 7 });
    expect(after.history.map((h) => h.loss)).toEqual(losses(full).map(([, l]) => l));
  });

  it('replaces a lost GPU mid-run and carries on from the last checkpoint, to the same losses', async () => {
    const engine = await engineWithModel();
    const events: TrainEvent[] = [];
    await engine.train(LORA, RUN, (e) => {
      events.push(e);
      // as a driver reset or the browser would: the device goes while the run holds it
      if (e.type === 'train' && e.log.step === 3 && !events.some((x) => x.type === 'recovered'))
        (engine as unknown as { gpu: { device: GPUDevice } }).gpu.device.destroy();
    });
    const recovered = events.find((e) => e.type === 'recovered');
    expect(recovered).toMatchObject({ type: 'recovered', lostAt: 3, resumedFrom: 2, redone: 1 });
    const at = events.indexOf(recovered!);
    expect(losses(events.slice(0, at))).toEqual(losses(full).slice(0, 3));
    expect(losses(events.slice(at))).toEqual(losses(full).slice(2));
    const [run] = await engine.listRuns();
    expect(run).toMatchObject({ state: 'finished', step: 7 });
    expect(run.history.map((h) => h.loss)).toEqual(losses(full).map(([, l]) => l));

    // lost before a run's first checkpoint: it starts again from the adapter it started from
    const again: TrainEvent[] = [];
    await engine.train(LORA, RUN, (e) => {
      again.push(e);
      if (e.type === 'train' && e.log.step === 1 && !again.some((x) => x.type === 'recovered'))
        (engine as unknown as { gpu: { device: GPUDevice } }).gpu.device.destroy();
    });
    expect(again.find((e) => e.type === 'recovered')).toMatchObject({ lostAt: 1, resumedFrom: 0, redone: 1 });
    const from = again.findIndex((e) => e.type === 'recovered');
    expect(losses(again.slice(from))).toEqual(losses(further));

    // Stop pressed as the device goes: the run that takes over stops too, and is kept as stopped
    const stopped: TrainEvent[] = [];
    const summary = await engine.train(LORA, RUN, (e) => {
      stopped.push(e);
      if (e.type === 'train' && e.log.step === 1 && !stopped.some((x) => x.type === 'recovered')) {
        (engine as unknown as { gpu: { device: GPUDevice } }).gpu.device.destroy();
        engine.stopTraining();
      }
    });
    expect(stopped.some((e) => e.type === 'recovered')).toBe(true);
    expect(losses(stopped.slice(stopped.findIndex((e) => e.type === 'recovered')))).toEqual([]);
    expect(summary.global_step).toBe(0);
    expect((await engine.listRuns())[0]).toMatchObject({ state: 'stopped' });
  });

  it('gives up on a GPU lost again and again at the same step, keeping the run to resume later', async () => {
    const engine = await engineWithModel();
    const lose = () => (engine as unknown as { gpu: { device: GPUDevice } }).gpu.device.destroy();
    const failed = engine.train(LORA, RUN, (e) => {
      if (e.type === 'train' && e.log.step === 3) lose();
    });
    await expect(failed).rejects.toThrow(/the GPU was lost 4 times without training past step 3/);
    const [run] = await engine.listRuns();
    expect(run).toMatchObject({ state: 'failed', checkpoints: [2] });
  });
});
