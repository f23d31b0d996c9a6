// The page's settings, read from its fields in one place into one typed object: what the engine
// prepares the data with, the LoRA and run settings it trains with, and the same run under
// `trl sft`'s names for Export recipe. The rest of the page reads settings from here, never from
// the fields, so a field renamed or added is one change.
import type { PackingStrategy } from '../data/sft';
import type { PrepareSettings } from '../data/prepare';
import type { LoraSettings } from '../engine/session';
import type { RunSettings } from '../engine/training-run';
import type { SchedulerType } from '../train/schedule';
import type { RunRecipeSettings } from '../recipe/recipe';

export interface FormSettings {
  model: { id: string; load_in_4bit: boolean };
  /** Where the data comes from: a Hub data set's id, or the file chosen (null when none is). */
  data: { kind: 'hub'; id: string } | { kind: 'file'; file: File | null };
  /** (The form always has a max length; the command line may have none.) */
  prepare: PrepareSettings & { max_length: number };
  /** (Names typed, or all-linear: a regular expression is the command line's.) */
  lora: LoraSettings & { target_modules: string[] | 'all-linear' };
  run: RunSettings;
}

const field = (id: string) => document.getElementById(id) as HTMLInputElement;
const text = (id: string) => field(id).value.trim();
const num = (id: string) => Number(field(id).value);
const checked = (id: string) => field(id).checked;

/** The LoRA target modules as typed: names, a regular expression, or all-linear. */
export function targets(): string[] | 'all-linear' {
  const t = text('targets')
    .split(/[\s,]+/)
    .filter(Boolean);
  return t.length === 1 && t[0] === 'all-linear' ? 'all-linear' : t;
}

export function readSettings(): FormSettings {
  const kind = (document.querySelector('input[name="data-kind"]:checked') as HTMLInputElement).value;
  const evalSteps = num('eval-steps');
  return {
    model: { id: text('model-id'), load_in_4bit: checked('load-4bit') },
    data:
      kind === 'file'
        ? { kind: 'file', file: field('data-file').files?.[0] ?? null }
        : { kind: 'hub', id: text('data-id') },
    prepare: {
      dataset_text_field: text('text-field'),
      max_length: num('max-length'),
      packing: checked('packing'),
      packing_strategy: field('packing-strategy').value as PackingStrategy,
      completion_only_loss: checked('completion-only'),
      assistant_only_loss: checked('assistant-only'),
      dataset_train_split: 'train',
      dataset_test_split: 'test',
      evaluate: evalSteps > 0,
      test_size: num('test-size') || null,
      seed: num('seed'),
      batch: num('batch'),
    },
    lora: {
      r: num('lora-r'),
      lora_alpha: num('lora-alpha'),
      lora_dropout: num('lora-dropout'),
      target_modules: targets(),
      use_rslora: false,
    },
    run: {
      learning_rate: num('lr'),
      adam_beta1: 0.9,
      adam_beta2: 0.999,
      adam_epsilon: 1e-8,
      weight_decay: 0,
      max_grad_norm: 1,
      lr_scheduler_type: field('scheduler').value as SchedulerType,
      warmup_steps: num('warmup'),
      max_steps: num('steps') || -1,
      num_train_epochs: num('epochs'),
      per_device_train_batch_size: num('batch'),
      gradient_accumulation_steps: num('accumulation'),
      seed: num('seed'),
      shuffle: true,
      logging_steps: 1,
      eval_steps: evalSteps || null,
      save_steps: num('save-steps'),
      save_total_limit: num('keep'),
    },
  };
}

/** The run `s` describes under `trl sft`'s names, for Export recipe (src/recipe/recipe.ts). */
export function recipeSettings(s: FormSettings, modelId: string): RunRecipeSettings {
  const t = s.lora.target_modules;
  return {
    model_name_or_path: modelId,
    load_in_4bit: s.model.load_in_4bit,
    // a file of one's own goes in a folder data/, which datasets reads (the recipe's README says so)
    dataset_name: s.data.kind === 'file' ? 'data' : s.data.id,
    dataset_text_field: s.prepare.dataset_text_field,
    max_length: s.prepare.max_length,
    packing: s.prepare.packing,
    packing_strategy: s.prepare.packing_strategy,
    // ticked is TRL's default (on for prompt/completion data, nothing to mask otherwise)
    completion_only_loss: s.prepare.completion_only_loss ? null : false,
    assistant_only_loss: s.prepare.assistant_only_loss,
    use_peft: true,
    lora_r: s.lora.r,
    lora_alpha: s.lora.lora_alpha,
    lora_dropout: s.lora.lora_dropout,
    lora_target_modules: t === 'all-linear' ? ['all-linear'] : t,
    learning_rate: s.run.learning_rate,
    lr_scheduler_type: s.run.lr_scheduler_type,
    warmup_steps: s.run.warmup_steps,
    per_device_train_batch_size: s.run.per_device_train_batch_size,
    gradient_accumulation_steps: s.run.gradient_accumulation_steps,
    max_steps: s.run.max_steps,
    num_train_epochs: s.run.num_train_epochs,
    logging_steps: 1,
    seed: s.run.seed,
    ...(s.run.eval_steps ? { eval_strategy: 'steps', eval_steps: s.run.eval_steps } : {}),
    test_size: s.prepare.test_size,
    save_steps: s.run.save_steps!,
    save_total_limit: s.run.save_total_limit ?? null,
  };
}
