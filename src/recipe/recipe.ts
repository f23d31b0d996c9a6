// A run as the Python stack runs it, for when a model outgrows the browser: the `trl sft`
// command line, the same settings as a `trl sft --config` YAML file, a Python script of
// transformers, bitsandbytes, PEFT and TRL, and an `accelerate` config for several GPUs. Each
// names every setting that differs from TRL's defaults, and nothing else: what is not written is
// what TRL does by default, as here. The adapter trained there is PEFT's, and loads back here.
//
// Settings come by their `trl sft` names, the names this tool's command line takes
// (src/cli/commands.ts); its defaults are TRL's except where noted in TRL_DEFAULTS.
import { stringify } from 'yaml';
import { TRAIN } from '../cli/commands';

/** A setting's value, as the command line holds it. */
export type SettingValue = string | number | boolean | string[] | null;

/** A run's settings by `trl sft` name; a setting left out is TRL's default. */
export type RunRecipeSettings = Record<string, SettingValue>;

/**
 * TRL's defaults where this tool's differ: it always trains LoRA on a 4-bit base (QLoRA), where
 * `trl sft` trains the whole model in 16 bits unless told.
 */
const TRL_DEFAULTS: Record<string, SettingValue> = { use_peft: false, load_in_4bit: false };

/** Settings of this tool that `trl sft` has no flag for: left out, each with what to do there. */
const NOT_TRL: Record<string, string> = {
  json: '',
  init_adapter: '',
  shuffle: '',
  test_size: 'the evaluation split was held out here (test_size): make it a split of the data set there',
  enable_thinking: 'enable_thinking was set: give it in each row\'s "chat_template_kwargs" there',
  resume_from_checkpoint: '',
};

/** Where each setting goes in the Python script: the model's, PEFT's, the data set's, or SFTConfig. */
const MODEL = ['model_name_or_path', 'model_revision', 'load_in_4bit', 'bnb_4bit_quant_type', 'use_bnb_nested_quant'];
const PEFT = ['use_peft', 'lora_r', 'lora_alpha', 'lora_dropout', 'lora_target_modules', 'use_rslora'];
const DATA = ['dataset_name', 'dataset_config', 'dataset_train_split', 'dataset_test_split'];

export interface Recipe {
  /** File name → text: train.sh, sft.yaml, train.py, accelerate.yaml, README.md. */
  files: Record<string, string>;
  /** The `trl sft` command line, on one line. */
  command: string;
  /** The settings written, by name (the non-default ones, and the model and data set). */
  settings: RunRecipeSettings;
}

/** The settings that differ from TRL's defaults, in the command line's order; the model and data always. */
export function nonDefault(s: RunRecipeSettings): RunRecipeSettings {
  const out: RunRecipeSettings = {};
  for (const [name, spec] of Object.entries(TRAIN)) {
    if (!(name in s) || name in NOT_TRL) continue;
    const v = s[name];
    const trl = name in TRL_DEFAULTS ? TRL_DEFAULTS[name] : (spec.default ?? null);
    if (spec.required || JSON.stringify(v) !== JSON.stringify(trl)) out[name] = v;
  }
  return out;
}

/** A value as a shell word (single-quoted where it needs to be). */
const shellWord = (v: string) => (/^[\w@%+=:,./-]+$/.test(v) ? v : `'${v.replace(/'/g, `'\\''`)}'`);

/** `trl sft`'s words for a setting: a list's items apart, a boolean as true or false. */
function flagWords(name: string, v: SettingValue): string[] {
  if (v === null) return [];
  const values = Array.isArray(v) ? v : [String(v)];
  return [`--${name}`, ...values.map(shellWord)];
}

/** A list of one value as that value (TRL's ModelConfig reads one --lora_target_modules value as a string). */
const oneOrList = (v: SettingValue): SettingValue => (Array.isArray(v) && v.length === 1 ? v[0] : v);

/** A value as Python source. */
function python(v: SettingValue | Record<string, unknown>): string {
  if (v === null) return 'None';
  if (typeof v === 'boolean') return v ? 'True' : 'False';
  if (typeof v === 'number') return String(v);
  if (typeof v === 'string') return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(python).join(', ')}]`;
  return `{${Object.entries(v)
    .map(([k, x]) => `${JSON.stringify(k)}: ${python(x as SettingValue)}`)
    .join(', ')}}`;
}

/** Everything needed to run `s` with TRL on `gpus` GPUs (1: no accelerate config needed, one written all the same). */
export function exportRecipe(
  s: RunRecipeSettings,
  o: { gpus?: number; madeBy?: string; localFile?: string } = {},
): Recipe {
  const gpus = o.gpus ?? 8;
  const written = nonDefault(s);
  const kwargs = typeof written.lr_scheduler_kwargs === 'string' ? JSON.parse(written.lr_scheduler_kwargs) : null;
  const flags = Object.entries(written)
    .map(([k, v]) => flagWords(k, v).join(' '))
    .filter(Boolean);
  const command = ['trl sft', ...flags].join(' ');
  const left = Object.keys(s)
    .filter((k) => NOT_TRL[k] && s[k] !== null && JSON.stringify(s[k]) !== JSON.stringify(TRAIN[k]?.default ?? null))
    .map((k) => `- ${NOT_TRL[k]}.`);

  const yamlSettings = Object.fromEntries(
    Object.entries(written).map(([k, v]) => [k, k === 'lr_scheduler_kwargs' ? kwargs : v]),
  );
  const sftYaml = `# trl sft --config sft.yaml\n${stringify(yamlSettings)}`;

  const trainSh = [
    '#!/bin/sh',
    '# One GPU: trl sft with every setting that differs from its defaults.',
    `trl sft \\\n  ${flags.join(' \\\n  ')}`,
    '',
    `# ${gpus} GPUs on this machine: the same settings, one process per GPU (trl passes --num_processes to`,
    `# accelerate launch). Each process takes per_device_train_batch_size rows: divide`,
    `# gradient_accumulation_steps by ${gpus} to keep each optimizer step's batch what it was on one GPU.`,
    `# trl sft --config sft.yaml --num_processes ${gpus}`,
    '',
  ].join('\n');

  const config = Object.keys(written).filter((k) => !MODEL.includes(k) && !PEFT.includes(k) && !DATA.includes(k));
  const arg = (k: string) => `    ${k}=${python(k === 'lr_scheduler_kwargs' ? kwargs : written[k])},`;
  const get = (k: string) => (k in written ? written[k] : (TRL_DEFAULTS[k] ?? TRAIN[k]?.default ?? null));
  const fourBit = get('load_in_4bit') === true;
  const dataArgs = [python(get('dataset_name')), ...(written.dataset_config ? [python(written.dataset_config)] : [])];
  const script = [
    `# ${o.madeBy ?? 'Exported from webgpu-qlora'}: the same run with transformers, bitsandbytes, PEFT and TRL.`,
    '# Run it with python train.py, or on several GPUs (one process each) with',
    '#   accelerate launch --config_file accelerate.yaml train.py',
    'import torch',
    'from accelerate import PartialState',
    'from datasets import load_dataset',
    'from peft import LoraConfig',
    'from transformers import AutoModelForCausalLM, BitsAndBytesConfig',
    'from trl import SFTConfig, SFTTrainer',
    '',
    `dataset = load_dataset(${dataArgs.join(', ')})`,
    '',
    '# one copy of the model per GPU (process), as trl sft places a quantized model',
    'model = AutoModelForCausalLM.from_pretrained(',
    `    ${python(get('model_name_or_path'))},`,
    ...(written.model_revision ? [`    revision=${python(written.model_revision)},`] : []),
    '    dtype=torch.bfloat16,',
    '    device_map={"": PartialState().local_process_index},',
    ...(fourBit
      ? [
          '    quantization_config=BitsAndBytesConfig(',
          '        load_in_4bit=True,',
          `        bnb_4bit_quant_type=${python(get('bnb_4bit_quant_type'))},`,
          `        bnb_4bit_use_double_quant=${python(get('use_bnb_nested_quant'))},`,
          '        bnb_4bit_compute_dtype=torch.bfloat16,',
          '    ),',
        ]
      : []),
    ')',
    '',
    'peft_config = LoraConfig(',
    `    r=${python(get('lora_r'))},`,
    `    lora_alpha=${python(get('lora_alpha'))},`,
    `    lora_dropout=${python(get('lora_dropout'))},`,
    // one value is a string, as TRL's ModelConfig passes it: all-linear, or a regex PEFT full-matches
    `    target_modules=${python(oneOrList(get('lora_target_modules')))},`,
    ...(get('use_rslora') === true ? ['    use_rslora=True,'] : []),
    '    task_type="CAUSAL_LM",',
    ')',
    '',
    'args = SFTConfig(',
    ...config.map(arg),
    ')',
    '',
    'trainer = SFTTrainer(',
    '    model=model,',
    '    args=args,',
    `    train_dataset=dataset[${python(get('dataset_train_split'))}],`,
    ...(get('eval_strategy') !== 'no' ? [`    eval_dataset=dataset[${python(get('dataset_test_split'))}],`] : []),
    '    peft_config=peft_config,',
    ')',
    'trainer.train()',
    'trainer.save_model()  # adapter_config.json and adapter_model.safetensors, which load back in the page',
    '',
  ].join('\n');

  const accelerate = stringify({
    compute_environment: 'LOCAL_MACHINE',
    distributed_type: gpus > 1 ? 'MULTI_GPU' : 'NO',
    mixed_precision: 'bf16',
    num_machines: 1,
    num_processes: gpus,
    machine_rank: 0,
    gpu_ids: 'all',
    use_cpu: false,
  });

  const readme = [
    '# This run, on the Python stack',
    '',
    'The settings of a run trained in the browser, for `trl sft` on one GPU or several. Only the',
    "settings that differ from TRL's defaults are written; the rest are TRL's defaults, as they were here.",
    '',
    '- `train.sh`: the `trl sft` command line, and how to launch it on several GPUs.',
    '- `sft.yaml`: the same settings for `trl sft --config sft.yaml`.',
    '- `train.py`: the same run as a script of transformers, bitsandbytes, PEFT and TRL.',
    `- \`accelerate.yaml\`: ${gpus} processes, one per GPU, in bf16.`,
    '',
    'What differs there: the GPUs compute in bf16 (the browser computes in float32), so losses agree',
    "to a few decimals, not bit for bit; the data's order comes from torch's sampler.",
    ...(o.localFile
      ? [
          '',
          `The data was the file \`${o.localFile}\`: put it in a folder \`${s.dataset_name}/\` beside these files,`,
          `which \`--dataset_name ${s.dataset_name}\` reads as \`datasets\` reads a folder (its splits by file name).`,
        ]
      : []),
    ...(left.length ? ['', 'Set here and not carried over:', ...left] : []),
    '',
    "The adapter the run saves (adapter_config.json, adapter_model.safetensors) is PEFT's: load it",
    "back in the page's Adapter section to chat with it or train it further.",
    '',
  ].join('\n');

  return {
    files: {
      'train.sh': trainSh,
      'sft.yaml': sftYaml,
      'train.py': script,
      'accelerate.yaml': accelerate,
      'README.md': readme,
    },
    command,
    settings: written,
  };
}
