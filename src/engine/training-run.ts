// The training run: the one loop behind the page's worker and the command line. It takes
// optimizer steps over the data's micro-batches (epochs reshuffled, gradient accumulation),
// logs every logging_steps, evaluates every eval_steps, saves a checkpoint every save_steps (or
// epoch, on pause and on stop) and prunes the old ones, pauses and stops between steps, and
// resumes from a checkpoint so that the losses that follow are those of the run never stopped.
// Where checkpoints go is the caller's: a folder (src/cli), IndexedDB (src/store/runs.ts).
import { epochOrder, hostBatch, microBatches, releaseBatch, uploadBatch } from '../data/batches';
import type { Block } from '../data/sft';
import { adapterLayout } from '../model/adapter';
import {
  CheckpointError,
  checkpointFiles,
  checkpointsToPrune,
  dataFingerprint,
  NOTHING_SINCE_LOG,
  optimizerFile,
  readCheckpoint,
  readOptimizerFile,
  trainerState,
  trajectoryDifferences,
  type CheckpointFiles,
  type RunPosition,
  type Trajectory,
  type TrainerState,
} from '../train/checkpoint';
import { Trainer, type MicroBatch, type OptimizerSnapshot } from '../train/trainer';
import type { AdamWSettings } from '../ops/optim';
import { checkSchedule, type SchedulerKwargs, type SchedulerType } from '../train/schedule';
import { checkPositions, type Session } from './session';

export interface TrainLoopSettings extends AdamWSettings {
  lr_scheduler_type: SchedulerType;
  /** The schedule's own arguments (num_cycles, min_lr_rate, lr_end, power, timescale). */
  lr_scheduler_kwargs?: SchedulerKwargs;
  /** Steps of warmup; below 1, a share of the run's steps (transformers 5 reads it so). */
  warmup_steps: number;
  /** transformers' older spelling of a warmup share: used where warmup_steps is 0. */
  warmup_ratio?: number;
  /** Optimizer steps; > 0 overrides num_train_epochs, as in transformers. */
  max_steps: number;
  num_train_epochs: number;
  per_device_train_batch_size: number;
  gradient_accumulation_steps: number;
  seed: number;
  shuffle: boolean;
  /** Log every this many steps (and the last); each log's loss is the mean since the last. */
  logging_steps: number;
  /** Log the first step too (transformers' logging_first_step). */
  logging_first_step?: boolean;
  /** steps (the default): every logging_steps and the last; epoch: at each epoch's end; no: never. */
  logging_strategy?: 'steps' | 'epoch' | 'no';
  /** Recompute each layer in backward (default true, as TRL's SFTConfig); false: faster, more memory. */
  gradient_checkpointing?: boolean;
}

/** What transformers' Trainer and TRL's SFTTrainer log (`on_log`), under their names. */
export interface TrainLog {
  loss: number; // the mean of the steps' losses since the last log
  grad_norm: number; // the last step's, before clipping
  learning_rate: number; // the rate the last step used, read before the scheduler steps (as transformers logs it)
  entropy: number; // TRL: the micro-batches' mean entropy of the predicted distribution, their mean since the last log
  num_tokens: number; // TRL: input tokens trained on so far
  mean_token_accuracy: number; // TRL: the micro-batches' share of labels predicted by argmax, their mean
  epoch: number;
  step: number;
  max_steps: number;
}

/** What transformers' Trainer and TRL's SFTTrainer log after an evaluation. */
export interface EvalLog {
  eval_loss: number;
  eval_runtime: number; // seconds, rounded to 4 places as transformers' speed_metrics does
  eval_samples_per_second: number;
  eval_steps_per_second: number;
  eval_entropy: number;
  eval_num_tokens: number; // TRL logs the training's num_tokens here
  eval_mean_token_accuracy: number;
  epoch: number;
  step: number;
  max_steps: number;
}

export interface TrainSummary {
  train_loss: number; // mean of every step's loss
  global_step: number;
  tokens: number;
  train_runtime: number; // seconds, of this session (transformers' train_runtime)
  /** Steps taken in this session: fewer than global_step after a resume. */
  steps_this_session: number;
}

/** Optimizer steps for a data set of `blocks` blocks: max_steps, or the epochs' worth. */
export function plannedSteps(blocks: number, s: TrainLoopSettings): { maxSteps: number; stepsPerEpoch: number } {
  const micro = Math.ceil(blocks / s.per_device_train_batch_size);
  const stepsPerEpoch = Math.max(1, Math.ceil(micro / s.gradient_accumulation_steps));
  const maxSteps = s.max_steps > 0 ? s.max_steps : Math.ceil(s.num_train_epochs * stepsPerEpoch);
  return { maxSteps, stepsPerEpoch };
}

export type SaveStrategy = 'steps' | 'epoch' | 'no';

export interface RunSettings extends TrainLoopSettings {
  /** With evaluation data: every eval_steps steps and after the last (default), or at each epoch's end. */
  eval_strategy?: 'steps' | 'epoch';
  /** Evaluate every this many steps and after the last (with evaluation data); default logging_steps. */
  eval_steps?: number | null;
  /** Blocks per evaluation batch (transformers' default 8). */
  per_device_eval_batch_size?: number;
  /** transformers' default: every save_steps steps, and at the end. */
  save_strategy?: SaveStrategy;
  save_steps?: number;
  /** Keep at most this many checkpoints, deleting the oldest; null keeps all. */
  save_total_limit?: number | null;
}

/** Where a run's checkpoints live: a folder of checkpoint-N/ folders, or IndexedDB. */
export interface CheckpointStore {
  save(step: number, files: CheckpointFiles): Promise<void>;
  /** The global steps of the checkpoints kept. */
  steps(): Promise<number[]>;
  remove(step: number): Promise<void>;
}

export type SaveReason = 'steps' | 'epoch' | 'pause' | 'stop';

/** What a run reports, in order: for the chart, the log and the store. */
export type RunEvent =
  | { type: 'train'; log: TrainLog }
  | { type: 'eval'; log: EvalLog }
  | { type: 'save'; step: number; reason: SaveReason; pruned: number[] }
  | { type: 'paused'; step: number }
  | { type: 'resumed'; step: number };

const DEFAULTS = { per_device_eval_batch_size: 8, save_strategy: 'steps', save_steps: 500, save_total_limit: null };

export class TrainingRun {
  readonly maxSteps: number;
  /** transformers' log_history: every train and eval log, continued from a checkpoint's. */
  readonly history: Record<string, number>[] = [];
  private readonly s: Required<Omit<RunSettings, 'gradient_checkpointing'>> & RunSettings;
  /** The optimizer, made when the run starts (a run never started holds nothing on the GPU). */
  private trainer: Trainer | null = null;
  /** The optimizer's state from the checkpoint resumed from. */
  private restored: OptimizerSnapshot | null = null;
  private readonly fingerprint: string;
  private position: RunPosition = {
    epochs_started: 0,
    micro_batches_taken: 0,
    since_log: { ...NOTHING_SINCE_LOG },
    total_loss: 0,
    total_tokens: 0,
    num_tokens: 0,
  };
  private store: CheckpointStore | null;
  private stopped = false;
  private paused = false;
  private wake: (() => void) | null = null;
  /** The step of the last checkpoint saved: none is saved twice. */
  private savedAt = -1;
  private startStep = 0;
  private micros: Block[][] = [];

  /**
   * A new run on the session's adapter, or, with `resume`, the run a checkpoint left: its
   * adapter replaces the session's, its moments, schedule, dropout counter and data position
   * are restored, after checking that the data and the settings are the ones it was trained with.
   */
  constructor(
    readonly session: Session,
    readonly blocks: Block[],
    settings: RunSettings,
    readonly o: { eval?: Block[]; store?: CheckpointStore; resume?: Partial<Record<string, Uint8Array>> } = {},
  ) {
    this.store = o.store ?? null;
    const s = { ...DEFAULTS, ...settings } as TrainingRun['s'];
    s.eval_steps ??= s.logging_steps;
    this.s = s;
    checkRun(s, blocks, session, o.eval);
    this.maxSteps = plannedSteps(blocks.length, s).maxSteps;
    // transformers' get_warmup_steps: a count from 1 on, a share of the steps below it
    const w = s.warmup_steps;
    s.warmup_steps = w >= 1 ? w : Math.ceil((w > 0 ? w : (s.warmup_ratio ?? 0)) * this.maxSteps);
    this.fingerprint = dataFingerprint(blocks);
    if (o.resume) {
      const c = readCheckpoint(o.resume, 'the checkpoint');
      const differences = trajectoryDifferences(c.training.settings, this.trajectory());
      if (differences.length)
        throw new CheckpointError(
          `the checkpoint was trained with other settings: ${differences.join(', ')}. Resume with the ` +
            'settings it was trained with, or start a new run',
        );
      const d = c.training.data;
      if (d.blocks !== blocks.length || d.fingerprint !== this.fingerprint)
        throw new CheckpointError(
          `the checkpoint was trained on other data (${d.blocks} blocks, fingerprint ${d.fingerprint}; now ` +
            `${blocks.length} blocks, ${this.fingerprint}): resume on the same data set, max_length and packing`,
        );
      session.loadAdapter(c.adapter, { replace: true });
      const lora = session.lora!;
      const { m, v } = readOptimizerFile(c.optimizer, adapterLayout(lora), lora.params.numel);
      this.restored = { step: c.training.global_step, microSteps: c.training.rng.dropout_micro_step, m, v };
      // num_tokens and the metrics' sums are missing from the first checkpoints' state: start them at 0
      const log = c.training.log;
      this.position = {
        ...c.training.data,
        ...log,
        num_tokens: log.num_tokens ?? 0,
        since_log: { ...NOTHING_SINCE_LOG, ...log.since_log },
      };
      this.history.push(...c.trainer.log_history);
      this.savedAt = this.startStep = c.training.global_step;
      this.micros = this.epochMicroBatches();
    } else if (!session.lora) throw new Error('attach an adapter before training');
  }

  get step(): number {
    return this.trainer?.step ?? this.startStep;
  }

  /** From now on, checkpoints go to `store` (a run made before its store was). */
  saveInto(store: CheckpointStore): void {
    this.store = store;
  }

  /** transformers' fractional epoch: epochs done plus the share of this one's micro-batches taken. */
  get epoch(): number {
    const p = this.position;
    if (p.epochs_started === 0) return 0;
    return round4(p.epochs_started - 1 + p.micro_batches_taken / this.micros.length);
  }

  /** The micro-batches of the epoch begun last, in its shuffled order. */
  private epochMicroBatches(): Block[][] {
    const { blocks, s } = this;
    const e = this.position.epochs_started - 1;
    if (e < 0) return [];
    return microBatches(blocks, epochOrder(blocks.length, e, s.seed, s.shuffle), s.per_device_train_batch_size);
  }

  /** Whether a stop or a pause was asked for (and not yet taken back): a run that replaces this one inherits them. */
  get asked(): { stop: boolean; pause: boolean } {
    return { stop: this.stopped, pause: this.paused };
  }

  /** Stops after the current step (a checkpoint is saved when there is a store). */
  stop(): void {
    this.stopped = true;
    this.wake?.();
  }

  /** Holds the run after the current step, and saves a checkpoint there when there is a store. */
  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    this.wake?.();
  }

  /** Runs to max_steps or a stop; the summary at the end. The optimizer state goes with the run. */
  async *events(): AsyncGenerator<RunEvent, TrainSummary> {
    const { session, s } = this;
    if (this.trainer) throw new Error('a training run runs once: make a new one to train again');
    const trainer = new Trainer(session.gpu, session.model, session.lora!, { ...s, max_steps: this.maxSteps });
    this.trainer = trainer;
    if (this.restored) trainer.restore(this.restored);
    this.restored = null;
    session.setAdapterEnabled(true);
    const t0 = performance.now();
    const p = this.position;
    try {
      while (trainer.step < this.maxSteps && !this.stopped) {
        if (this.paused) {
          if (this.store && s.save_strategy !== 'no') yield await this.save('pause');
          yield { type: 'paused', step: trainer.step };
          while (this.paused && !this.stopped) await new Promise<void>((r) => (this.wake = r));
          this.wake = null;
          if (this.stopped) break;
          yield { type: 'resumed', step: trainer.step };
        }
        if (p.micro_batches_taken >= this.micros.length) {
          p.epochs_started++;
          p.micro_batches_taken = 0;
          this.micros = this.epochMicroBatches();
        }
        // a step takes gradient_accumulation_steps micro-batches, fewer at an epoch's end
        const take = this.micros.slice(p.micro_batches_taken, p.micro_batches_taken + s.gradient_accumulation_steps);
        p.micro_batches_taken += take.length;
        const step = await this.trainStep(take);
        if (step === null) continue; // every label masked in these micro-batches: nothing to learn
        p.total_loss += step.loss;
        p.total_tokens += step.tokens;
        const l = p.since_log;
        l.loss += step.loss;
        l.steps++;
        for (const m of step.micro) {
          l.entropy += m.entropy;
          l.mean_token_accuracy += m.mean_token_accuracy;
          l.micro_batches++;
          p.num_tokens += m.input_tokens;
        }
        const last = trainer.step === this.maxSteps;
        const epochEnd = p.micro_batches_taken >= this.micros.length;
        const logNow =
          s.logging_strategy === 'no'
            ? false
            : (s.logging_strategy === 'epoch' ? epochEnd : trainer.step % s.logging_steps === 0) ||
              last ||
              (s.logging_first_step === true && trainer.step === 1);
        if (logNow) {
          const log: TrainLog = {
            loss: l.loss / l.steps,
            grad_norm: step.grad_norm,
            learning_rate: step.learning_rate,
            entropy: l.entropy / l.micro_batches,
            num_tokens: p.num_tokens,
            mean_token_accuracy: l.mean_token_accuracy / l.micro_batches,
            epoch: this.epoch,
            step: trainer.step,
            max_steps: this.maxSteps,
          };
          p.since_log = { ...NOTHING_SINCE_LOG };
          this.history.push(historyEntry(log));
          yield { type: 'train', log };
        }
        const evalNow = s.eval_strategy === 'epoch' ? epochEnd || last : trainer.step % s.eval_steps! === 0 || last;
        if (this.o.eval && evalNow) {
          const log = await this.evaluate();
          this.history.push(historyEntry(log));
          yield { type: 'eval', log };
        }
        const reason: SaveReason | null =
          s.save_strategy === 'steps' && (trainer.step % s.save_steps === 0 || last)
            ? 'steps'
            : s.save_strategy === 'epoch' && (epochEnd || last)
              ? 'epoch'
              : null;
        if (reason && this.store) yield await this.save(reason);
      }
      if (this.stopped && this.store && s.save_strategy !== 'no' && trainer.step > 0) yield await this.save('stop');
      const steps = trainer.step - this.startStep;
      return {
        train_loss: trainer.step ? p.total_loss / trainer.step : NaN,
        global_step: trainer.step,
        tokens: p.total_tokens,
        train_runtime: (performance.now() - t0) / 1000,
        steps_this_session: steps,
      };
    } finally {
      trainer.release(); // also when the caller stops early (return() on the generator)
    }
  }

  /** transformers' TrainerState of the run as it stands. */
  trainerState(): TrainerState {
    const s = this.s;
    return trainerState({
      epoch: this.epoch,
      global_step: this.step,
      max_steps: this.maxSteps,
      logging_steps: s.logging_steps,
      eval_steps: s.eval_steps!,
      save_steps: s.save_steps,
      train_batch_size: s.per_device_train_batch_size,
      num_train_epochs: Math.ceil(this.maxSteps / plannedSteps(this.blocks.length, s).stepsPerEpoch),
      log_history: this.history,
    });
  }

  /** The run's checkpoint files as they stand between two steps. */
  async checkpoint(): Promise<CheckpointFiles> {
    const { session, s } = this;
    const trainer = this.trainer!;
    const [adapter, optimizer] = await Promise.all([session.exportAdapter(), trainer.snapshot()]);
    const p = this.position;
    return checkpointFiles(
      adapter,
      optimizerFile(adapterLayout(session.lora!), optimizer),
      {
        format: 'webgpu-qlora/training_state',
        version: 1,
        global_step: trainer.step,
        settings: this.trajectory(),
        rng: { seed: s.seed, shuffle: s.shuffle, dropout_micro_step: optimizer.microSteps },
        data: {
          blocks: this.blocks.length,
          fingerprint: this.fingerprint,
          epochs_started: p.epochs_started,
          micro_batches_taken: p.micro_batches_taken,
        },
        log: {
          since_log: { ...p.since_log },
          total_loss: p.total_loss,
          total_tokens: p.total_tokens,
          num_tokens: p.num_tokens,
        },
      },
      this.trainerState(),
    );
  }

  private async save(reason: SaveReason): Promise<RunEvent> {
    const store = this.store!;
    const step = this.step;
    let pruned: number[] = [];
    if (this.savedAt !== step) {
      await store.save(step, await this.checkpoint());
      this.savedAt = step;
      pruned = checkpointsToPrune(await store.steps(), this.s.save_total_limit);
      for (const old of pruned) await store.remove(old);
    }
    return { type: 'save', step, reason, pruned };
  }

  private trajectory(): Trajectory {
    const s = this.s;
    return {
      learning_rate: s.learning_rate,
      lr_scheduler_type: s.lr_scheduler_type,
      lr_scheduler_kwargs: JSON.stringify(s.lr_scheduler_kwargs ?? {}),
      warmup_steps: s.warmup_steps,
      max_steps: this.maxSteps,
      adam_beta1: s.adam_beta1,
      adam_beta2: s.adam_beta2,
      adam_epsilon: s.adam_epsilon,
      weight_decay: s.weight_decay,
      max_grad_norm: s.max_grad_norm,
      per_device_train_batch_size: s.per_device_train_batch_size,
      gradient_accumulation_steps: s.gradient_accumulation_steps,
      seed: s.seed,
      shuffle: s.shuffle,
    };
  }

  private async trainStep(micro: Block[][]) {
    const { session } = this;
    const c = session.config;
    const hosts = micro.map((m) => hostBatch(m, c.slidingWindow, c.localWindow)).filter((h) => h.counted > 0);
    if (hosts.length === 0) return null;
    const batches: MicroBatch[] = hosts.map((h) => ({ batch: uploadBatch(session.gpu, h), counted: h.counted }));
    try {
      return await this.trainer!.trainStep(batches);
    } finally {
      for (const b of batches) releaseBatch(b.batch);
    }
  }

  private async evaluate(): Promise<EvalLog> {
    const e0 = performance.now();
    const e = await this.session.evaluate(this.o.eval!, this.s.per_device_eval_batch_size);
    const runtime = (performance.now() - e0) / 1000;
    const round = (x: number, places: number) => Math.round(x * 10 ** places) / 10 ** places;
    return {
      eval_loss: e.eval_loss,
      eval_runtime: round(runtime, 4),
      eval_samples_per_second: round(e.samples / runtime, 3),
      eval_steps_per_second: round(e.batches / runtime, 3),
      eval_entropy: e.entropy,
      eval_num_tokens: this.position.num_tokens,
      eval_mean_token_accuracy: e.mean_token_accuracy,
      epoch: this.epoch,
      step: this.step,
      max_steps: this.maxSteps,
    };
  }
}

/** A log as transformers' log_history keeps it: without the run's max_steps. */
function historyEntry(log: TrainLog | EvalLog): Record<string, number> {
  const { max_steps: _, ...entry } = log;
  return entry;
}

const round4 = (x: number) => Math.round(x * 1e4) / 1e4;

function checkRun(s: TrainingRun['s'], blocks: Block[], session: Session, evalBlocks?: Block[]): void {
  checkTrainSettings(s);
  for (const k of ['eval_steps', 'per_device_eval_batch_size', 'save_steps'] as const)
    if (!(Number.isInteger(s[k]) && (s[k] as number) >= 1))
      throw new Error(`${k} must be a positive integer, not ${s[k]}`);
  if (s.logging_strategy !== undefined && !['steps', 'epoch', 'no'].includes(s.logging_strategy))
    throw new Error(`logging_strategy must be steps, epoch or no, not ${s.logging_strategy}`);
  if (s.eval_strategy !== undefined && !['steps', 'epoch'].includes(s.eval_strategy))
    throw new Error(`eval_strategy must be steps or epoch, not ${s.eval_strategy}`);
  if (!['steps', 'epoch', 'no'].includes(s.save_strategy))
    throw new Error(`save_strategy must be steps, epoch or no, not ${s.save_strategy}`);
  if (s.save_total_limit !== null && !(Number.isInteger(s.save_total_limit) && s.save_total_limit >= 1))
    throw new Error(`save_total_limit must be a positive integer (or unset: keep all), not ${s.save_total_limit}`);
  if (blocks.length === 0) throw new Error('there is nothing to train on: the data set gave no blocks');
  checkPositions(blocks, session.config, 'training');
  if (evalBlocks) checkPositions(evalBlocks, session.config, 'evaluation');
  if (!blocks.some((b) => hostBatch([b]).counted > 0))
    throw new Error('there is nothing to learn: no token of the data set has a label');
  if (evalBlocks && !evalBlocks.some((b) => hostBatch([b]).counted > 0))
    throw new Error('there is nothing to evaluate: no token of the evaluation data has a label');
}

export function checkTrainSettings(s: TrainLoopSettings): void {
  const positiveInt = ['per_device_train_batch_size', 'gradient_accumulation_steps', 'logging_steps'] as const;
  for (const k of positiveInt)
    if (!(Number.isInteger(s[k]) && s[k] >= 1)) throw new Error(`${k} must be a positive integer, not ${s[k]}`);
  if (!(s.learning_rate > 0)) throw new Error(`learning_rate must be positive, not ${s.learning_rate}`);
  if (!(s.max_steps > 0) && !(s.num_train_epochs > 0))
    throw new Error('give max_steps or num_train_epochs greater than 0');
  const w = s.warmup_steps;
  if (!(w >= 0 && (w < 1 || Number.isInteger(w))))
    throw new Error(`warmup_steps must be a whole number of steps, or a share below 1, not ${w}`);
  const ratio = s.warmup_ratio ?? 0;
  if (!(ratio >= 0 && ratio <= 1)) throw new Error(`warmup_ratio must be in [0, 1], not ${ratio}`);
  checkSchedule(s);
}
