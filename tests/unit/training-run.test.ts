// The training loop's own rules, on the tiny Llama with blocks of random tokens and checkpoints
// kept in memory: when it saves (every save_steps and at the end, at each epoch's end, on pause
// and on stop, or never), what a checkpoint's state files say, and what it refuses.
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Block } from '../../src/data/sft';
import { Session } from '../../src/engine/session';
import { TrainingRun, type CheckpointStore, type RunEvent, type RunSettings } from '../../src/engine/training-run';
import type { Gpu } from '../../src/gpu/runtime';
import { localCheckpoint } from '../../src/node/local-files';
import type { CheckpointFiles } from '../../src/train/checkpoint';
import { writeTinyCheckpoint } from '../fixtures/tiny-checkpoint';
import { testGpu } from '../gpu';
import { rng } from '../reference/random';

let gpu: Gpu;
let session: Session;
let blocks: Block[];

class MemoryStore implements CheckpointStore {
  readonly kept = new Map<number, CheckpointFiles>();
  async save(step: number, files: CheckpointFiles) {
    this.kept.set(step, files);
  }
  async steps() {
    return [...this.kept.keys()];
  }
  async remove(step: number) {
    this.kept.delete(step);
  }
}

// 4 blocks at batch 1: 4 steps an epoch
const SETTINGS: RunSettings = {
  learning_rate: 1e-2,
  adam_beta1: 0.9,
  adam_beta2: 0.999,
  adam_epsilon: 1e-8,
  weight_decay: 0,
  max_grad_norm: 1,
  lr_scheduler_type: 'linear',
  warmup_steps: 0,
  max_steps: 10,
  num_train_epochs: 1,
  per_device_train_batch_size: 1,
  gradient_accumulation_steps: 1,
  seed: 5,
  shuffle: true,
  logging_steps: 5,
};

/** Runs to the end; `on` may pause, resume or stop the run as events come. */
async function runAll(run: TrainingRun, on: (e: RunEvent) => void = () => {}): Promise<RunEvent[]> {
  const events: RunEvent[] = [];
  for await (const e of run.events()) {
    events.push(e);
    on(e);
  }
  return events;
}

const saves = (events: RunEvent[]) => events.flatMap((e) => (e.type === 'save' ? [[e.step, e.reason]] : []));

function fresh(): void {
  session.releaseLora();
  session.attachLora({ r: 2, lora_alpha: 4, lora_dropout: 0, target_modules: ['q_proj'], use_rslora: false }, 1);
}

beforeAll(async () => {
  gpu = await testGpu();
  const dir = join(await mkdtemp(join(tmpdir(), 'training-run-')), 'llama');
  await writeTinyCheckpoint(dir, 'llama', 17);
  session = await Session.load(gpu, localCheckpoint(dir), { name: 'tiny', load_in_4bit: true });
  const r = rng(3);
  blocks = [9, 12, 7, 10].map((n) => {
    const ids = Array.from({ length: n }, () => Math.floor(r() * session.config.vocab));
    return { input_ids: ids, labels: ids, position_ids: ids.map((_, i) => i) };
  });
});

describe('the training run', () => {
  it('saves every save_steps and at the end, or at each epoch end, or never; prunes to the limit', async () => {
    fresh();
    const steps = new MemoryStore();
    const s = { ...SETTINGS, save_steps: 4, save_total_limit: 2 };
    const a = await runAll(new TrainingRun(session, blocks, s, { store: steps }));
    expect(saves(a)).toEqual([
      [4, 'steps'],
      [8, 'steps'],
      [10, 'steps'],
    ]);
    expect([...steps.kept.keys()]).toEqual([8, 10]);
    expect(a.filter((e) => e.type === 'train').map((e) => e.type === 'train' && e.log.step)).toEqual([5, 10]);

    fresh();
    const epochs = new MemoryStore();
    const b = await runAll(new TrainingRun(session, blocks, { ...s, save_strategy: 'epoch' }, { store: epochs }));
    expect(saves(b)).toEqual([
      [4, 'epoch'],
      [8, 'epoch'],
      [10, 'epoch'],
    ]);

    fresh();
    const none = new MemoryStore();
    const run = new TrainingRun(session, blocks, { ...s, save_strategy: 'no' }, { store: none });
    const c = await runAll(run, (e) => {
      if (e.type === 'train') run.stop(); // not even on stop
    });
    expect(saves(c)).toEqual([]);
    expect(run.step).toBe(5);
  });

  it("evaluates and logs at each epoch's end (strategy epoch), as transformers' on_epoch_end does", async () => {
    fresh();
    const s: RunSettings = { ...SETTINGS, eval_strategy: 'epoch', logging_strategy: 'epoch' };
    const events = await runAll(new TrainingRun(session, blocks, s, { eval: blocks.slice(0, 2) }));
    // 4 steps an epoch over 10 steps: epochs end after 4 and 8, and the run after 10; logs the same
    const steps = (type: string) => events.flatMap((e) => (e.type === type && 'log' in e ? [e.log.step] : []));
    expect(steps('eval')).toEqual([4, 8, 10]);
    expect(steps('train')).toEqual([4, 8, 10]);
    fresh();
    const quiet = await runAll(new TrainingRun(session, blocks, { ...SETTINGS, max_steps: 3, logging_strategy: 'no' }));
    expect(quiet.filter((e) => e.type === 'train')).toEqual([]);
  });

  it('saves on pause and on stop, and a checkpoint says where the run stands', async () => {
    fresh();
    const store = new MemoryStore();
    const run = new TrainingRun(session, blocks, { ...SETTINGS, logging_steps: 1 }, { store });
    const events = await runAll(run, (e) => {
      if (e.type === 'train' && e.log.step === 3) run.pause();
      if (e.type === 'paused') run.resume();
      if (e.type === 'train' && e.log.step === 6) run.stop();
    });
    const marks = events.flatMap((e) => (e.type === 'train' || e.type === 'eval' ? [] : [[e.type, e.step]]));
    expect(marks).toEqual([
      ['save', 3],
      ['paused', 3],
      ['resumed', 3],
      ['save', 6],
    ]);
    expect(saves(events)).toEqual([
      [3, 'pause'],
      [6, 'stop'],
    ]);
    const json = (f: Uint8Array) => JSON.parse(new TextDecoder().decode(f));
    const training = json(store.kept.get(6)!['training_state.json']);
    // step 6: the second epoch begun, two of its four micro-batches taken; dropout numbered by micro-batch
    expect(training).toMatchObject({
      global_step: 6,
      rng: { seed: 5, shuffle: true, dropout_micro_step: 6 },
      data: { blocks: 4, epochs_started: 2, micro_batches_taken: 2 },
      log: { since_log: { loss: 0, steps: 0, entropy: 0, mean_token_accuracy: 0, micro_batches: 0 } },
      settings: { max_steps: 10, learning_rate: 1e-2, per_device_train_batch_size: 1 },
    });
    const trainer = json(store.kept.get(6)!['trainer_state.json']);
    expect(trainer).toMatchObject({ global_step: 6, epoch: 1.5, max_steps: 10, logging_steps: 1, save_steps: 500 });
    expect(trainer.log_history.map((h: { step: number }) => h.step)).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('refuses settings it cannot run, and a resume with other settings, naming them', async () => {
    fresh();
    const make = (s: Partial<RunSettings>) => new TrainingRun(session, blocks, { ...SETTINGS, ...s });
    expect(() => make({ save_steps: 0 })).toThrow('save_steps must be a positive integer, not 0');
    expect(() => make({ save_strategy: 'sometimes' as 'no' })).toThrow('save_strategy must be steps, epoch or no');
    expect(() => make({ save_total_limit: 0 })).toThrow('save_total_limit must be a positive integer');
    expect(() => make({ eval_steps: 1.5 })).toThrow('eval_steps must be a positive integer, not 1.5');
    const store = new MemoryStore();
    const run = new TrainingRun(session, blocks, { ...SETTINGS, save_steps: 2 }, { store });
    await runAll(run, (e) => {
      if (e.type === 'save') run.stop();
    });
    const resume = store.kept.get(2)!;
    expect(() => new TrainingRun(session, blocks, { ...SETTINGS, max_steps: 12 }, { resume })).toThrow(
      'the checkpoint was trained with other settings: max_steps 10 (now 12)',
    );
    expect(() => new TrainingRun(session, blocks.slice(1), SETTINGS, { resume })).toThrow(
      /trained on other data \(4 blocks, fingerprint [0-9a-f]{8}; now 3 blocks/,
    );
    const back = new TrainingRun(session, blocks, SETTINGS, { resume });
    expect([back.step, back.epoch]).toEqual([2, 0.5]);
  });
});
