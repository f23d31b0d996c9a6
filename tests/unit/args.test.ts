// The command line's flags against `trl sft`'s: what it takes as HfArgumentParser does, and the
// flags of trl sft it does not take, each refused with why (src/cli/args.ts NOT_HERE).
import { describe, expect, it } from 'vitest';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NOT_HERE, parseFlags, UsageError } from '../../src/cli/args';
import { TRAIN } from '../../src/cli/commands';
import { configWords, takeConfig } from '../../src/cli/config-file';

const train = (...argv: string[]) =>
  parseFlags(['--model_name_or_path', 'm', '--dataset_name', 'd', ...argv], TRAIN, 'train');

describe('train flags as trl sft takes them', () => {
  it('takes warmup as steps or as a share, the schedule with its kwargs, and logging_first_step', () => {
    const f = train(
      '--warmup_steps',
      '0.03',
      '--warmup_ratio',
      '0.1',
      '--lr_scheduler_type',
      'cosine_with_min_lr',
      '--lr_scheduler_kwargs',
      '{"min_lr_rate": 0.1}',
      '--logging_first_step',
    );
    expect(f).toMatchObject({
      warmup_steps: 0.03,
      warmup_ratio: 0.1,
      lr_scheduler_type: 'cosine_with_min_lr',
      lr_scheduler_kwargs: '{"min_lr_rate": 0.1}',
      logging_first_step: true,
    });
    for (const type of ['cosine_with_restarts', 'polynomial', 'inverse_sqrt', 'warmup_stable_decay'])
      expect(train('--lr_scheduler_type', type).lr_scheduler_type).toBe(type);
  });

  it('refuses each trl sft flag it does not take, saying why, never as a typo', () => {
    for (const [name, why] of Object.entries(NOT_HERE)) {
      expect(() => train(`--${name}`, 'x'), name).toThrow(UsageError);
      expect(() => train(`--${name}`, 'x'), name).toThrow(
        `--${name} is a flag of trl sft that this tool does not take: ${why}`,
      );
    }
    expect(Object.keys(NOT_HERE).filter((k) => k in TRAIN)).toEqual([]); // none is also taken
    expect(() => train('--use-dora', 'true')).toThrow('--use_dora is a flag of trl sft'); // dashes as underscores
  });
});

describe('--config, a YAML file of the same settings, as TrlParser reads it', () => {
  const yaml = [
    'model_name_or_path: Qwen/Qwen3-0.6B',
    'dataset_name: trl-lib/Capybara',
    'learning_rate: 1.0e-4',
    'packing: true',
    'lora_target_modules: [q_proj, v_proj]',
    'lr_scheduler_type: cosine',
    'lr_scheduler_kwargs:',
    '  num_cycles: 2',
    'max_length:', // empty: None, TRL's "no truncation"
    'eval_steps: null',
    'env:',
    '  HF_HUB_OFFLINE: 1',
  ].join('\n');

  it('replaces the defaults; flags given win; env: is set; required settings may come from it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'config-'));
    const path = join(dir, 'sft.yaml');
    await writeFile(path, yaml);
    const env: Record<string, string | undefined> = {};
    const { argv, config } = await takeConfig(['--learning_rate', '2e-4', `--config=${path}`, '--max_steps', '5'], env);
    expect(argv).toEqual(['--learning_rate', '2e-4', '--max_steps', '5']);
    expect(env).toEqual({ HF_HUB_OFFLINE: '1' });
    const f = parseFlags(argv, TRAIN, 'train', config);
    expect(f).toMatchObject({
      model_name_or_path: 'Qwen/Qwen3-0.6B',
      dataset_name: 'trl-lib/Capybara',
      learning_rate: 2e-4, // the command line's
      max_steps: 5,
      packing: true,
      lora_target_modules: ['q_proj', 'v_proj'],
      lr_scheduler_type: 'cosine',
      lr_scheduler_kwargs: '{"num_cycles":2}',
      max_length: null,
      eval_steps: null,
    });
    await expect(takeConfig(['--config', join(dir, 'none.yaml')])).rejects.toThrow('there is no such file');
  });

  it('refuses a key that is no setting, a setting not taken here, and values a flag cannot take', () => {
    const words = (text: string) => parseFlags([], TRAIN, 'train', configWords(text, 'c.yaml', {}));
    expect(() => words('model_name_or_path: m\ndataset_name: d\nlearning_rat: 1')).toThrow(
      "the config file's learning_rat is not a setting of train (did you mean --learning_rate?)",
    );
    expect(() => words('bf16: true')).toThrow(
      `the config file's bf16 is a setting of trl sft that this tool does not take`,
    );
    expect(() => words('packing: maybe')).toThrow('--packing takes true or false, not "maybe"');
    expect(() => words('learning_rate:')).toThrow("the config file's learning_rate is empty (None): give it a value");
    expect(() => words('seed: [1, 2]')).toThrow("the config file's seed is a list: it takes one value");
    expect(() => configWords('- a\n- b', 'c.yaml', {})).toThrow('must hold a mapping of flag names to values');
    expect(() => configWords('a: [1, {b: 2}]', 'c.yaml', {})).toThrow('"a" holds {"b":2}');
    expect(() => configWords('a: [1', 'c.yaml', {})).toThrow('--config c.yaml is not YAML');
  });
});
