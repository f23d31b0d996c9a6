// f32 matmuls of a linear layer y = x Wᵀ, forward and backward side by side, all through one
// tiled GEMM kernel (shaders/gemm_core.wgsl + shaders/gemm_f32.wgsl) specialised by override
// constants: C = alpha · op(A) · op(B) (+ C).
import core from '../../shaders/gemm_core.wgsl?raw';
import variant from '../../shaders/gemm_f32.wgsl?raw';
import type { Gpu, Tensor } from '../gpu/runtime';
import { expectShape, rows2d } from './check';

const GEMM_F32 = `${variant}\n${core}`;
/** Threads per side and K step; each thread computes a 4×4 block, so a tile is 64×64. */
export const GEMM_TILE = { WG: 16, TK: 16 };

export interface GemmOptions {
  transA?: boolean;
  transB?: boolean;
  accumulate?: boolean;
  alpha?: number;
  /** Batched products over grid z; element strides of A, B, C (0 broadcasts). */
  batch?: number;
  strides?: [number, number, number];
  /** Row pitches of A, B, C as stored (default: packed). */
  ld?: [number, number, number];
  /** Batch z reads B's batch floor(z / groupB): query heads sharing a KV head. */
  groupB?: number;
}

/** C[M,N] = alpha · op(A)[M,K] · op(B)[K,N] (+ C). The general entry behind the three below. */
export function gemm(
  gpu: Gpu,
  a: Tensor,
  b: Tensor,
  c: Tensor,
  M: number,
  N: number,
  K: number,
  o: GemmOptions = {},
): void {
  const tile = GEMM_TILE.WG * 4;
  const kernel = gpu.kernel(GEMM_F32, 'main', {
    ...GEMM_TILE,
    TRANS_A: !!o.transA,
    TRANS_B: !!o.transB,
    ACCUMULATE: !!o.accumulate,
  });
  const [sA, sB, sC] = o.strides ?? [M * K, K * N, M * N];
  const [lda, ldb, ldc] = o.ld ?? [o.transA ? M : K, o.transB ? K : N, N];
  const params = { M, N, K, alpha: o.alpha ?? 1, sA, sB, sC, lda, ldb, ldc, groupB: o.groupB ?? 1 };
  gpu.dispatch(kernel, [a, b, c], params, [Math.ceil(N / tile), Math.ceil(M / tile), o.batch ?? 1]);
}

/** How a linear op (f32, NF4 or 16-bit weights) writes its result. */
export interface ProductOptions {
  /** Add into the output instead of overwriting it (default false). */
  accumulate?: boolean;
  /** Scale the product by this (default 1). */
  alpha?: number;
}

// forward: y = x Wᵀ          x: [T, in], W: [out, in], y: [T, out]; `out`: y, a new tensor by default
export function linear(gpu: Gpu, x: Tensor, w: Tensor, o: ProductOptions & { out?: Tensor } = {}): Tensor {
  const [T, inF] = rows2d('linear', 'x', x);
  const [outF] = rows2d('linear', 'W', w);
  expectShape('linear', 'W', w, [outF, inF]);
  const y = o.out ?? gpu.tensor([T, outF]);
  expectShape('linear', 'out', y, [T, outF]);
  gemm(gpu, x, w, y, T, outF, inF, { transB: true, accumulate: o.accumulate, alpha: o.alpha });
  return y;
}

// backward, input: dX = dY W     dY: [T, out], W: [out, in], dX: [T, in]; `dx`: a new tensor by default
export function linearBackwardInput(gpu: Gpu, dy: Tensor, w: Tensor, o: ProductOptions & { dx?: Tensor } = {}): Tensor {
  const [T, outF] = rows2d('linearBackwardInput', 'dY', dy);
  const [, inF] = rows2d('linearBackwardInput', 'W', w);
  expectShape('linearBackwardInput', 'W', w, [outF, inF]);
  const dx = o.dx ?? gpu.tensor([T, inF]);
  expectShape('linearBackwardInput', 'dX', dx, [T, inF]);
  gemm(gpu, dy, w, dx, T, inF, outF, { accumulate: o.accumulate, alpha: o.alpha });
  return dx;
}

// backward, weight: dW = dYᵀ X   dY: [T, out], X: [T, in], dW: [out, in]; `dw`: a new tensor by default
export function linearBackwardWeight(
  gpu: Gpu,
  dy: Tensor,
  x: Tensor,
  o: ProductOptions & { dw?: Tensor } = {},
): Tensor {
  const [T, outF] = rows2d('linearBackwardWeight', 'dY', dy);
  const [, inF] = rows2d('linearBackwardWeight', 'X', x);
  expectShape('linearBackwardWeight', 'X', x, [T, inF]);
  const dw = o.dw ?? gpu.tensor([outF, inF]);
  expectShape('linearBackwardWeight', 'dW', dw, [outF, inF]);
  gemm(gpu, dy, x, dw, outF, inF, T, { transA: true, accumulate: o.accumulate, alpha: o.alpha });
  return dw;
}
