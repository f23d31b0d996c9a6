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

export function swigluForward(gpu: Gpu, g: Tensor, u: Tensor, h = gpu.tensor(g.shape), act: GatedActivation = 'silu'): Tensor {
  expectShape('swigluForward', 'u', u, g.shape);
  expectShape('swigluForward', 'h', h, g.shape);
  gpu.dispatch1D(gpu.kernel(shader, 'swiglu_forward', gated(act)), [g, u, h], { n: g.numel }, Math.ceil(g.numel / WG));
  return h;
}

export function swigluBackward(
  gpu: Gpu, g: Tensor, u: Tensor, dh: Tensor, dg = gpu.tensor(g.shape), du = gpu.tensor(g.shape), act: GatedActivation = 'silu',
): { dg: Tensor; du: Tensor } {
  for (const [name, t] of [['u', u], ['dh', dh], ['dg', dg], ['du', du]] as const) expectShape('swigluBackward', name, t, g.shape);
  const k = gpu.kernel(shader, 'swiglu_backward', gated(act));
  gpu.dispatch1D(k, [g, u, dh, dg, du], { n: g.numel }, Math.ceil(g.numel / WG));
  return { dg, du };
}

export type GeluApproximation = 'none' | 'tanh';

export function geluForward(gpu: Gpu, a: Tensor, approximate: GeluApproximation, h = gpu.tensor(a.shape)): Tensor {
  expectShape('geluForward', 'h', h, a.shape);
  const k = gpu.kernel(geluShader, 'gelu_forward', { WG, TANH: approximate === 'tanh' });
  gpu.dispatch1D(k, [a, h], { n: a.numel }, Math.ceil(a.numel / WG));
  return h;
}

export function geluBackward(gpu: Gpu, a: Tensor, dh: Tensor, approximate: GeluApproximation, da = gpu.tensor(a.shape)): Tensor {
  expectShape('geluBackward', 'dh', dh, a.shape);
  expectShape('geluBackward', 'da', da, a.shape);
  const k = gpu.kernel(geluShader, 'gelu_backward', { WG, TANH: approximate === 'tanh' });
  gpu.dispatch1D(k, [a, dh, da], { n: a.numel }, Math.ceil(a.numel / WG));
  return da;
}
