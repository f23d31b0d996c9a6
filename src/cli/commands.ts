// The flags of each `finetune` command, named and defaulted as trl sft / transformers name
// them, so a user's Python command line carries over. Two defaults differ on purpose:
// load_in_4bit is true (this is a QLoRA tool) and LoRA is always on (use_peft).
import { PACKING_STRATEGIES } from '../data/sft';
import { SCHEDULER_TYPES } from '../train/schedule';
import type { FlagSpecs } from './args';

const MODEL: FlagSpecs = {
  model_name_or_path: {
    type: 'string',
    required: true,
    help: 'the base model: a Hub id (owner/name; HF_ENDPOINT and HF_TOKEN are read) or a local checkpoint folder',
  },
  model_revision: { type: 'string', default: 'main', help: "the Hub model's branch, tag or commit" },
  load_in_4bit: {
    type: 'bool',
    default: true,
    help: 'quantize the frozen linear weights to NF4 (QLoRA); false keeps them 16-bit',
  },
  bnb_4bit_quant_type: {
    type: 'string',
    default: 'nf4',
    choices: ['nf4'],
    help: 'the 4-bit data type; NF4 is the one QLoRA uses',
  },
  use_bnb_nested_quant: {
    type: 'bool',
    default: false,
    help: "double quantization of the NF4 block scales, as bitsandbytes' bnb_4bit_use_double_quant",
  },
  json: {
    type: 'bool',
    default: false,
    help: 'write one JSON object per line to stdout instead of the human-readable log',
  },
};

const DATA: FlagSpecs = {
  dataset_name: {
    type: 'string',
    required: true,
    help:
      'a Hub data set id, or a local .jsonl, .json, .csv, .parquet or .txt file, or a folder of them (files ' +
      'split by their names as datasets splits them: data/train_sft-00000-of-00001.parquet, train.jsonl, test/…)',
  },
  dataset_config: {
    type: 'string',
    default: null,
    help: "the data set's config, by a name its README.md's configs: gives (default: its default config)",
  },
  dataset_train_split: { type: 'string', default: 'train', help: 'the split to train on (train, train_sft, …)' },
  dataset_test_split: {
    type: 'string',
    default: 'test',
    help: 'the split to evaluate on (eval: where the data set has it; its training split otherwise)',
  },
  dataset_text_field: {
    type: 'string',
    default: 'text',
    help: 'the column that holds the text, for data sets without prompt/completion or messages columns',
  },
  max_length: {
    type: 'int',
    default: 1024,
    nullable: true,
    help: 'tokens per packed block, or the truncation length without packing (null in a --config file: none)',
  },
  packing: { type: 'bool', default: false, help: 'pack several examples into each block of max_length' },
  truncation_mode: {
    type: 'string',
    default: 'keep_start',
    choices: ['keep_start', 'keep_end'],
    help: 'without packing, which end of an example longer than max_length to keep (packing keeps the start)',
  },
  packing_strategy: {
    type: 'string',
    default: 'bfd',
    choices: PACKING_STRATEGIES,
    help:
      'bfd: best-fit bins, each example its own sequence (positions restart, attention stays inside it); ' +
      'bfd_split: bfd, with examples longer than max_length split rather than truncated; ' +
      'wrapped: all examples end to end, cut every max_length',
  },
  completion_only_loss: {
    type: 'bool',
    default: null,
    help: 'the loss on the completion only, for prompt/completion data (default: true for such data)',
  },
  assistant_only_loss: {
    type: 'bool',
    default: false,
    help: "the loss on the assistant's turns only, for conversations (messages)",
  },
  enable_thinking: {
    type: 'bool',
    default: null,
    help: "for chat templates that read it (Qwen3's): render conversations thinking or not (default: the template's)",
  },
  chat_template_path: {
    type: 'string',
    default: null,
    help: "a .jinja file: the chat template to render conversations with, in place of the model's own",
  },
  shuffle_dataset: {
    type: 'bool',
    default: false,
    help: 'shuffle the examples (by --seed) before packing, and the blocks after, as TRL shuffles a data set',
  },
};

export const TRAIN: FlagSpecs = {
  ...MODEL,
  ...DATA,
  output_dir: {
    type: 'string',
    default: 'trainer_output',
    help: 'where the adapter (adapter_config.json, adapter_model.safetensors) and trainer_state.json go',
  },
  init_adapter: {
    type: 'string',
    default: null,
    help: 'start from this PEFT adapter folder instead of a fresh adapter',
  },
  use_peft: { type: 'bool', default: true, help: 'train a LoRA adapter (the only mode: the base weights stay frozen)' },
  lora_r: { type: 'int', default: 16, help: 'LoRA rank' },
  lora_alpha: { type: 'number', default: 32, help: 'LoRA scale numerator: the update is scaled by alpha / r' },
  lora_dropout: { type: 'number', default: 0.05, help: "dropout on the adapter's input while training" },
  lora_target_modules: {
    type: 'list',
    default: null,
    help:
      "modules to adapt (q_proj k_proj v_proj o_proj gate_proj up_proj down_proj), or all-linear; PEFT's " +
      'default for the model (q_proj v_proj) otherwise',
  },
  use_rslora: { type: 'bool', default: false, help: 'scale by alpha / sqrt(r) (rank-stabilised LoRA)' },
  learning_rate: { type: 'number', default: 2e-5, help: "AdamW's peak learning rate" },
  lr_scheduler_type: {
    type: 'string',
    default: 'linear',
    choices: SCHEDULER_TYPES,
    help: 'the learning-rate schedule after warmup',
  },
  lr_scheduler_kwargs: {
    type: 'string',
    default: null,
    help:
      'the schedule\'s arguments as JSON, by transformers\' names: {"num_cycles": 2} (cosine, cosine_with_restarts), ' +
      '{"min_lr_rate": 0.1} (cosine_with_min_lr), {"lr_end": 1e-7, "power": 1} (polynomial), {"timescale": N} ' +
      '(inverse_sqrt), {"num_decay_steps": N, "decay_type": "linear", "min_lr_ratio": 0.1} (warmup_stable_decay)',
  },
  warmup_steps: {
    type: 'number',
    default: 0,
    help: 'steps of linear warmup from 0; below 1, a share of the training steps (0.03: the first 3%)',
  },
  warmup_ratio: {
    type: 'number',
    default: 0,
    help: 'a share of the training steps to warm up over, where warmup_steps is 0',
  },
  weight_decay: { type: 'number', default: 0, help: "AdamW's decoupled weight decay" },
  adam_beta1: { type: 'number', default: 0.9, help: "AdamW's first-moment decay" },
  adam_beta2: { type: 'number', default: 0.999, help: "AdamW's second-moment decay" },
  adam_epsilon: { type: 'number', default: 1e-8, help: "AdamW's epsilon" },
  max_grad_norm: { type: 'number', default: 1, help: 'clip the global gradient norm to this (0: no clipping)' },
  per_device_train_batch_size: { type: 'int', default: 8, help: 'blocks per micro-batch' },
  gradient_accumulation_steps: { type: 'int', default: 1, help: 'micro-batches per optimizer step' },
  max_steps: { type: 'int', default: -1, help: 'optimizer steps; overrides num_train_epochs when > 0' },
  num_train_epochs: { type: 'number', default: 3, help: 'passes over the data set' },
  logging_steps: {
    type: 'int',
    default: 10,
    help: 'log every this many steps (the loss is the mean since the last log)',
  },
  logging_first_step: { type: 'bool', default: false, help: 'log the first step too' },
  logging_strategy: {
    type: 'string',
    default: 'steps',
    choices: ['steps', 'epoch', 'no'],
    help: 'steps: every logging_steps steps and the last; epoch: at the end of each epoch; no: no step logs',
  },
  seed: { type: 'int', default: 42, help: "seed of the adapter's initialisation, the shuffling and the dropout" },
  shuffle: { type: 'bool', default: true, help: 'reshuffle the blocks every epoch' },
  gradient_checkpointing: {
    type: 'bool',
    default: true,
    help: "recompute each layer in backward, keeping only its input (TRL's default); false: faster, more memory",
  },
  eval_strategy: {
    type: 'string',
    default: 'no',
    choices: ['no', 'steps', 'epoch'],
    help: 'steps: evaluate every eval_steps steps (and after the last); epoch: at the end of each epoch',
  },
  eval_steps: { type: 'int', default: null, help: 'steps between evaluations (default: logging_steps)' },
  test_size: {
    type: 'number',
    default: null,
    help: 'without that split, hold out this fraction of the training examples to evaluate on (e.g. 0.1)',
  },
  per_device_eval_batch_size: { type: 'int', default: 8, help: 'blocks per forward pass when evaluating' },
  save_strategy: {
    type: 'string',
    default: 'steps',
    choices: ['steps', 'epoch', 'no'],
    help:
      'when to write OUTPUT/checkpoint-N/ (adapter, optimizer, schedule, random and data state, trainer_state.json): ' +
      'every save_steps steps and at the end, at each epoch end, or never; also on Ctrl-C unless no',
  },
  save_steps: { type: 'int', default: 500, help: 'steps between checkpoints (save_strategy steps)' },
  save_total_limit: {
    type: 'int',
    default: null,
    help: 'keep at most this many checkpoints in output_dir, deleting the oldest (default: keep all)',
  },
  resume_from_checkpoint: {
    type: 'string',
    default: null,
    help:
      'continue a run from a checkpoint-N folder, or true: the latest in output_dir; the losses that follow are ' +
      "the uninterrupted run's (same data and settings)",
  },
};

export const EVAL: FlagSpecs = {
  ...MODEL,
  ...DATA,
  adapter: {
    type: 'string',
    default: null,
    help: 'a PEFT adapter folder to evaluate with; the base model alone otherwise',
  },
  per_device_eval_batch_size: { type: 'int', default: 8, help: 'blocks per forward pass' },
};

export const PREVIEW: FlagSpecs = {
  model_name_or_path: {
    type: 'string',
    required: true,
    help: 'the model whose tokenizer (and chat template) prepares the data: a Hub id or a local checkpoint folder',
  },
  model_revision: { type: 'string', default: 'main', help: "the Hub model's branch, tag or commit" },
  ...DATA,
  num_blocks: { type: 'int', default: 3, help: 'how many training blocks to show' },
  per_device_train_batch_size: { type: 'int', default: 8, help: 'blocks per micro-batch: for the padding numbers' },
  json: {
    type: 'bool',
    default: false,
    help: 'one JSON object per block (input_ids, labels, position_ids, sequence_lengths), then the numbers',
  },
};

// Generation's defaults are the model's, as transformers' generate() takes them: its
// generation_config.json where it has one, else transformers' (named in each flag's help).
const MODEL_DEFAULT = "default: the model's generation_config.json, else";

export const GENERATE: FlagSpecs = {
  ...MODEL,
  prompt: { type: 'string', required: true, help: "the text to continue (with --chat: the user's message)" },
  chat: {
    type: 'bool',
    default: false,
    help: "render the prompt as a user's message with the model's chat template and its generation prompt",
  },
  enable_thinking: {
    type: 'bool',
    default: null,
    help: "with --chat, for templates that read it (Qwen3's): thinking on or off (default: the template's)",
  },
  chat_template_path: {
    type: 'string',
    default: null,
    help: "a .jinja file: the chat template to render conversations with, in place of the model's own",
  },
  adapter: {
    type: 'string',
    default: null,
    help: 'a PEFT adapter folder to generate with; the base model alone otherwise',
  },
  do_sample: { type: 'bool', default: null, help: `sample the next token; greedy otherwise (${MODEL_DEFAULT} false)` },
  temperature: { type: 'number', default: null, help: `divide the logits by this when sampling (${MODEL_DEFAULT} 1)` },
  top_k: { type: 'int', default: null, help: `sample among the k most likely tokens, 0: all (${MODEL_DEFAULT} 50)` },
  top_p: {
    type: 'number',
    default: null,
    help: `sample among the most likely tokens whose probabilities sum to p (${MODEL_DEFAULT} 1)`,
  },
  repetition_penalty: {
    type: 'number',
    default: null,
    help: `penalise tokens already in the text, > 1 discourages repeats (${MODEL_DEFAULT} 1)`,
  },
  max_new_tokens: {
    type: 'int',
    default: null,
    help: "new tokens at most (takes precedence over max_length; default: the model's generation_config.json)",
  },
  max_length: { type: 'int', default: null, help: `prompt plus new tokens at most (${MODEL_DEFAULT} 20)` },
  num_return_sequences: { type: 'int', default: 1, help: 'independent sequences to generate' },
  seed: { type: 'int', default: 42, help: 'seed of the sampling' },
};
