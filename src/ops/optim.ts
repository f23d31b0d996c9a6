// The optimizer step over the flat LoRA buffers (shaders/adamw.wgsl): the global gradient
// norm as a two-pass reduction, then clipping and AdamW in one elementwise pass. The norm
// stays on the GPU; reading it for the log is the caller's choice and never blocks a step.
import adamw from '../../shaders/adamw.wgsl?raw';
import reduce from '../../shaders/reduce.wgsl?raw';
import { f32, type Gpu, type Tensor } from '../gpu/runtime';
import { expectShape } from './check';

const WG = 256;
const shader = `${reduce}\n${adamw}`;
const ITEMS = 8;

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
  learning_rate: 5e-5, adam_beta1: 0.9, adam_beta2: 0.999, adam_epsilon: 1e-8, weight_decay: 0, max_grad_norm: 1,
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

// ‖grads‖² → normSq [1], on the GPU.
export function gradNormSq(gpu: Gpu, grads: Tensor, normSq = gpu.tensor([1])): Tensor {
  const n = grads.numel;
  const parts = Math.ceil(n / (WG * ITEMS));
  const partial = gpu.tensor([parts]);
  const params = [n, parts, ...new Array<ReturnType<typeof f32>>(10).fill(f32(0))];
  gpu.dispatch1D(gpu.kernel(shader, 'sumsq_partial', { WG, ITEMS }), [grads, partial], params, parts);
  gpu.dispatch(gpu.kernel(shader, 'sumsq_final', { WG, ITEMS }), [partial, normSq], params, [1]);
  partial.release();
  return normSq;
}

/**
 * One AdamW step with clipping, as transformers' Trainer does it. Returns ‖grads‖² before
 * clipping (a [1] tensor on the GPU: read it when the log wants it).
 */
export function adamwStep(gpu: Gpu, s: AdamWState, grads: Tensor, hp: AdamWSettings, lr = hp.learning_rate): Tensor {
  expectShape('adamwStep', 'grads', grads, s.params.shape);
  const normSq = gradNormSq(gpu, grads);
  s.step += 1;
  const t = s.step;
  const params = [
    grads.numel, 0, f32(hp.max_grad_norm), f32(lr),
    f32(hp.adam_beta1), f32(hp.adam_beta2), f32(hp.adam_epsilon), f32(hp.weight_decay),
    f32(1 - hp.adam_beta1 ** t), f32(Math.sqrt(1 - hp.adam_beta2 ** t)),
    f32(1 - hp.adam_beta1), f32(1 - hp.adam_beta2),
  ];
  gpu.dispatch1D(gpu.kernel(shader, 'adamw_step', { WG, ITEMS }), [s.params, grads, s.m, s.v, normSq], params, Math.ceil(grads.numel / WG));
  return normSq;
}
