// Running `finetune` as a user runs it (node bin/finetune.mjs, a process of its own on Dawn +
// SwiftShader), for the command-line tests: its exit code, its output, and stdout's JSON lines; and the
// round trip every family's command-line test makes.
import { execFile } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import type { RealTokenizerKind } from './fixtures/real-tokenizers';
import { type TinyKind, writeTinyCheckpoint } from './fixtures/tiny-checkpoint';
import { writeTinyDataset } from './fixtures/tiny-data';

const BIN = resolve('bin/finetune.mjs');

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
  /** stdout's JSON lines. */
  lines: Record<string, unknown>[];
}

/** A runner with the Hub at `hubUrl` (HF_ENDPOINT) and its download cache under `root`. */
export function finetuneRunner(root: string, hubUrl = 'http://127.0.0.1:9') {
  return async (...args: string[]): Promise<Run> => {
    const env = {
      ...process.env,
      VK_ICD_FILENAMES: '/usr/lib/chromium/vk_swiftshader_icd.json',
      NO_COLOR: '1',
      HF_ENDPOINT: hubUrl,
      XDG_CACHE_HOME: join(root, 'cache'),
    };
    const r = await promisify(execFile)('node', [BIN, ...args], { env, maxBuffer: 1 << 24 }).then(
      (ok) => ({ code: 0, ...ok }),
      (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
    );
    const lines = r.stdout
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l));
    return { ...r, lines };
  };
}

/** Short, fast training: 8 steps of the whole tiny data set at a high learning rate, JSON logs. */
export const TRAIN = [
  '--max_steps',
  '8',
  '--learning_rate',
  '3e-2',
  '--lora_r',
  '8',
  '--lora_alpha',
  '16',
  '--lora_dropout',
  '0',
  '--per_device_train_batch_size',
  '4',
  '--logging_steps',
  '1',
  '--lr_scheduler_type',
  'constant',
  '--json',
  'true',
];

/** TRAIN with `steps` steps instead of 8. */
export const trainSteps = (steps: number) => TRAIN.map((x) => (x === '8' ? String(steps) : x));

export const PROMPT = '### Human: Say hi. ### Assistant:';

/**
 * The `finetune` round trip on tiny checkpoints of `runs` (kind, and the real tokenizer it carries, if
 * any): train, evaluate with the adapter, generate.
 */
export function describeFamilyRuns(runs: [TinyKind, RealTokenizerKind | undefined][]): void {
  let root: string;
  let data: Awaited<ReturnType<typeof writeTinyDataset>>;
  let finetune: ReturnType<typeof finetuneRunner>;

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'finetune-families-'));
    data = await writeTinyDataset(join(root, 'data'));
    finetune = finetuneRunner(root);
  });

  describe.each(runs)('finetune on the tiny %s checkpoint (real tokenizer: %s)', (kind, tokenizer) => {
    it('trains, evaluates with the adapter and generates', async () => {
      const model = join(root, `tiny-${kind}`);
      await writeTinyCheckpoint(model, kind, 8, { tokenizer });
      const out = join(root, `out-${kind}`);
      // with a real vocabulary the head dominates (some 8 s a step on SwiftShader for Gemma 3's 262k rows):
      // blocks of 16 tokens, half the steps, and the evaluation inside training, on a held-out quarter,
      // rather than in a process of its own (the tiny-tokenizer runs check the eval command)
      const short = tokenizer ? ['--max_length', '16', '--packing', 'true', '--packing_strategy', 'wrapped'] : [];
      const steps = tokenizer ? 3 : 6;
      const evalInTraining = tokenizer
        ? ['--test_size', '0.25', '--eval_strategy', 'steps', '--eval_steps', String(steps)]
        : [];
      if (kind === 'phi3' || kind === 'smollm3') {
        // PEFT has no default target for these model types: it raises, and so do we
        const args = ['--model_name_or_path', model, '--dataset_name', data.txt, '--output_dir', out];
        const refused = await finetune('train', ...args, ...trainSteps(1));
        expect(refused.code, refused.stderr).toBe(2);
        expect(refused.stderr).toContain(`no default LoRA target modules for model_type ${kind}`);
        expect(refused.stderr).toContain('Please specify `target_modules` in `peft_config`');
      }
      const t = await finetune(
        'train',
        '--model_name_or_path',
        model,
        '--dataset_name',
        data.txt,
        '--output_dir',
        out,
        ...trainSteps(steps),
        '--lora_target_modules',
        'all-linear',
        ...short,
        ...evalInTraining,
      );
      expect(t.code, t.stderr).toBe(0);
      const losses = t.lines.filter((l) => 'loss' in l).map((l) => l.loss as number);
      expect(losses.length).toBe(steps);
      expect(losses[steps - 1], losses.join(' ')).toBeLessThan(losses[0]);
      if (tokenizer) {
        const evals = t.lines.filter((l) => 'eval_loss' in l).map((l) => l.eval_loss as number);
        expect(evals.length).toBe(1);
        expect(evals[0]).toBeLessThan(losses[0]);
      } else {
        const e = await finetune(
          'eval',
          '--model_name_or_path',
          model,
          '--dataset_name',
          data.txt,
          '--adapter',
          out,
          '--json',
          'true',
        );
        expect(e.code, e.stderr).toBe(0);
        expect(e.lines.at(-1)!.eval_loss as number).toBeLessThan(losses[0]);
      }
      const g = await finetune(
        'generate',
        '--model_name_or_path',
        model,
        '--adapter',
        out,
        '--prompt',
        PROMPT,
        '--max_new_tokens',
        '6',
        '--json',
        'true',
      );
      expect(g.code, g.stderr).toBe(0);
      expect((g.lines.at(-1)!.tokens as number[])[0]).toBeGreaterThan(0);
    });
  });
}
