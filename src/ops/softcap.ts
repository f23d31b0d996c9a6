// Soft-capping (Gemma 2's attention scores and final logits), shaders/softcap.wgsl:
//   forward    x ← cap · tanh(x / cap)                 in place
//   backward   g ← g · (1 − tanh²(x / cap))            x: the values before capping
import shader from '../../shaders/softcap.wgsl?raw';
import type { Gpu, Tensor } from '../gpu/runtime';
import { expectShape } from './check';

const WG = 256;

export interface SoftcapOptions {
  /** The cap: values end up in (−cap, cap). */
  cap: number;
}

export function softcap(gpu: Gpu, x: Tensor, { cap }: SoftcapOptions): Tensor {
  gpu.dispatch1D(gpu.kernel(shader, 'softcap', { WG }), [x], { n: x.numel, cap }, Math.ceil(x.numel / WG));
  return x;
}

export function softcapBackward(gpu: Gpu, g: Tensor, x: Tensor, { cap }: SoftcapOptions): Tensor {
  expectShape('softcapBackward', 'x', x, g.shape);
  const k = gpu.kernel(shader, 'softcap_backward', { WG });
  gpu.dispatch1D(k, [g, x], { n: g.numel, cap }, Math.ceil(g.numel / WG));
  return g;
}
