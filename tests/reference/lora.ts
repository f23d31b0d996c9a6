// Float64 reference for the LoRA branch, its dropout mask, and a scalar loss to differentiate.
import { finiteDifferences, gemmRef } from './linalg';

function pcg(v: number): number {
  const state = (Math.imul(v >>> 0, 747796405) + 2891336453) >>> 0;
  const word = Math.imul(((state >>> ((state >>> 28) + 4)) ^ state) >>> 0, 277803737) >>> 0;
  return ((word >>> 22) ^ word) >>> 0;
}

/** Same mask as shaders/lora.wgsl: element i is kept when hash(i, seed) ≥ round(p·2³²). */
export function keepMask(n: number, p: number, seed: number): Float64Array {
  const threshold = Math.min(0xffffffff, Math.round(p * 2 ** 32));
  const scale = p > 0 ? Math.fround(1 / (1 - p)) : 1;
  const m = new Float64Array(n);
  for (let i = 0; i < n; i++) m[i] = pcg((pcg(i) ^ (seed >>> 0)) >>> 0) >= threshold ? scale : 0;
  return m;
}

export interface LoraRefInput {
  x: ArrayLike<number>;
  A: ArrayLike<number>;
  B: ArrayLike<number>;
  T: number;
  inF: number;
  r: number;
  outF: number;
  scale: number;
  mask: Float64Array;
}

/** y = s · (x ⊙ mask) Aᵀ Bᵀ */
export function loraForwardRef(i: LoraRefInput): Float64Array {
  const xd = Float64Array.from(i.x, (v, k) => v * i.mask[k]);
  const h = gemmRef(xd, i.A, i.T, i.r, i.inF, { transB: true });
  return gemmRef(h, i.B, i.T, i.outF, i.r, { transB: true, alpha: i.scale });
}

/** Analytic gradients of L = Σ y ⊙ G. */
export function loraBackwardRef(
  i: LoraRefInput,
  G: ArrayLike<number>,
): { dA: Float64Array; dB: Float64Array; dx: Float64Array } {
  const xd = Float64Array.from(i.x, (v, k) => v * i.mask[k]);
  const h = gemmRef(xd, i.A, i.T, i.r, i.inF, { transB: true });
  const dB = gemmRef(G, h, i.outF, i.r, i.T, { transA: true, alpha: i.scale });
  const dh = gemmRef(G, i.B, i.T, i.r, i.outF, { alpha: i.scale });
  const dA = gemmRef(dh, xd, i.r, i.inF, i.T, { transA: true });
  const dxd = gemmRef(dh, i.A, i.T, i.inF, i.r);
  const dx = dxd.map((v, k) => v * i.mask[k]);
  return { dA, dB, dx };
}

/** Central finite differences of L = Σ loraForwardRef ⊙ G with respect to one input array. */
export function finiteDifference(i: LoraRefInput, G: ArrayLike<number>, which: 'x' | 'A' | 'B'): Float64Array {
  return finiteDifferences((v) => {
    const y = loraForwardRef({ ...i, [which]: v });
    let s = 0;
    for (let k = 0; k < y.length; k++) s += y[k] * G[k];
    return s;
  }, i[which]);
}
