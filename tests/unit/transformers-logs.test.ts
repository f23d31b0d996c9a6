// What a run logs is what transformers' Trainer and TRL's SFTTrainer log, each number computed
// here from the Python rule, not from our own log:
// - `learning_rate` is the rate the step used: Trainer reads it before `lr_scheduler.step()`;
// - `eval_loss` is each eval batch's mean token loss, weighted by its number of sequences
//   (`loss.repeat(batch_size)`, then the mean over all);
// - TRL's `entropy` and `mean_token_accuracy` are per micro-batch (entropy: the mean over its
//   tokens; accuracy: argmax hits over labelled tokens), and the log shows their mean since the
//   last log; `num_tokens` counts every input token trained on so far.
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { hostBatch, releaseBatch, uploadBatch } from '../../src/data/batches';
import type { Block } from '../../src/data/sft';
import { Session } from '../../src/engine/session';
import { TrainingRun, type EvalLog, type RunSettings, type TrainLog } from '../../src/engine/training-run';
import type { Gpu } from '../../src/gpu/runtime';
import { localCheckpoint } from '../../src/node/local-files';
import { writeTinyCheckpoint } from '../fixtures/tiny-checkpoint';
import { testGpu } from '../gpu';
import { crossEntropyRef } from '../reference/loss';
import { freshSeed, rng } from '../reference/random';
import { TRAIN_LOG_KEYS } from '../python-logs';

let gpu: Gpu;
let session: Session;
let blocks: Block[];

const SETTINGS: RunSettings = {
  learning_rate: 1e-3,
  adam_beta1: 0.9,
  adam_beta2: 0.999,
  adam_epsilon: 1e-8,
  weight_decay: 0,
  max_grad_norm: 1,
  lr_scheduler_type: 'cosine',
  warmup_steps: 2,
  max_steps: 6,
  num_train_epochs: 1,
  per_device_train_batch_size: 1,
  gradient_accumulation_steps: 1,
  seed: 1,
  shuffle: false,
  logging_steps: 1,
};

async function logsOf(run: TrainingRun): Promise<{ train: TrainLog[]; evals: EvalLog[] }> {
  const train: TrainLog[] = [];
  const evals: EvalLog[] = [];
  for await (const e of run.events()) {
    if (e.type === 'train') train.push(e.log);
    if (e.type === 'eval') evals.push(e.log);
  }
  return { train, evals };
}

function fresh(): void {
  session.releaseLora();
  session.attachLora({ r: 2, lora_alpha: 4, lora_dropout: 0, target_modules: ['q_proj'], use_rslora: false }, 1);
}

/** Float64 per-token loss, entropy and argmax hit of a batch of blocks, from the model's logits. */
async function tokenFacts(batch: Block[]) {
  const h = hostBatch(batch);
  const b = uploadBatch(gpu, h);
  const z = await gpu.read(session.model.logits(b)).finally(() => releaseBatch(b));
  const T = h.ids.length;
  return { ...crossEntropyRef(z, h.labels, T, session.config.vocab), T, counted: h.counted };
}

const sum = (a: ArrayLike<number>) => Array.from(a).reduce((x, y) => x + y, 0);
const mean = (a: number[]) => sum(a) / a.length;

beforeAll(async () => {
  gpu = await testGpu();
  const dir = join(await mkdtemp(join(tmpdir(), 'transformers-logs-')), 'llama');
  await writeTinyCheckpoint(dir, 'llama', 23);
  session = await Session.load(gpu, localCheckpoint(dir), { name: 'tiny', load_in_4bit: true });
  const seed = freshSeed();
  const r = rng(seed);
  // 8 blocks of unequal lengths, the first two labels ignored: at eval batch 3 the batches hold 22,
  // 23 and 15 labelled tokens in 3, 3 and 2 rows, so weighting by rows and by tokens differ
  blocks = [9, 12, 7, 10, 5, 14, 8, 11].map((n) => {
    const ids = Array.from({ length: n }, () => Math.floor(r() * session.config.vocab));
    const labels = ids.map((id, i) => (i < 2 ? -100 : id));
    return { input_ids: ids, labels, position_ids: ids.map((_, i) => i) };
  });
  // a random tiny model rarely predicts a random label: make some labels its argmax, so that
  // accuracies are neither 0 nor 1 (the logits depend on the ids only). Most of the first three
  // blocks' (the first eval batch at batch 3), fewer of the rest: the eval batches' mean losses
  // then differ enough for weighting by rows and by tokens to give different means.
  const V = session.config.vocab;
  for (const [i, block] of blocks.entries()) {
    const share = i < 3 ? 0.9 : 0.4;
    const h = hostBatch([block]);
    const b = uploadBatch(gpu, h);
    const z = await gpu.read(session.model.logits(b)).finally(() => releaseBatch(b));
    // position t − 1 predicts label t (the batch shifts them)
    block.labels = block.labels.map((l, t) => {
      if (l < 0 || r() >= share) return l;
      const row = z.subarray((t - 1) * V, t * V);
      return row.indexOf(Math.max(...row));
    });
  }
});

describe('logs as transformers and TRL write them', () => {
  it('logs the learning rate each step used: warmup 2, cosine to 6 steps at 1e-3', async () => {
    fresh();
    const { train } = await logsOf(new TrainingRun(session, blocks, SETTINGS));
    // transformers: 0, 5e-4 (warmup), then 1e-3 · ½(1 + cos(π · (k − 2) / 4)) for k = 2…5
    const expected = [0, 5e-4, 1e-3, 1e-3 * 0.5 * (1 + Math.SQRT1_2), 5e-4, 1e-3 * 0.5 * (1 - Math.SQRT1_2)];
    expect(train.map((l) => l.step)).toEqual([1, 2, 3, 4, 5, 6]);
    for (const [i, l] of train.entries()) expect(l.learning_rate, `step ${l.step}`).toBeCloseTo(expected[i], 15);
  });

  it('reads a warmup below 1 step as a share of the steps, and logs the first step when asked', async () => {
    fresh();
    const s: RunSettings = {
      ...SETTINGS,
      lr_scheduler_type: 'constant_with_warmup',
      warmup_steps: 0.34, // transformers: ceil(0.34 × 6) = 3 steps
      logging_steps: 4,
      logging_first_step: true,
    };
    const { train } = await logsOf(new TrainingRun(session, blocks, s));
    expect(train.map((l) => [l.step, l.learning_rate])).toEqual([
      [1, 0],
      [4, 1e-3],
      [6, 1e-3],
    ]);
    fresh();
    // warmup_ratio 0.5 of 6 steps: 3 steps of warmup
    const ratio = await logsOf(
      new TrainingRun(session, blocks, { ...s, warmup_steps: 0, warmup_ratio: 0.5, logging_steps: 1 }),
    );
    const rates = ratio.train.map((l) => l.learning_rate);
    [0, 1e-3 / 3, 2e-3 / 3, 1e-3, 1e-3, 1e-3].forEach((r, i) => {
      expect(rates[i]).toBeCloseTo(r, 15);
    });
  });

  it("weights each eval batch's mean loss by its sequences (the Trainer's loss.repeat(batch_size))", async () => {
    fresh();
    const batches = [blocks.slice(0, 3), blocks.slice(3, 6), blocks.slice(6)]; // batch 3: 3, 3 and 2 rows
    const facts = await Promise.all(batches.map(tokenFacts));
    expect(facts.map((f) => f.counted)).toEqual([22, 23, 15]);
    const batchMeans = facts.map((f) => sum(f.loss) / f.counted);
    const trainer = (3 * batchMeans[0] + 3 * batchMeans[1] + 2 * batchMeans[2]) / 8;
    const tokenWeighted = sum(facts.map((f) => sum(f.loss))) / sum(facts.map((f) => f.counted));
    const e = await session.evaluate(blocks, 3);
    expect(Math.abs(e.eval_loss - trainer) / trainer).toBeLessThan(1e-5);
    // …which is not the token-weighted mean the evaluation reported before
    expect(Math.abs(tokenWeighted - trainer) / trainer).toBeGreaterThan(1e-4);
    // TRL's metrics: their mean over the eval batches
    const entropy = mean(facts.map((f) => sum(f.entropy) / f.T));
    const accuracy = mean(facts.map((f) => sum(f.hit) / f.counted));
    expect(Math.abs(e.entropy - entropy) / entropy).toBeLessThan(1e-5);
    expect(e.mean_token_accuracy).toBeCloseTo(accuracy, 12);
    expect([e.samples, e.batches, e.tokens]).toEqual([8, 3, sum(facts.map((f) => f.counted))]);
  });

  it("logs TRL's entropy and mean_token_accuracy (micro-batch means since the last log), num_tokens", async () => {
    fresh();
    // A rate so small the adapter stays at its start (B = 0): every micro-batch sees the base model's logits.
    const s: RunSettings = {
      ...SETTINGS,
      learning_rate: 1e-20,
      lr_scheduler_type: 'constant',
      warmup_steps: 0,
      max_steps: 4,
      gradient_accumulation_steps: 2,
      logging_steps: 2,
    };
    const run = new TrainingRun(session, blocks, s, { eval: blocks.slice(0, 5) });
    const { train, evals } = await logsOf(run);
    expect(train.map((l) => l.step)).toEqual([2, 4]);
    const facts = await Promise.all(blocks.map((b) => tokenFacts([b])));
    // each log covers 2 steps of 2 micro-batches of 1 block: blocks 0–3, then 4–7
    for (const [i, log] of train.entries()) {
      const mine = facts.slice(4 * i, 4 * i + 4);
      const entropy = mean(mine.map((f) => sum(f.entropy) / f.T));
      expect(Math.abs(log.entropy - entropy) / entropy, `log ${i}`).toBeLessThan(1e-5);
      const accuracy = mean(mine.map((f) => sum(f.hit) / f.counted));
      expect(accuracy).toBeGreaterThan(0.1);
      expect(accuracy).toBeLessThan(0.9);
      expect(log.mean_token_accuracy, `log ${i}`).toBeCloseTo(accuracy, 12);
      expect(log.num_tokens).toBe(sum(blocks.slice(0, 4 * i + 4).map((b) => b.input_ids.length)));
    }
    // evaluations carry the training's num_tokens, as TRL logs eval_num_tokens
    expect(evals.map((e) => [e.step, e.eval_num_tokens])).toEqual([
      [2, train[0].num_tokens],
      [4, train[1].num_tokens],
    ]);
    expect(Object.keys(train[0])).toEqual([...TRAIN_LOG_KEYS, 'max_steps']); // max_steps: for the page's progress
  });
});
