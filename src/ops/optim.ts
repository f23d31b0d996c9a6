// The optimizer step over the flat LoRA buffers (shaders/adamw.wgsl): the global gradient
// norm as a two-pass reduction, then clipping and AdamW in one elementwise pass. The norm
// stays on the GPU; reading it for the log is the caller's choice and never blocks a step.
import adamw from '../../shaders/adamw.wgsl?raw';
import reduce from '../../shaders/reduce.wgsl?raw';
import type { Gpu, Tensor } from '../gpu/runtime';
import { expectShape } from './check';

const WG = 256;
const shader = `${reduce}\n${adamw}`;
const ITEMS = 8;
const NO_STEP = {
  maxNorm: 0,
  lr: 0,
  beta1: 0,
  beta2: 0,
  eps: 0,
  weightDecay: 0,
  bc1: 0,
  bc2sqrt: 0,
  oneMinusBeta1: 0,
  oneMinusBeta2: 0,
};

export interface AdamWSettings {
  learning_rate: number;
  adam_beta1: number;
  adam_beta2: number;
  adam_epsilon: number;
  weight_decay: number;
  /** Clip the global gradient norm to this; 0 turns clipping off. */
  max_grad_norm: number;
}

/** transformers' TrainingArguments defaults. */
export const ADAMW_DEFAULTS: AdamWSettings = {
  learning_rate: 5e-5,
  adam_beta1: 0.9,
  adam_beta2: 0.999,
  adam_epsilon: 1e-8,
  weight_decay: 0,
  max_grad_norm: 1,
};

export interface AdamWState {
  params: Tensor; // f32 [n]
  m: Tensor; // first moment, zero at the start
  v: Tensor; // second moment, zero at the start
  /** Optimizer steps taken so far. */
  step: number;
}

export function adamwState(gpu: Gpu, params: Tensor): AdamWState {
  const zeros = new Float32Array(params.numel);
  return { params, m: gpu.tensor(params.shape, 'f32', zeros), v: gpu.tensor(params.shape, 'f32', zeros), step: 0 };
}

// ‖grads‖² → normSq [1], on the GPU; `out`: normSq, a new tensor by default.
export function gradNormSq(gpu: Gpu, grads: Tensor, o: { out?: Tensor } = {}): Tensor {
  const normSq = o.out ?? gpu.tensor([1]);
  const n = grads.numel;
  const parts = Math.ceil(n / (WG * ITEMS));
  const partial = gpu.tensor([parts]);
  // The reduction reads only n and parts of the struct it shares with the step.
  const params = { n, parts, ...NO_STEP };
  gpu.dispatch1D(gpu.kernel(shader, 'sumsq_partial', { WG, ITEMS }), [grads, partial], params, parts);
  gpu.dispatch(gpu.kernel(shader, 'sumsq_final', { WG, ITEMS }), [partial, normSq], params, [1]);
  partial.release();
  return normSq;
}

export interface AdamWStepOptions {
  settings: AdamWSettings;
  /** This step's learning rate, as the schedule has it (default settings.learning_rate). */
  lr?: number;
}

/**
 * One AdamW step with clipping, as transformers' Trainer does it. Returns ‖grads‖² before
 * clipping (a [1] tensor on the GPU: read it when the log wants it).
 */
export function adamwStep(gpu: Gpu, s: AdamWState, grads: Tensor, o: AdamWStepOptions): Tensor {
  const hp = o.settings,
    lr = o.lr ?? hp.learning_rate;
  expectShape('adamwStep', 'grads', grads, s.params.shape);
  const normSq = gradNormSq(gpu, grads);
  s.step += 1;
  const t = s.step;
  const params = {
    n: grads.numel,
    parts: 0,
    maxNorm: hp.max_grad_norm,
    lr,
    beta1: hp.adam_beta1,
    beta2: hp.adam_beta2,
    eps: hp.adam_epsilon,
    weightDecay: hp.weight_decay,
    bc1: 1 - hp.adam_beta1 ** t,
    bc2sqrt: Math.sqrt(1 - hp.adam_beta2 ** t),
    oneMinusBeta1: 1 - hp.adam_beta1,
    oneMinusBeta2: 1 - hp.adam_beta2,
  };
  gpu.dispatch1D(
    gpu.kernel(shader, 'adamw_step', { WG, ITEMS }),
    [s.params, grads, s.m, s.v, normSq],
    params,
    Math.ceil(grads.numel / WG),
  );
  return normSq;
}
