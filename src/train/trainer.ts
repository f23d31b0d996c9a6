// One optimizer step of QLoRA fine-tuning, as transformers' Trainer runs it: gradients of the
// token-weighted mean loss over all micro-batches of the step (gradient accumulation), global
// norm clipping, AdamW, and the schedule's learning rate. Everything stays on the GPU until the
// step's one readback of its losses and gradient norm.
import type { Gpu } from '../gpu/runtime';
import type { Batch, CausalLM } from '../model/causal-lm';
import type { LoraSet } from '../model/lora-linear';
import { adamwState, adamwStep, type AdamWSettings, type AdamWState } from '../ops/optim';
import { lrMultiplier, type SchedulerKwargs, type SchedulerType } from './schedule';

export interface TrainSettings extends AdamWSettings {
  lr_scheduler_type: SchedulerType;
  lr_scheduler_kwargs?: SchedulerKwargs;
  /** Whole steps (a ratio is resolved before; training-run.ts). */
  warmup_steps: number;
  max_steps: number;
  /** Recompute each layer in backward (TRL's SFTConfig default, true); false keeps its intermediates. */
  gradient_checkpointing?: boolean;
  /** The run's seed: with the micro-batch's number it keys the dropout masks (default 0). */
  seed?: number;
}

/** A micro-batch and the number of its tokens whose label counts (≥ 0). */
export interface MicroBatch {
  batch: Batch;
  counted: number;
}

/** AdamW's state and the dropout counter, on the CPU: the flat moments share the adapter's layout. */
export interface OptimizerSnapshot {
  step: number;
  microSteps: number;
  m: Float32Array;
  v: Float32Array;
}

export interface StepLog {
  step: number; // 1-based, as transformers logs it
  loss: number;
  learning_rate: number; // the rate this step used
  grad_norm: number; // before clipping
  tokens: number; // counted tokens in the step
  /** Per micro-batch, what TRL's SFTTrainer records of it (its log shows their mean since the last log). */
  micro: MicroMetrics[];
}

/** What TRL's SFTTrainer.compute_loss records of one micro-batch. */
export interface MicroMetrics {
  entropy: number; // the mean over its tokens of the entropy of the predicted distribution
  mean_token_accuracy: number; // labelled tokens whose argmax is the label, over labelled tokens
  input_tokens: number; // its tokens (no padding here: TRL's attention_mask.sum())
}

/** One micro-batch's metrics from its T tokens' stats (entropy, hit), read back into `values` at `statsAt`. */
export function microMetrics(values: Float32Array, statsAt: number, T: number, counted: number): MicroMetrics {
  let entropy = 0,
    hits = 0;
  for (let t = 0; t < T; t++) {
    entropy += values[statsAt + 2 * t];
    hits += values[statsAt + 2 * t + 1];
  }
  return { entropy: entropy / T, mean_token_accuracy: counted > 0 ? hits / counted : 0, input_tokens: T };
}

export class Trainer {
  private state: AdamWState;
  private microStep = 0;

  constructor(
    readonly gpu: Gpu,
    readonly model: CausalLM,
    readonly lora: LoraSet,
    readonly settings: TrainSettings,
  ) {
    this.state = adamwState(gpu, lora.params);
  }

  get step(): number {
    return this.state.step;
  }

  /** Micro-batches run so far: each one's dropout masks are keyed by its number. */
  get microSteps(): number {
    return this.microStep;
  }

  /** What a checkpoint needs to carry on exactly: the moments (read back), the step, the micro-step. */
  async snapshot(): Promise<OptimizerSnapshot> {
    const [m, v] = await Promise.all([this.gpu.read(this.state.m), this.gpu.read(this.state.v)]);
    return { step: this.state.step, microSteps: this.microStep, m, v };
  }

  /** Back to a snapshot's state (the adapter's weights are the caller's: they come with PEFT's files). */
  restore(s: OptimizerSnapshot): void {
    const n = this.state.m.numel;
    if (s.m.length !== n || s.v.length !== n)
      throw new Error(`the optimizer state holds ${s.m.length} values; this adapter has ${n}`);
    this.gpu.write(this.state.m, s.m);
    this.gpu.write(this.state.v, s.v);
    this.state.step = s.step;
    this.microStep = s.microSteps;
  }

  /** Frees the optimizer's moments (the adapter itself belongs to its LoraSet). */
  release(): void {
    this.state.m.release();
    this.state.v.release();
  }

  async trainStep(micro: MicroBatch[]): Promise<StepLog> {
    const { gpu, settings: s } = this;
    const counted = micro.reduce((n, m) => n + m.counted, 0);
    if (counted === 0) throw new Error('this step has no tokens with a label to learn from');
    gpu.zero(this.lora.grads);
    const recompute = s.gradient_checkpointing ?? true;
    // dropout masks differ by micro-batch and by seed, as PyTorch's do by its generator's state
    const key = () => (Math.imul((s.seed ?? 0) >>> 0, 0x2c1b3c6d) + this.microStep++) >>> 0;
    const runs = micro.map((m) => {
      const stats = gpu.tensor([m.batch.ids.numel, 2]);
      return { loss: this.model.forwardBackward(m.batch, 1 / counted, key(), { recompute, stats }), stats };
    });
    const lr = s.learning_rate * lrMultiplier(s, this.state.step, s.max_steps);
    const normSq = adamwStep(gpu, this.state, this.lora.grads, { settings: s, lr });
    // One readback for the step: every micro-batch's token losses [T] and stats [T, 2], then ‖g‖²,
    // gathered on the GPU.
    const n = runs.reduce((k, r) => k + 3 * r.loss.numel, 0);
    const gathered = gpu.tensor([n + 1]);
    let at = 0;
    for (const r of [...runs.map((r) => r.loss), ...runs.map((r) => r.stats)]) {
      gpu.copy(r, gathered, { to: at });
      at += r.numel;
      r.release();
    }
    gpu.copy(normSq, gathered, { to: n });
    normSq.release();
    const values = await gpu.read(gathered);
    gathered.release();
    let total = 0;
    for (let i = 0; i < n / 3; i++) total += values[i];
    let statsAt = n / 3;
    const metrics = micro.map((m) => {
      const T = m.batch.ids.numel;
      const r = microMetrics(values, statsAt, T, m.counted);
      statsAt += 2 * T;
      return r;
    });
    return {
      step: this.state.step,
      loss: total / counted,
      learning_rate: lr,
      grad_norm: Math.sqrt(values[n]),
      tokens: counted,
      micro: metrics,
    };
  }
}
