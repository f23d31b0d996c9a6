// The `finetune` command line on prompt/completion and chat data: `preview` shows the blocks
// training prepares, and training evaluates on a held-out part or the data set's test split.
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { prepareData } from '../../src/data/prepare';
import { SFT_DEFAULTS } from '../../src/data/sft';
import { localDataSplits, localTokenizer } from '../../src/node/local-data';
import { finetuneRunner, trainSteps } from '../cli-run';
import { writeTinyCheckpoint } from '../fixtures/tiny-checkpoint';
import { writeTinyFormats } from '../fixtures/tiny-data';

let root: string;
let formats: Awaited<ReturnType<typeof writeTinyFormats>>;
let finetune: ReturnType<typeof finetuneRunner>;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'finetune-data-'));
  formats = await writeTinyFormats(join(root, 'formats'));
  await writeTinyCheckpoint(join(root, 'tiny-llama'), 'llama', 3);
  finetune = finetuneRunner(root);
});

describe('finetune on prompt/completion and chat data', () => {
  it('previews blocks exactly as training prepares them, as JSON and as text with masked tokens marked', async () => {
    const model = join(root, 'tiny-llama');
    const flags = [
      '--model_name_or_path',
      model,
      '--dataset_name',
      formats.messages,
      '--assistant_only_loss',
      'true',
      '--packing',
      'true',
      '--max_length',
      '64',
    ];
    const p = await finetune('preview', ...flags, '--json', 'true');
    expect(p.code, p.stderr).toBe(0);
    const blocks = p.lines.filter((l) => 'block' in l);
    const tokenizer = await localTokenizer(model);
    const want = await prepareData(await localDataSplits(formats.messages), tokenizer, {
      ...SFT_DEFAULTS,
      assistant_only_loss: true,
      packing: true,
      max_length: 64,
      dataset_train_split: 'train',
      dataset_test_split: 'test',
      evaluate: false,
      test_size: null,
      seed: 42,
      batch: 8,
    });
    expect(blocks.length).toBe(3); // --num_blocks' default
    blocks.forEach((b, i) => {
      const w = want.train.blocks[i];
      expect(b).toMatchObject({ block: i, input_ids: w.input_ids, labels: w.labels, position_ids: w.position_ids });
      expect((b.sequence_lengths as number[]).reduce((x, y) => x + y)).toBe(w.input_ids.length);
    });
    const masked = want.train.blocks[0].labels.filter((l) => l === -100).length;
    expect(masked).toBeGreaterThan(0); // system and user turns carry no loss
    expect(p.lines.at(-1)).toMatchObject({ format: 'messages', examples: 4, blocks: want.train.blocks.length });
    const text = await finetune('preview', ...flags, '--num_blocks', '1');
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toContain('«<s>### system:\nAnswer briefly.</s>\n### user:\n');
    expect(text.stdout).toMatch(/### assistant:\n»[^«]+<\/s>\n/);
  });

  it('--chat_template_path renders with the given template; assistant_only_loss needs conversations', async () => {
    // a template whose blocks hold the assistant's words but not its </s>: the preview marks
    // "</s>" as masked, where the model's own template trains on it
    const template = join(root, 'words-only.jinja');
    await writeFile(
      template,
      "{% for m in messages %}<{{ m.role }}>{% if m.role == 'assistant' %}{% generation %}{{ m.content }}" +
        '{% endgeneration %}{% else %}{{ m.content }}{% endif %}</s>{% endfor %}',
    );
    const model = join(root, 'tiny-llama');
    const common = ['--model_name_or_path', model, '--max_length', '64', '--num_blocks', '1'];
    const chat = ['--dataset_name', formats.messages, '--assistant_only_loss', 'true'];
    const given = await finetune('preview', ...common, ...chat, '--chat_template_path', template);
    expect(given.code, given.stderr).toBe(0);
    expect(given.stdout).toContain('«<system>Answer briefly.</s><user>');
    expect(given.stdout).toMatch(/<assistant>»[^«]+«<\/s>/);
    const txt = await finetune('preview', ...common, ...chat, '--chat_template_path', join(root, 'words-only.txt'));
    expect(txt.code).toBe(1);
    expect(txt.stderr).toMatch(/give a \.jinja or \.j2 file .*clone_chat_template/);
    // TRL raises on data that is not conversational: here too, before any row is tokenized
    const text = await finetune(
      'preview',
      ...common,
      '--dataset_name',
      formats.promptCompletion,
      '--assistant_only_loss',
      'true',
    );
    expect(text.code).toBe(1);
    expect(text.stderr).toContain(
      "assistant_only_loss trains on the assistant's turns of conversations, but this data set is prompts and " +
        'completions as text',
    );
  });

  it('trains on prompt/completion rows with a held-out eval part, and on chat data with its test split', async () => {
    const model = join(root, 'tiny-llama');
    const train = (dataset: string, extra: string[]) =>
      finetune(
        'train',
        '--model_name_or_path',
        model,
        '--dataset_name',
        dataset,
        '--output_dir',
        join(root, `out-${extra.length}`),
        ...trainSteps(4),
        '--eval_strategy',
        'steps',
        '--eval_steps',
        '2',
        ...extra,
      );
    const pc = await train(formats.promptCompletion, ['--test_size', '0.25']);
    expect(pc.code, pc.stderr).toBe(0);
    expect(pc.lines[0]).toMatchObject({
      format: 'prompt_completion',
      examples: 3,
      eval_examples: 1,
      eval_source: 'a held-out 0.25 of the training split',
    });
    const evals = pc.lines.filter((l) => 'eval_loss' in l);
    expect(evals.map((l) => l.step)).toEqual([2, 4]);
    for (const e of evals)
      expect(Object.keys(e)).toEqual([
        'eval_loss',
        'eval_runtime',
        'eval_samples_per_second',
        'eval_steps_per_second',
        'eval_entropy',
        'eval_num_tokens',
        'eval_mean_token_accuracy',
        'epoch',
        'step',
      ]);
    expect(pc.lines.filter((l) => 'loss' in l).length).toBe(4);
    const chatFlags = ['--assistant_only_loss', 'true', '--packing', 'true', '--max_length', '64'];
    const chat = await train(formats.chat, chatFlags);
    expect(chat.code, chat.stderr).toBe(0);
    expect(chat.lines[0]).toMatchObject({
      format: 'messages',
      examples: 3,
      eval_examples: 1,
      eval_source: 'the "test" split',
    });
    const chatEvals = chat.lines.filter((l) => 'eval_loss' in l).map((l) => l.eval_loss as number);
    expect(chatEvals.length).toBe(2);
    expect(chatEvals[1]).not.toBe(chatEvals[0]);
    // the last evaluation is what `finetune eval` says of the saved adapter on the test split
    const e = await finetune(
      'eval',
      '--model_name_or_path',
      model,
      '--dataset_name',
      formats.chat,
      '--adapter',
      join(root, `out-${chatFlags.length}`),
      '--json',
      'true',
      ...chatFlags,
    );
    expect(e.code, e.stderr).toBe(0);
    expect(e.lines.at(-1)!.eval_loss as number).toBeCloseTo(chatEvals[1], 5);
  });
});
