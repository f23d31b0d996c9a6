// A training run's checkpoint as files: the same files in the page (IndexedDB) and on the
// command line (OUTPUT/checkpoint-N/), named as transformers' Trainer names them where it has
// a file for the purpose, JSON or safetensors where it pickles:
//   adapter_config.json, adapter_model.safetensors   the adapter, in PEFT's files
//   optimizer.safetensors   AdamW's moments, f32, one pair per adapter tensor:
//                           <PEFT's tensor name>.exp_avg and .exp_avg_sq (its optimizer.pt)
//   training_state.json     what its scheduler.pt, rng_state.pth and data loader's position
//                           hold: the schedule's step, the dropout and shuffling state, where in
//                           the data the run stands, and the log's running sums
//   trainer_state.json      its TrainerState: global_step, epoch, log_history, ...
// Resuming from these files continues the run bit for bit: the same weights, moments, dropout
// masks and data order as the run that was never stopped.
import { readSafetensorsSync, writeSafetensors, type TensorToWrite } from '../formats/safetensors';
import type { Block } from '../data/sft';
import type { OptimizerSnapshot } from './trainer';

export const CHECKPOINT_FILES = [
  'adapter_config.json',
  'adapter_model.safetensors',
  'optimizer.safetensors',
  'training_state.json',
  'trainer_state.json',
] as const;

export type CheckpointFile = (typeof CHECKPOINT_FILES)[number];
export type CheckpointFiles = Record<CheckpointFile, Uint8Array>;

/** transformers' folder name for the checkpoint of a global step. */
export const checkpointName = (step: number) => `checkpoint-${step}`;

export class CheckpointError extends Error {
  override name = 'CheckpointError';
}

/** The settings that decide a run's losses: a resumed run must have the same. */
export interface Trajectory {
  learning_rate: number;
  lr_scheduler_type: string;
  /** lr_scheduler_kwargs as JSON (absent from the first checkpoints: their schedules took none). */
  lr_scheduler_kwargs?: string;
  warmup_steps: number;
  max_steps: number;
  adam_beta1: number;
  adam_beta2: number;
  adam_epsilon: number;
  weight_decay: number;
  max_grad_norm: number;
  per_device_train_batch_size: number;
  gradient_accumulation_steps: number;
  seed: number;
  shuffle: boolean;
}

/** Where a run stands between two optimizer steps, beyond the optimizer's own state. */
export interface RunPosition {
  /** Epochs begun: the data's order in epoch e is shuffled by (seed, e). */
  epochs_started: number;
  /** Micro-batches of the current epoch already trained on. */
  micro_batches_taken: number;
  /** The running sums of the log: a log's loss is the mean over the steps since the last one. */
  since_log: SinceLog;
  total_loss: number;
  /** Labelled tokens trained on. */
  total_tokens: number;
  /** Input tokens trained on: TRL's `num_tokens`. */
  num_tokens: number;
}

/**
 * Sums since the last log: the loss over steps, as transformers averages it; TRL's `entropy` and
 * `mean_token_accuracy` over micro-batches, as SFTTrainer averages its metrics.
 */
export interface SinceLog {
  loss: number;
  steps: number;
  entropy: number;
  mean_token_accuracy: number;
  micro_batches: number;
}

export const NOTHING_SINCE_LOG: SinceLog = { loss: 0, steps: 0, entropy: 0, mean_token_accuracy: 0, micro_batches: 0 };

/** training_state.json. */
export interface TrainingState {
  format: 'webgpu-qlora/training_state';
  version: 1;
  global_step: number;
  settings: Trajectory;
  /** Dropout masks are keyed by the micro-batch's number; shuffling by the seed and epoch. */
  rng: { seed: number; shuffle: boolean; dropout_micro_step: number };
  data: { blocks: number; fingerprint: string } & Pick<RunPosition, 'epochs_started' | 'micro_batches_taken'>;
  log: Pick<RunPosition, 'since_log' | 'total_loss' | 'total_tokens' | 'num_tokens'>;
}

/** transformers' TrainerState fields, as its trainer_state.json holds them. */
export interface TrainerState {
  epoch: number;
  global_step: number;
  max_steps: number;
  logging_steps: number;
  eval_steps: number;
  save_steps: number;
  train_batch_size: number;
  num_train_epochs: number;
  num_input_tokens_seen: number;
  total_flos: number;
  log_history: Record<string, number>[];
  best_metric: number | null;
  best_global_step: number | null;
  best_model_checkpoint: string | null;
  is_local_process_zero: boolean;
  is_world_process_zero: boolean;
  is_hyper_param_search: boolean;
  trial_name: null;
  trial_params: null;
  stateful_callbacks: Record<string, unknown>;
}

/** The TrainerState of a run (no best model is tracked: transformers leaves those null too). */
export function trainerState(
  s: Pick<TrainerState, 'epoch' | 'global_step' | 'max_steps' | 'logging_steps' | 'eval_steps' | 'save_steps'> &
    Pick<TrainerState, 'train_batch_size' | 'num_train_epochs' | 'log_history'>,
): TrainerState {
  return {
    ...s,
    num_input_tokens_seen: 0,
    total_flos: 0,
    best_metric: null,
    best_global_step: null,
    best_model_checkpoint: null,
    is_local_process_zero: true,
    is_world_process_zero: true,
    is_hyper_param_search: false,
    trial_name: null,
    trial_params: null,
    stateful_callbacks: {
      TrainerControl: {
        args: {
          should_training_stop: s.global_step >= s.max_steps,
          should_epoch_stop: false,
          should_save: true,
          should_evaluate: false,
          should_log: false,
        },
        attributes: {},
      },
    },
  };
}

/**
 * A cheap digest of the blocks a run trains on (FNV-1a over every id, label and position): a
 * resume on other data, or the same data cut differently, is refused rather than continued.
 */
export function dataFingerprint(blocks: Block[]): string {
  let h = 0x811c9dc5;
  const mix = (x: number) => {
    h = Math.imul(h ^ (x & 0xffff), 0x01000193);
    h = Math.imul(h ^ (x >>> 16), 0x01000193);
  };
  for (const b of blocks) {
    mix(b.input_ids.length);
    for (let i = 0; i < b.input_ids.length; i++) {
      mix(b.input_ids[i]);
      mix(b.labels[i]);
      mix(b.position_ids[i]);
    }
  }
  return (h >>> 0).toString(16).padStart(8, '0');
}

const json = (x: unknown) => new TextEncoder().encode(JSON.stringify(x, null, 2) + '\n');

/** The adapter tensors' places in the flat buffers (src/model/adapter.ts: adapterLayout). */
export type Layout = { name: string; at: number; shape: [number, number] }[];

/** The moments as safetensors, one pair per adapter tensor; the step goes in the metadata. */
export function optimizerFile(layout: Layout, o: OptimizerSnapshot): Uint8Array {
  const tensors: TensorToWrite[] = [];
  for (const t of layout) {
    const n = t.shape[0] * t.shape[1];
    for (const [suffix, flat] of [
      ['exp_avg', o.m],
      ['exp_avg_sq', o.v],
    ] as const) {
      const part = flat.slice(t.at, t.at + n);
      tensors.push({ name: `${t.name}.${suffix}`, dtype: 'F32', shape: t.shape, data: new Uint8Array(part.buffer) });
    }
  }
  return writeSafetensors(tensors, { step: String(o.step) });
}

/** The moments back into flat buffers of `size` values, every tensor checked against the layout. */
export function readOptimizerFile(
  bytes: Uint8Array,
  layout: Layout,
  size: number,
): { m: Float32Array; v: Float32Array } {
  const m = new Float32Array(size),
    v = new Float32Array(size);
  const file = new Map(readSafetensorsSync(bytes, 'optimizer.safetensors').map((t) => [t.info.name, t]));
  const expected = layout.length * 2;
  if (file.size !== expected)
    throw new CheckpointError(
      `optimizer.safetensors holds ${file.size} tensors; this adapter has ${expected} moments: ` +
        'the checkpoint belongs to another adapter',
    );
  for (const t of layout) {
    for (const [suffix, flat] of [
      ['exp_avg', m],
      ['exp_avg_sq', v],
    ] as const) {
      const name = `${t.name}.${suffix}`;
      const entry = file.get(name);
      if (entry?.info.dtype !== 'F32' || entry.info.shape.join() !== t.shape.join())
        throw new CheckpointError(
          `optimizer.safetensors: ${name} is ${entry ? `${entry.info.dtype} [${entry.info.shape}]` : 'missing'}; ` +
            `the adapter needs F32 [${t.shape}]: the checkpoint belongs to another adapter`,
        );
      // copied: the file's bytes need not be 4-byte aligned
      flat.set(new Float32Array(entry.data.slice().buffer), t.at);
    }
  }
  return { m, v };
}

/** Everything but the adapter's files, which src/model/adapter.ts writes. */
export function checkpointFiles(
  adapter: { 'adapter_config.json': string; 'adapter_model.safetensors': Uint8Array },
  optimizer: Uint8Array,
  training: TrainingState,
  trainer: TrainerState,
): CheckpointFiles {
  return {
    'adapter_config.json': new TextEncoder().encode(adapter['adapter_config.json']),
    'adapter_model.safetensors': adapter['adapter_model.safetensors'],
    'optimizer.safetensors': optimizer,
    'training_state.json': json(training),
    'trainer_state.json': json(trainer),
  };
}

/** A checkpoint's files, read and checked for what resuming needs. */
export interface ReadCheckpoint {
  adapter: { config: string; weights: Uint8Array };
  optimizer: Uint8Array;
  training: TrainingState;
  trainer: TrainerState;
}

export function readCheckpoint(files: Partial<Record<string, Uint8Array>>, where: string): ReadCheckpoint {
  const missing = CHECKPOINT_FILES.filter((f) => !files[f]);
  if (missing.length)
    throw new CheckpointError(
      `${where} lacks ${missing.join(', ')}: it is not a complete checkpoint of this tool ` +
        '(a checkpoint written while the run was killed is never used: take the one before it)',
    );
  const text = (f: CheckpointFile) => new TextDecoder().decode(files[f]);
  const parse = (f: CheckpointFile) => {
    try {
      return JSON.parse(text(f));
    } catch (e) {
      throw new CheckpointError(`${where}/${f} is not JSON (${(e as Error).message})`);
    }
  };
  const training = parse('training_state.json') as TrainingState;
  if (training?.format !== 'webgpu-qlora/training_state' || training.version !== 1)
    throw new CheckpointError(`${where}/training_state.json is not a training state this version can read`);
  const trainer = parse('trainer_state.json') as TrainerState;
  if (!Array.isArray(trainer?.log_history))
    throw new CheckpointError(`${where}/trainer_state.json has no log_history: it is not transformers' TrainerState`);
  return {
    adapter: { config: text('adapter_config.json'), weights: files['adapter_model.safetensors']! },
    optimizer: files['optimizer.safetensors']!,
    training,
    trainer,
  };
}

/** The settings that differ between a checkpoint and a resumed run, in words; empty when none. */
export function trajectoryDifferences(saved: Trajectory, now: Trajectory): string[] {
  return (Object.keys(saved) as (keyof Trajectory)[])
    .filter((k) => saved[k] !== now[k])
    .map((k) => `${k} ${saved[k]} (now ${now[k]})`);
}

/**
 * The checkpoints to delete so that at most `limit` stay, oldest first, as transformers rotates
 * them (save_total_limit); none without a limit.
 */
export function checkpointsToPrune(steps: number[], limit: number | null): number[] {
  if (!limit || limit <= 0) return [];
  const sorted = [...steps].sort((a, b) => a - b);
  return sorted.slice(0, Math.max(0, sorted.length - limit));
}
