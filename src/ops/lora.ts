// LoRA on a frozen linear layer, forward and backward side by side (PEFT's semantics):
//
//   forward   xd = dropout(x)          x: [T, in]    (dropout on the LoRA branch's input only)
//             h  = xd Aᵀ               A: [r, in],  h: [T, r]           (loraDown)
//             y += s · h Bᵀ            B: [out, r], y: [T, out],  s = alpha / r (or / √r, rsLoRA)
//                                      (loraUp; an NF4 layer folds it into its frozen product)
//   backward  dB (+)= s · dYᵀ h        dB: [out, r]
//             dh  = s · dY B           dh: [T, r]
//             dA (+)= dhᵀ xd           dA: [r, in]
//             dx  += dropout'(dh A)    dx: [T, in]  (the frozen path's dX is added by its own op)
//
// The products are the tiled GEMM of ops/matmul.ts; dropout is shaders/lora.wgsl, whose mask
// is a hash of (seed, element), so backward regenerates it instead of storing it.
import shader from '../../shaders/lora.wgsl?raw';
import type { Gpu, Tensor } from '../gpu/runtime';
import { expectShape, rows2d } from './check';
import { gemm } from './matmul';

const WG = 256;

export interface LoraAdapter {
  A: Tensor; // [r, in]
  B: Tensor; // [out, r]
  /** alpha / r, or alpha / √r with use_rslora. */
  scale: number;
  /** Dropout probability on the branch input during training; 0 at inference. */
  dropout: number;
}

/** What the backward pass needs from the forward one; release() when done. */
export interface LoraSaved {
  xd: Tensor; // the dropped-out input (x itself when there is no dropout)
  h: Tensor; // [T, r]
  ownsXd: boolean;
}

export function loraScale(alpha: number, r: number, useRslora = false): number {
  return useRslora ? alpha / Math.sqrt(r) : alpha / r;
}

function dims(op: string, x: Tensor, a: LoraAdapter): { T: number; inF: number; r: number; outF: number } {
  const [T, inF] = rows2d(op, 'x', x);
  const [r] = rows2d(op, 'A', a.A);
  expectShape(op, 'A', a.A, [r, inF]);
  const [outF] = rows2d(op, 'B', a.B);
  expectShape(op, 'B', a.B, [outF, r]);
  return { T, inF, r, outF };
}

// ---- dropout, forward and backward -------------------------------------------------------

function dropoutParams(n: number, p: number, seed: number) {
  if (!(p >= 0 && p < 1)) throw new Error(`lora_dropout must be in [0, 1), got ${p}`);
  const threshold = Math.min(0xffffffff, Math.round(p * 2 ** 32));
  return { n, seed: seed >>> 0, threshold, scale: 1 / (1 - p) };
}

export interface DropoutOptions {
  /** The probability of dropping an element, in [0, 1). */
  p: number;
  /** Picks the mask (default 0); backward must get forward's seed. */
  seed?: number;
}

// forward: xd = x ⊙ keep / (1 - p)       x, xd: [T, in]; `out`: xd, a new tensor by default
export function dropoutForward(gpu: Gpu, x: Tensor, o: DropoutOptions & { out?: Tensor }): Tensor {
  const xd = o.out ?? gpu.tensor(x.shape);
  const k = gpu.kernel(shader, 'dropout_forward', { WG });
  gpu.dispatch1D(k, [x, xd], dropoutParams(x.numel, o.p, o.seed ?? 0), Math.ceil(x.numel / WG));
  return xd;
}

// backward: dx += dxd ⊙ keep / (1 - p)   dxd, dx: [T, in]
export function dropoutBackward(gpu: Gpu, dxd: Tensor, dx: Tensor, o: DropoutOptions): void {
  const k = gpu.kernel(shader, 'dropout_backward', { WG });
  gpu.dispatch1D(k, [dxd, dx], dropoutParams(dxd.numel, o.p, o.seed ?? 0), Math.ceil(dxd.numel / WG));
}

// ---- the LoRA branch ----------------------------------------------------------------------

// forward: y += s · dropout(x) Aᵀ Bᵀ; `seed` picks the dropout mask (default 0)
export function loraForward(
  gpu: Gpu,
  x: Tensor,
  a: LoraAdapter,
  y: Tensor,
  { seed = 0 }: { seed?: number } = {},
): LoraSaved {
  const saved = loraDown(gpu, x, a, { seed });
  loraUp(gpu, saved.h, a, y);
  return saved;
}

// its first half: xd = dropout(x), h = xd Aᵀ (an NF4 layer folds the second into its own product)
export function loraDown(gpu: Gpu, x: Tensor, a: LoraAdapter, { seed = 0 }: { seed?: number } = {}): LoraSaved {
  const { T, inF, r } = dims('loraForward', x, a);
  const ownsXd = a.dropout > 0;
  const xd = ownsXd ? dropoutForward(gpu, x, { p: a.dropout, seed }) : x;
  const h = gpu.tensor([T, r]);
  gemm(gpu, xd, a.A, h, T, r, inF, { transB: true, label: 'lora' });
  return { xd, h, ownsXd };
}

// its second half: y += s · h Bᵀ
export function loraUp(gpu: Gpu, h: Tensor, a: LoraAdapter, y: Tensor): void {
  const [T, r] = h.shape;
  const [outF] = rows2d('loraForward', 'B', a.B);
  expectShape('loraForward', 'B', a.B, [outF, r]);
  expectShape('loraForward', 'y', y, [T, outF]);
  gemm(gpu, h, a.B, y, T, outF, r, { transB: true, accumulate: true, alpha: a.scale, label: 'lora' });
}

export interface LoraGrads {
  dA: Tensor; // [r, in]
  dB: Tensor; // [out, r]
}

/**
 * backward: writes (or, with `accumulate`, adds to) dA and dB, and adds the branch's input
 * gradient into dx when given. Releases `saved`.
 */
export function loraBackward(
  gpu: Gpu,
  dy: Tensor,
  a: LoraAdapter,
  saved: LoraSaved,
  grads: LoraGrads,
  o: { dx?: Tensor; seed?: number; accumulate?: boolean } = {},
): void {
  const { T, inF, r, outF } = dims('loraBackward', saved.xd, a);
  expectShape('loraBackward', 'dY', dy, [T, outF]);
  expectShape('loraBackward', 'dA', grads.dA, [r, inF]);
  expectShape('loraBackward', 'dB', grads.dB, [outF, r]);
  const accumulate = !!o.accumulate;
  gemm(gpu, dy, saved.h, grads.dB, outF, r, T, { transA: true, alpha: a.scale, accumulate, label: 'lora' });
  const dh = gpu.tensor([T, r]);
  gemm(gpu, dy, a.B, dh, T, r, outF, { alpha: a.scale, label: 'lora' });
  gemm(gpu, dh, saved.xd, grads.dA, r, inF, T, { transA: true, accumulate, label: 'lora' });
  if (o.dx) {
    expectShape('loraBackward', 'dX', o.dx, [T, inF]);
    if (a.dropout > 0) {
      const dxd = gpu.tensor([T, inF]);
      gemm(gpu, dh, a.A, dxd, T, inF, r, { label: 'lora' });
      dropoutBackward(gpu, dxd, o.dx, { p: a.dropout, seed: o.seed });
      dxd.release();
    } else {
      gemm(gpu, dh, a.A, o.dx, T, inF, r, { accumulate: true, label: 'lora' });
    }
  }
  dh.release();
  saved.h.release();
  if (saved.ownsXd) saved.xd.release();
}
