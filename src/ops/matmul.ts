// f32 matmuls of a linear layer y = x Wᵀ, forward and backward side by side, all through one
// tiled GEMM kernel (shaders/gemm_core.wgsl + shaders/gemm_f32.wgsl) specialised by override
// constants: C = alpha · op(A) · op(B) (+ C).
import core from '../../shaders/gemm_core.wgsl?raw';
import variant from '../../shaders/gemm_f32.wgsl?raw';
import GEMV_F32 from '../../shaders/gemv_f32.wgsl?raw';
import type { Gpu, Grid, Tensor } from '../gpu/runtime';
import { expectShape, rows2d } from './check';
import { dispatchGemv, GEMV_MAX_ROWS, gemvKernel } from './gemv';

const GEMM_F32 = `${variant}\n${core}`;
/**
 * Threads along N and M, and the K step; each thread computes a 4×4 block, so a tile is
 * (4·WGY)×(4·WGX). Square 64×64 tiles, or 64×16 and 16×64 where one side of C is 16 or less
 * (LoRA's rank): a square tile would compute four times the products there. (Taller tiles,
 * 256×16, leave too few workgroups: on SwiftShader they ran slower than the square ones.)
 */
export function gemmTile(M: number, N: number): { WGX: number; WGY: number; TK: number } {
  if (N <= 16 && M > 16) return { WGX: 4, WGY: 16, TK: 16 };
  if (M <= 16 && N > 16) return { WGX: 16, WGY: 4, TK: 16 };
  return { WGX: 16, WGY: 16, TK: 16 };
}

/** The workgroups covering C [M, N] with `tile`'s blocks. */
export function gemmGrid(tile: { WGX: number; WGY: number }, M: number, N: number, batch = 1): Grid {
  return [Math.ceil(N / (4 * tile.WGX)), Math.ceil(M / (4 * tile.WGY)), batch];
}

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
  /** What the product is for, in the bench's timings (attention, lora); gemm_f32 by default. */
  label?: string;
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
  const plain = !o.transA && !o.strides && !o.ld && (o.batch ?? 1) === 1 && (o.groupB ?? 1) === 1;
  if (plain && o.transB && M <= GEMV_MAX_ROWS) {
    // decoding (LoRA's products): one row of x is a matrix-vector product
    const kernel = gemvKernel(gpu, GEMV_F32, { ACCUMULATE: !!o.accumulate }, 'gemv_f32');
    dispatchGemv(gpu, kernel, [a, b, c], { M, N, K, alpha: o.alpha ?? 1 }, o.label);
    return;
  }
  const tile = gemmTile(M, N);
  const constants = { ...tile, TRANS_A: !!o.transA, TRANS_B: !!o.transB, ACCUMULATE: !!o.accumulate };
  const kernel = gpu.kernel(GEMM_F32, 'main', constants, 'gemm_f32');
  const [sA, sB, sC] = o.strides ?? [M * K, K * N, M * N];
  const [lda, ldb, ldc] = o.ld ?? [o.transA ? M : K, o.transB ? K : N, N];
  const params = { M, N, K, alpha: o.alpha ?? 1, sA, sB, sC, lda, ldb, ldc, groupB: o.groupB ?? 1 };
  gpu.dispatch(kernel, [a, b, c], params, gemmGrid(tile, M, N, o.batch), o.label);
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
