// Checkpoints and exact resume on the command line: `finetune train` writes checkpoint-N/
// folders as transformers does (save_steps, save_total_limit), and --resume_from_checkpoint
// continues so that the losses, evaluations and final adapter are the uninterrupted run's, bit
// for bit, with dropout and shuffling on and the checkpoint taken mid-epoch.
import { cp, mkdir, mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { CHECKPOINT_FILES } from '../../src/train/checkpoint';
import { finetuneRunner, type Run } from '../cli-run';
import { writeTinyCheckpoint } from '../fixtures/tiny-checkpoint';
import { writeTinyDataset } from '../fixtures/tiny-data';

let root: string;
let model: string;
let data: Awaited<ReturnType<typeof writeTinyDataset>>;
let finetune: ReturnType<typeof finetuneRunner>;

// 3 training examples at batch 1: 3 steps an epoch, so 8 steps reshuffle twice; dropout on
const RUN = [
  ['--max_steps', '8', '--learning_rate', '2e-2', '--lr_scheduler_type', 'cosine', '--warmup_steps', '2'],
  ['--lora_r', '4', '--lora_alpha', '8', '--lora_dropout', '0.1', '--per_device_train_batch_size', '1'],
  ['--logging_steps', '1', '--test_size', '0.25', '--eval_strategy', 'steps', '--eval_steps', '3'],
  ['--save_steps', '2', '--save_total_limit', '3', '--json', 'true'],
].flat();

/** The run into `out`, with `extra` flags; `change` rewrites RUN's values (another setting), `dataset` another file. */
const train = (out: string, extra: string[] = [], o: { change?: [string, string]; dataset?: string } = {}) =>
  finetune(
    'train',
    ...['--model_name_or_path', model, '--dataset_name', o.dataset ?? data.jsonl, '--output_dir', out],
    ...RUN.map((x) => (o.change && x === o.change[0] ? o.change[1] : x)),
    ...extra,
  );

const logs = (r: Run) => r.lines.filter((l) => 'loss' in l || 'eval_loss' in l);
/** A log without what the clock measured. */
const untimed = (l: Record<string, unknown>) => {
  const { eval_runtime: _r, eval_samples_per_second: _s, eval_steps_per_second: _t, ...rest } = l;
  return rest;
};

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'finetune-resume-'));
  data = await writeTinyDataset(join(root, 'data'));
  model = join(root, 'tiny-llama');
  await writeTinyCheckpoint(model, 'llama', 11);
  finetune = finetuneRunner(root);
});

describe('finetune train: checkpoints and --resume_from_checkpoint', () => {
  let full: Run;
  const out = () => join(root, 'full');

  it('writes checkpoint-N folders every save_steps, keeps save_total_limit of them, and a model card', async () => {
    full = await train(out());
    expect(full.code, full.stderr).toBe(0);
    const saved = full.lines.filter((l) => 'checkpoint' in l);
    expect(saved.map((l) => l.checkpoint)).toEqual([2, 4, 6, 8].map((s) => join(out(), `checkpoint-${s}`)));
    expect(saved[3].removed).toEqual([join(out(), 'checkpoint-2')]);
    const kept = (await readdir(out())).filter((n) => n.startsWith('checkpoint-')).sort();
    expect(kept).toEqual(['checkpoint-4', 'checkpoint-6', 'checkpoint-8']);
    expect((await readdir(join(out(), 'checkpoint-4'))).sort()).toEqual([...CHECKPOINT_FILES].sort());

    // transformers' TrainerState, mid-run: the step, the fractional epoch, the logs so far
    const state = JSON.parse(await readFile(join(out(), 'checkpoint-4', 'trainer_state.json'), 'utf8'));
    expect(state).toMatchObject({
      global_step: 4,
      epoch: 1.3333,
      max_steps: 8,
      logging_steps: 1,
      eval_steps: 3,
      save_steps: 2,
      train_batch_size: 1,
      best_metric: null,
    });
    expect(state.log_history.map((h: { step: number }) => h.step)).toEqual([1, 2, 3, 3, 4]);
    expect(state.log_history[3]).toHaveProperty('eval_loss');

    // the output folder: the adapter, the whole log_history closed by the summary, the card
    const final = JSON.parse(await readFile(join(out(), 'trainer_state.json'), 'utf8'));
    expect(final.global_step).toBe(8);
    expect(final.log_history.at(-1)).toMatchObject({ step: 8, train_loss: full.lines.at(-1)!.train_loss });
    const card = await readFile(join(out(), 'README.md'), 'utf8');
    expect(card.startsWith(`---\nbase_model: ${JSON.stringify(model)}\nlibrary_name: peft\n`)).toBe(true);
    expect(card).toContain('| lora_dropout | 0.1 |');
    expect(card).not.toContain('datasets:'); // the data is a local folder, not a Hub data set
    expect(card).toContain(
      `| train_loss (mean over all steps) | ${(full.lines.at(-1)!.train_loss as number).toFixed(4)} |`,
    );
  });

  it('resumes mid-epoch to the same losses, evaluations and adapter, bit for bit', async () => {
    const resumedOut = join(root, 'resumed');
    const r = await train(resumedOut, ['--resume_from_checkpoint', join(out(), 'checkpoint-4')]);
    expect(r.code, r.stderr).toBe(0);
    const after = logs(full).filter((l) => (l.step as number) > 4);
    expect(after.length).toBe(6); // steps 5–8, evaluations after 6 and 8
    expect(logs(r).map(untimed)).toEqual(after.map(untimed));
    expect(r.lines.at(-1)!.train_loss).toBe(full.lines.at(-1)!.train_loss);
    for (const f of ['adapter_model.safetensors', 'adapter_config.json'])
      expect(Buffer.compare(await readFile(join(resumedOut, f)), await readFile(join(out(), f))), f).toBe(0);
    // the resumed run's own checkpoint-8 holds the same optimizer state as the uninterrupted one's
    const moments = (dir: string) => readFile(join(dir, 'checkpoint-8', 'optimizer.safetensors'));
    expect(Buffer.compare(await moments(resumedOut), await moments(out()))).toBe(0);
  });

  it('resumes from the latest complete checkpoint with `true`, passing over a half-written one', async () => {
    const crashed = join(root, 'crashed');
    await mkdir(crashed);
    await cp(join(out(), 'checkpoint-6'), join(crashed, 'checkpoint-6'), { recursive: true });
    // a save the process died in: never under a checkpoint's name (written aside, then renamed)
    await mkdir(join(crashed, '.checkpoint-8.partial'));
    await writeFile(join(crashed, '.checkpoint-8.partial', 'adapter_config.json'), '{');
    const r = await train(crashed, ['--resume_from_checkpoint', 'true']);
    expect(r.code, r.stderr).toBe(0);
    expect(logs(r).map((l) => l.loss ?? l.eval_loss)).toEqual(
      logs(full)
        .filter((l) => (l.step as number) > 6)
        .map((l) => l.loss ?? l.eval_loss),
    );
    expect((await readdir(crashed)).filter((n) => n.startsWith('.'))).toEqual([]);
  });

  it('refuses other settings, other data and a missing checkpoint, saying which', async () => {
    const checkpoint = join(out(), 'checkpoint-4');
    const resume = ['--resume_from_checkpoint', checkpoint];
    const lr = await train(join(root, 'x1'), resume, { change: ['2e-2', '1e-3'] });
    expect(lr.code).toBe(1);
    expect(lr.stderr).toMatch(/other settings: learning_rate 0\.02 \(now 0\.001\)/);
    const other = await train(join(root, 'x2'), resume, { change: ['0.25', '0.5'], dataset: data.csv });
    expect(other.code).toBe(1);
    expect(other.stderr).toMatch(/trained on other data \(3 blocks, fingerprint [0-9a-f]{8}; now 2 blocks/);
    const none = await train(join(root, 'x3'), ['--resume_from_checkpoint', 'true']);
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/no checkpoint-N folder in .*x3/);
    const both = await train(join(root, 'x4'), [...resume, '--init_adapter', out()]);
    expect(both.code).toBe(2);
  });
});
