// Export recipe: a run as `trl sft` takes it. The command and the YAML must name every setting
// that differs from TRL's defaults and only those: read back by this tool's own `trl sft`-named
// parser, they give the run's settings again.
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { parseFlags, type FlagValues } from '../../src/cli/args';
import { TRAIN } from '../../src/cli/commands';
import { configWords } from '../../src/cli/config-file';
import { exportRecipe, type RunRecipeSettings } from '../../src/recipe/recipe';

const RUN: RunRecipeSettings = {
  model_name_or_path: 'Qwen/Qwen3-0.6B',
  dataset_name: 'trl-lib/Capybara',
  load_in_4bit: true,
  use_peft: true,
  learning_rate: 2e-4,
  lr_scheduler_type: 'cosine_with_min_lr',
  lr_scheduler_kwargs: '{"min_lr_rate":0.1}',
  warmup_ratio: 0.03,
  max_length: 512,
  packing: true,
  lora_r: 8,
  lora_target_modules: ['q_proj', 'v_proj'],
  assistant_only_loss: true,
  max_steps: 200,
  per_device_train_batch_size: 4,
  gradient_accumulation_steps: 4,
  eval_strategy: 'steps',
  eval_steps: 50,
  // TRL's defaults, given all the same: not written
  lora_alpha: 32,
  seed: 42,
  adam_beta1: 0.9,
  // this tool's own: not written
  test_size: 0.1,
  shuffle: true,
};

/** What this tool's parser makes of the settings: the defaults, with the run's over them. */
const expected = (s: RunRecipeSettings): FlagValues => {
  const out: FlagValues = {};
  for (const [k, spec] of Object.entries(TRAIN)) out[k] = spec.default ?? null;
  for (const [k, v] of Object.entries(s)) if (!['test_size', 'shuffle'].includes(k)) out[k] = v;
  return out;
};

describe('Export recipe', () => {
  it('writes every setting that differs from TRL’s defaults, and reads back to the run', () => {
    const r = exportRecipe(RUN, { gpus: 4 });
    // the command, read back as a shell reads it (the kwargs' JSON is single-quoted)
    const words = [...r.command.matchAll(/'([^']*)'|(\S+)/g)].map((m) => m[1] ?? m[2]);
    expect(words.slice(0, 2)).toEqual(['trl', 'sft']);
    expect(parseFlags(words.slice(2), TRAIN, 'train')).toEqual(expected(RUN));
    // only what differs from TRL: use_peft and load_in_4bit, which TRL leaves off, are written
    for (const name of ['lora_alpha', 'seed', 'adam_beta1', 'test_size', 'shuffle'])
      expect(r.command).not.toContain(`--${name} `);
    expect(r.command).toContain('--use_peft true --lora_r 8 --lora_target_modules q_proj v_proj');
    expect(Object.keys(r.settings)).toEqual([
      'model_name_or_path',
      'load_in_4bit',
      'dataset_name',
      'max_length',
      'packing',
      'assistant_only_loss',
      'use_peft',
      'lora_r',
      'lora_target_modules',
      'learning_rate',
      'lr_scheduler_type',
      'lr_scheduler_kwargs',
      'warmup_ratio',
      'per_device_train_batch_size',
      'gradient_accumulation_steps',
      'max_steps',
      'eval_strategy',
      'eval_steps',
    ]);
    // the YAML, as trl sft --config (and this tool's --config) reads it
    const fromYaml = parseFlags([], TRAIN, 'train', configWords(r.files['sft.yaml'], 'sft.yaml', {}));
    expect({ ...fromYaml, lr_scheduler_kwargs: JSON.parse(fromYaml.lr_scheduler_kwargs as string) }).toEqual({
      ...expected(RUN),
      lr_scheduler_kwargs: { min_lr_rate: 0.1 },
    });
    expect(parse(r.files['accelerate.yaml'])).toMatchObject({ distributed_type: 'MULTI_GPU', num_processes: 4 });
    expect(r.files['train.sh']).toContain('trl sft --config sft.yaml --num_processes 4');
    expect(r.files['README.md']).toContain('the evaluation split was held out here (test_size)');
    // a file of one's own: a folder datasets reads, named in the command
    const local = exportRecipe({ ...RUN, dataset_name: 'data' }, { localFile: 'chats.jsonl' });
    expect(local.command).toContain('--dataset_name data ');
    expect(local.files['README.md']).toContain('The data was the file `chats.jsonl`: put it in a folder `data/`');
  });

  it('writes the script with the same settings: quantization, LoRA, SFTConfig', () => {
    const py = exportRecipe(RUN).files['train.py'];
    expect(py).toContain('dataset = load_dataset("trl-lib/Capybara")');
    expect(py).toContain('load_in_4bit=True');
    expect(py).toContain('bnb_4bit_quant_type="nf4"');
    expect(py).toContain('target_modules=["q_proj", "v_proj"]');
    expect(py).toContain('lr_scheduler_kwargs={"min_lr_rate": 0.1},');
    expect(py).toContain('assistant_only_loss=True,');
    expect(py).toContain('eval_dataset=dataset["test"]');
    expect(py).not.toMatch(/\bseed=|adam_beta1=/); // TRL's defaults are left to TRL
    expect(py).toContain('lora_alpha=32,'); // LoraConfig's own defaults are not TRL's: always written
    // one target module value is a string, as TRL's ModelConfig makes it: all-linear, or a regex
    const one = exportRecipe({ ...RUN, lora_target_modules: ['all-linear'] }).files['train.py'];
    expect(one).toContain('target_modules="all-linear"');
    // a 16-bit base: no quantization config
    const full = exportRecipe({ ...RUN, load_in_4bit: false }).files['train.py'];
    expect(full).not.toContain('BitsAndBytesConfig(');
    expect(exportRecipe({ ...RUN, load_in_4bit: false }).command).not.toContain('load_in_4bit');
  });
});
