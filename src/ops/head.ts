// The output head and the loss. The head's weight stays 16-bit (transformers keeps lm_head out
// of 4-bit), in row blocks where it outgrows one binding (half-matrix.ts); logits are made a
// chunk of rows at a time and turned into their gradient in place, so the full [T, vocab]
// never exists.
//   forward   z  = x · Wᵀ              x: [Tc, H], W: 16-bit [V, H], z: [Tc, V]
//   loss      ℓ_t = lse(z_t) − z_t[label_t];  z ← scale · (softmax(z) − onehot)   (in place)
//   backward  dX = dZ · W              dX: [Tc, H]
import ce from '../../shaders/cross_entropy.wgsl?raw';
import core from '../../shaders/gemm_core.wgsl?raw';
import variant from '../../shaders/gemm_half.wgsl?raw';
import GEMV_HALF from '../../shaders/gemv_half.wgsl?raw';
import half from '../../shaders/half.wgsl?raw';
import reduce from '../../shaders/reduce.wgsl?raw';
import type { Gpu, Tensor } from '../gpu/runtime';
import { expectShape, rowWorkgroupSize, rows2d } from './check';
import { dispatchGemv, GEMV_MAX_ROWS, gemvKernel } from './gemv';
import { gemmGrid, gemmTile } from './matmul';
import type { HalfBlock, HalfMatrix } from './half-matrix';

const GEMM_HALF = `${half}\n${variant}\n${core}`;
const CROSS_ENTROPY = `${reduce}\n${ce}`;

interface HalfGemm {
  M: number;
  N: number;
  K: number;
  transB: boolean;
  accumulate: boolean;
  lda: number;
  ldc: number;
  aOffset: number;
  cOffset: number;
  wOffset: number;
}

// C[:, cOffset…] (+)= A[:, aOffset…] · op(W_b) for one row block W_b of a 16-bit matrix
function halfGemm(gpu: Gpu, a: Tensor, w: HalfBlock, dtype: HalfMatrix['dtype'], c: Tensor, g: HalfGemm): void {
  const tile = gemmTile(g.M, g.N);
  const { transB, accumulate, ...dims } = g;
  const bf16 = dtype === 'BF16';
  if (transB && g.M <= GEMV_MAX_ROWS) {
    // decoding: a row of logits is a matrix-vector product
    const even = g.K % 2 === 0 && g.wOffset % 2 === 0;
    const kernel = gemvKernel(gpu, GEMV_HALF, { ACCUMULATE: accumulate, BF16: bf16, EVEN: even }, 'gemv_half', half);
    dispatchGemv(gpu, kernel, [a, w.words, c], { ...dims, alpha: 1 });
    return;
  }
  const kernel = gpu.kernel(
    GEMM_HALF,
    'main',
    { ...tile, TRANS_B: transB, ACCUMULATE: accumulate, BF16: bf16 },
    'gemm_half',
  );
  gpu.dispatch(kernel, [a, w.words, c], { ...dims, alpha: 1 }, gemmGrid(tile, g.M, g.N));
}

export interface HalfLinearOptions {
  /** z, [T, rows]; a new tensor by default. */
  out?: Tensor;
  /** The first of W's rows to multiply by (default 0)… */
  row0?: number;
  /** …and how many (default all of W's rows from row0 on). */
  rows?: number;
  /** Add into `out` instead of overwriting it (default false). */
  accumulate?: boolean;
}

// forward: z (+)= x · W[row0 : row0 + rows]ᵀ    x: [T, H], W: 16-bit [V, H], z: [T, rows]
// (a vocabulary chunk of the head, or all of W). Each row block of W that overlaps the chunk
// writes its own columns of z.
export function halfLinear(gpu: Gpu, x: Tensor, w: HalfMatrix, o: HalfLinearOptions = {}): Tensor {
  const { row0 = 0, rows = w.shape[0] - row0, accumulate = false } = o;
  const [T, H] = rows2d('halfLinear', 'x', x);
  if (w.shape[1] !== H) throw new Error(`halfLinear: x has ${H} features, W is [${w.shape.join(', ')}]`);
  if (row0 + rows > w.shape[0]) throw new Error(`halfLinear: rows ${row0}..${row0 + rows} past W's ${w.shape[0]}`);
  const z = o.out ?? gpu.tensor([T, rows]);
  expectShape('halfLinear', 'out', z, [T, rows]);
  for (const b of w.blocks) {
    const lo = Math.max(row0, b.row0),
      hi = Math.min(row0 + rows, b.row0 + b.rows);
    if (lo >= hi) continue;
    halfGemm(gpu, x, b, w.dtype, z, {
      M: T,
      N: hi - lo,
      K: H,
      transB: true,
      accumulate,
      lda: H,
      ldc: rows,
      aOffset: 0,
      cOffset: lo - row0,
      wOffset: (lo - b.row0) * H,
    });
  }
  return z;
}

// backward: dX (+)= dZ · W = Σ_blocks dZ[:, block's rows] · W_b     dZ: [T, V], W: [V, H], dX: [T, H]
// `dx`: a new tensor by default; `accumulate` (default false) adds into it.
export function halfLinearBackwardInput(
  gpu: Gpu,
  dz: Tensor,
  w: HalfMatrix,
  o: { dx?: Tensor; accumulate?: boolean } = {},
): Tensor {
  const accumulate = !!o.accumulate;
  const [T, V] = rows2d('halfLinearBackwardInput', 'dZ', dz);
  if (w.shape[0] !== V) throw new Error(`halfLinearBackwardInput: dZ has ${V} columns, W is [${w.shape.join(', ')}]`);
  const H = w.shape[1];
  const dx = o.dx ?? gpu.tensor([T, H]);
  expectShape('halfLinearBackwardInput', 'dX', dx, [T, H]);
  for (const [i, b] of w.blocks.entries()) {
    halfGemm(gpu, dz, b, w.dtype, dx, {
      M: T,
      N: H,
      K: b.rows,
      transB: false,
      accumulate: accumulate || i > 0,
      lda: V,
      ldc: H,
      aOffset: b.row0,
      cOffset: 0,
      wOffset: 0,
    });
  }
  return dx;
}

export interface CrossEntropyOptions {
  /** dL/dz is scaled by this (default 1; training passes 1 / counted labels). */
  scale?: number;
  /** The chunk's first row in `labels` (default 0). */
  rowOffset?: number;
  /** Each row's loss, [Tc]; a new tensor by default. */
  loss?: Tensor;
  /**
   * Each row's (entropy of softmax(z), 1 if the first argmax is the label else 0), [Tc, 2]: what
   * TRL logs as `entropy` and `mean_token_accuracy`. Scratch by default.
   */
  stats?: Tensor;
  /** Gemma 2's final_logit_softcapping: the loss is of cap · tanh(z / cap); 0 (the default): none. */
  softcap?: number;
}

/**
 * Cross-entropy of a chunk of rows, in place: `z` [Tc, V] becomes dL/dz, `loss` [Tc] gets each
 * row's loss (0 where the label is −100), `stats` each row's entropy and hit. `labels` is i32 for
 * all rows. Returns `loss`.
 */
export function crossEntropy(gpu: Gpu, z: Tensor, labels: Tensor, o: CrossEntropyOptions = {}): Tensor {
  const { scale = 1, rowOffset = 0, softcap = 0 } = o;
  const loss = o.loss ?? gpu.tensor([z.shape[0]]);
  const [T, V] = rows2d('crossEntropy', 'z', z);
  if (rowOffset + T > labels.numel)
    throw new Error(`crossEntropy: rows ${rowOffset}..${rowOffset + T} past ${labels.numel} labels`);
  expectShape('crossEntropy', 'loss', loss, [T]);
  const stats = o.stats ?? gpu.tensor([T, 2]);
  expectShape('crossEntropy', 'stats', stats, [T, 2]);
  const k = gpu.kernel(CROSS_ENTROPY, 'cross_entropy', { WG: rowWorkgroupSize(V), CAP: softcap });
  gpu.dispatch1D(k, [z, labels, loss, stats], { T, V, scale, rowOffset }, T);
  if (!o.stats) stats.release();
  return loss;
}
