// The `finetune` command line on the Phi-3, Gemma 2, Qwen3, Gemma 3 and SmolLM3 fixtures: trains,
// evaluates with the adapter and generates (cli.test.ts has the Llama, Qwen2 and Falcon runs). The
// newest three carry their real tokenizers, vocabularies of 152k, 262k and 128k tokens.
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { finetuneRunner, PROMPT, trainSteps } from '../cli-run';
import { writeTinyCheckpoint, type TinyKind } from '../fixtures/tiny-checkpoint';
import type { RealTokenizerKind } from '../fixtures/real-tokenizers';
import { writeTinyDataset } from '../fixtures/tiny-data';

let root: string;
let data: Awaited<ReturnType<typeof writeTinyDataset>>;
let finetune: ReturnType<typeof finetuneRunner>;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'finetune-families-'));
  data = await writeTinyDataset(join(root, 'data'));
  finetune = finetuneRunner(root);
});

const RUNS: [TinyKind, RealTokenizerKind | undefined][] = [
  ['phi3', undefined],
  ['gemma2', undefined],
  ['qwen3', 'qwen3'],
  ['gemma3', 'gemma3'],
  ['smollm3', 'llama3'],
];

describe.each(RUNS)('finetune on the tiny %s checkpoint (real tokenizer: %s)', (kind, tokenizer) => {
  it('trains, evaluates with the adapter and generates', async () => {
    const model = join(root, `tiny-${kind}`);
    await writeTinyCheckpoint(model, kind, 8, { tokenizer });
    const out = join(root, `out-${kind}`);
    // with a real vocabulary the head dominates (some 8 s a step on SwiftShader for Gemma 3's 262k rows):
    // blocks of 16 tokens, and half the steps
    const short = tokenizer ? ['--max_length', '16', '--packing', 'true', '--packing_strategy', 'wrapped'] : [];
    const steps = tokenizer ? 3 : 6;
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
    );
    expect(t.code, t.stderr).toBe(0);
    const losses = t.lines.filter((l) => 'step' in l).map((l) => l.loss as number);
    expect(losses.length).toBe(steps);
    expect(losses[steps - 1], losses.join(' ')).toBeLessThan(losses[0]);
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
