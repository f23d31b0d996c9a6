// Rotary position embedding, forward and backward (the inverse rotation), in place on
// q or k [T, heads, headDim] (shaders/rope.wgsl). Positions come per token, so packed
// sequences can restart them.
import shader from '../../shaders/rope.wgsl?raw';
import type { Gpu, Tensor } from '../gpu/runtime';

const WG = 256;

/** cos and sin of pos · inv_freq for pos < positions, [positions, d/2] each, on the GPU. */
export interface RopeTables {
  cos: Tensor;
  sin: Tensor;
  positions: number;
  half: number;
}

/**
 * The tables as transformers computes them: inv_freq and the angle pos · inv_freq rounded to
 * f32, then cos and sin of that angle.
 */
export function ropeTables(gpu: Gpu, invFreq: ArrayLike<number>, positions: number): RopeTables {
  const half = invFreq.length;
  const cos = new Float32Array(positions * half);
  const sin = new Float32Array(positions * half);
  for (let p = 0; p < positions; p++) {
    for (let i = 0; i < half; i++) {
      const angle = Math.fround(p * Math.fround(invFreq[i]));
      cos[p * half + i] = Math.cos(angle);
      sin[p * half + i] = Math.sin(angle);
    }
  }
  return {
    cos: gpu.tensor([positions, half], 'f32', cos),
    sin: gpu.tensor([positions, half], 'f32', sin),
    positions,
    half,
  };
}

function rope(gpu: Gpu, x: Tensor, positionIds: Tensor, t: RopeTables, sign: 1 | -1): void {
  if (x.shape.length !== 3 || x.shape[2] !== 2 * t.half) {
    throw new Error(`rope: x must be [T, heads, ${2 * t.half}], got [${x.shape.join(', ')}]`);
  }
  const [T, heads] = x.shape;
  if (positionIds.numel !== T) throw new Error(`rope: ${positionIds.numel} position ids for ${T} tokens`);
  const pairs = T * heads * t.half;
  const k = gpu.kernel(shader, 'rope', { WG });
  gpu.dispatch1D(k, [x, positionIds, t.cos, t.sin], { T, heads, half: t.half, sign }, Math.ceil(pairs / WG));
}

// forward: rotate each pair (i, i + d/2) by pos · inv_freq[i], in place
export function ropeForward(gpu: Gpu, x: Tensor, positionIds: Tensor, t: RopeTables): void {
  rope(gpu, x, positionIds, t, 1);
}

// backward: the gradient through a rotation is the inverse rotation, in place on dx
export function ropeBackward(gpu: Gpu, dx: Tensor, positionIds: Tensor, t: RopeTables): void {
  rope(gpu, dx, positionIds, t, -1);
}
