// SwiGLU, forward and backward side by side (shaders/swiglu.wgsl); elementwise over [T, I].
//   forward   h  = silu(g) ⊙ u
//   backward  dg = dh ⊙ u ⊙ silu'(g),   du = dh ⊙ silu(g)
import shader from '../../shaders/swiglu.wgsl?raw';
import type { Gpu, Tensor } from '../gpu/runtime';
import { expectShape } from './check';

const WG = 256;

export function swigluForward(gpu: Gpu, g: Tensor, u: Tensor, h = gpu.tensor(g.shape)): Tensor {
  expectShape('swigluForward', 'u', u, g.shape);
  expectShape('swigluForward', 'h', h, g.shape);
  gpu.dispatch1D(gpu.kernel(shader, 'swiglu_forward', { WG }), [g, u, h], [g.numel], Math.ceil(g.numel / WG));
  return h;
}

export function swigluBackward(gpu: Gpu, g: Tensor, u: Tensor, dh: Tensor, dg = gpu.tensor(g.shape), du = gpu.tensor(g.shape)): { dg: Tensor; du: Tensor } {
  for (const [name, t] of [['u', u], ['dh', dh], ['dg', dg], ['du', du]] as const) expectShape('swigluBackward', name, t, g.shape);
  gpu.dispatch1D(gpu.kernel(shader, 'swiglu_backward', { WG }), [g, u, dh, dg, du], [g.numel], Math.ceil(g.numel / WG));
  return { dg, du };
}
