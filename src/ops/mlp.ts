// The MLPs' activations, forward and backward side by side; elementwise over [T, I].
// SwiGLU (Llama) and GeGLU (Gemma 2, gelu_tanh), shaders/swiglu.wgsl:
//   forward   h  = act(g) ⊙ u
//   backward  dg = dh ⊙ u ⊙ act'(g),   du = dh ⊙ act(g)
// GELU (Falcon exact, Gemma 2 tanh; shaders/gelu.wgsl):
//   forward   h  = gelu(a)
//   backward  da = dh ⊙ gelu'(a)
import activations from '../../shaders/activations.wgsl?raw';
import gelu from '../../shaders/gelu.wgsl?raw';
import swiglu from '../../shaders/swiglu.wgsl?raw';
import type { Gpu, Tensor } from '../gpu/runtime';
import { expectShape } from './check';

const WG = 256;
const shader = `${activations}\n${swiglu}`;
const geluShader = `${activations}\n${gelu}`;

/** The gated MLP's activation: SwiGLU (silu) or GeGLU (gelu_tanh, Gemma 2). */
export type GatedActivation = 'silu' | 'gelu_tanh';
const gated = (act: GatedActivation) => ({ WG, GEGLU: act === 'gelu_tanh', TANH: true });

/** `activation`: act of the gated MLP, 'silu' (SwiGLU) by default. */
export interface GatedOptions {
  activation?: GatedActivation;
}

// `out`: h, a new tensor by default
export function swigluForward(gpu: Gpu, g: Tensor, u: Tensor, o: GatedOptions & { out?: Tensor } = {}): Tensor {
  const h = o.out ?? gpu.tensor(g.shape);
  expectShape('swigluForward', 'u', u, g.shape);
  expectShape('swigluForward', 'out', h, g.shape);
  const k = gpu.kernel(shader, 'swiglu_forward', gated(o.activation ?? 'silu'));
  gpu.dispatch1D(k, [g, u, h], { n: g.numel }, Math.ceil(g.numel / WG));
  return h;
}

// `dg`, `du`: new tensors by default
export function swigluBackward(
  gpu: Gpu,
  g: Tensor,
  u: Tensor,
  dh: Tensor,
  o: GatedOptions & { dg?: Tensor; du?: Tensor } = {},
): { dg: Tensor; du: Tensor } {
  const dg = o.dg ?? gpu.tensor(g.shape),
    du = o.du ?? gpu.tensor(g.shape),
    act = o.activation ?? 'silu';
  for (const [name, t] of [
    ['u', u],
    ['dh', dh],
    ['dg', dg],
    ['du', du],
  ] as const)
    expectShape('swigluBackward', name, t, g.shape);
  const k = gpu.kernel(shader, 'swiglu_backward', gated(act));
  gpu.dispatch1D(k, [g, u, dh, dg, du], { n: g.numel }, Math.ceil(g.numel / WG));
  return { dg, du };
}

export type GeluApproximation = 'none' | 'tanh';

/** `approximate`: PyTorch's gelu argument, 'none' (exact, erf) by default. */
export interface GeluOptions {
  approximate?: GeluApproximation;
}

// `out`: h, a new tensor by default
export function geluForward(gpu: Gpu, a: Tensor, o: GeluOptions & { out?: Tensor } = {}): Tensor {
  const h = o.out ?? gpu.tensor(a.shape),
    approximate = o.approximate ?? 'none';
  expectShape('geluForward', 'out', h, a.shape);
  const k = gpu.kernel(geluShader, 'gelu_forward', { WG, TANH: approximate === 'tanh' });
  gpu.dispatch1D(k, [a, h], { n: a.numel }, Math.ceil(a.numel / WG));
  return h;
}

// `da`: a new tensor by default
export function geluBackward(gpu: Gpu, a: Tensor, dh: Tensor, o: GeluOptions & { da?: Tensor } = {}): Tensor {
  const da = o.da ?? gpu.tensor(a.shape),
    approximate = o.approximate ?? 'none';
  expectShape('geluBackward', 'dh', dh, a.shape);
  expectShape('geluBackward', 'da', da, a.shape);
  const k = gpu.kernel(geluShader, 'gelu_backward', { WG, TANH: approximate === 'tanh' });
  gpu.dispatch1D(k, [a, dh, da], { n: a.numel }, Math.ceil(a.numel / WG));
  return da;
}
