// Causal grouped-query attention, forward and backward side by side. The products are the
// strided batched GEMM of ops/matmul.ts over per-head slices of [T, heads, d], batch = query
// head; softmax, its backward and the KV-group sums are shaders/attention.wgsl.
//   forward   S = scale · Q_h K_jᵀ  (j = h / group),  P = softmax(S, mask),  O_h = P V_j
//   backward  dP = dO_h V_jᵀ,  dS = P ⊙ (dP − rowsum(dP ⊙ P)),
//             dQ_h = scale · dS K_j,  dK_j = scale · Σ_h dSᵀ Q_h,  dV_j = Σ_h Pᵀ dO_h
// q, o: [Tq, H, d]; k, v: [Tk, Hkv, d]; start: u32 [Tq], the first key each query may see (0 for
// plain causal attention, its sequence's first token when sequences are packed). Training has
// Tq = Tk; decoding with a KV cache has the Tq new queries at the last Tq of Tk positions.
// Options (Gemma 2): `scale` other than 1/√d, and `softcap`: S ← cap · tanh(S / cap) before
// the softmax; its backward recomputes S (one more product) rather than keeping it.
// P [H, T, T] is kept from forward to backward; with gradient checkpointing, per layer.
import attention from '../../shaders/attention.wgsl?raw';
import reduce from '../../shaders/reduce.wgsl?raw';
import type { Gpu, Tensor } from '../gpu/runtime';
import { rowWorkgroupSize } from './check';
import { gemm } from './matmul';
import { softcap, softcapBackward } from './softcap';

export interface AttentionOptions {
  /** The scores' scale: 1/√d by default; Gemma 2 uses query_pre_attn_scalar^−½. */
  scale?: number;
  /** Gemma 2's attn_logit_softcapping; 0 or null (the default): no cap. */
  softcap?: number | null;
}

export interface AttentionForwardOptions extends AttentionOptions {
  /** Where o goes, [Tq, H, d]; a new tensor by default. */
  out?: Tensor;
}

const WG = 256;
const shader = `${reduce}\n${attention}`;

export interface AttentionDims {
  T: number;
  heads: number;
  kvHeads: number;
  headDim: number;
}

function dims(q: Tensor, k: Tensor, v: Tensor, training = true): AttentionDims & { Tk: number } {
  if (q.shape.length !== 3 || k.shape.length !== 3) throw new Error('attention: q, k, v must be [T, heads, d]');
  const [T, heads, headDim] = q.shape;
  const [Tk, kvHeads] = k.shape;
  if ((training ? Tk !== T : Tk < T) || k.shape[2] !== headDim || v.shape.join() !== k.shape.join()) {
    throw new Error(`attention: q [${q.shape}], k [${k.shape}], v [${v.shape}] do not fit together`);
  }
  if (heads % kvHeads !== 0) throw new Error(`attention: ${heads} query heads do not share ${kvHeads} KV heads evenly`);
  return { T, heads, kvHeads, headDim, Tk };
}

// forward: o = softmax(scale · q kᵀ, mask) v; returns o as `out`, and P [H, Tq, Tk] for the backward pass
export function attentionForward(
  gpu: Gpu,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  start: Tensor,
  opt: AttentionForwardOptions = {},
): { out: Tensor; P: Tensor } {
  const { T, Tk, heads: H, kvHeads: Hkv, headDim: d } = dims(q, k, v, false);
  const o = opt.out ?? gpu.tensor(q.shape);
  const group = H / Hkv;
  const P = scores(gpu, q, k, T, Tk, H, Hkv, d, opt.scale ?? 1 / Math.sqrt(d));
  if (opt.softcap) softcap(gpu, P, { cap: opt.softcap });
  const softmax = gpu.kernel(shader, 'softmax_forward', { WG: rowWorkgroupSize(Tk) });
  gpu.dispatch1D(softmax, [P, start], { T, H, d, group, Tk }, H * T);
  // O_h = P_h V_j              [Tq, Tk] · [Tk, d]
  gemm(gpu, P, v, o, T, d, Tk, { batch: H, strides: [T * Tk, d, d], ld: [Tk, Hkv * d, H * d], groupB: group });
  return { out: o, P };
}

// S_h = scale · Q_h K_jᵀ     [Tq, d] · [Tk, d]ᵀ  →  [H, Tq, Tk]
function scores(
  gpu: Gpu,
  q: Tensor,
  k: Tensor,
  T: number,
  Tk: number,
  H: number,
  Hkv: number,
  d: number,
  scale: number,
): Tensor {
  const S = gpu.tensor([H, T, Tk]);
  gemm(gpu, q, k, S, T, Tk, d, {
    transB: true,
    alpha: scale,
    batch: H,
    strides: [d, d, T * Tk],
    ld: [H * d, Hkv * d, Tk],
    groupB: H / Hkv,
  });
  return S;
}

// backward: dq, dk, dv from dO and the forward's P (released here; P already holds the mask)
export function attentionBackward(
  gpu: Gpu,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  P: Tensor,
  dout: Tensor,
  opt: AttentionOptions = {},
): { dq: Tensor; dk: Tensor; dv: Tensor } {
  const { T, heads: H, kvHeads: Hkv, headDim: d } = dims(q, k, v);
  const group = H / Hkv;
  const scale = opt.scale ?? 1 / Math.sqrt(d);
  const dS = gpu.tensor([H, T, T]);
  // dP_h = dO_h V_jᵀ, then dS in place (w.r.t. the capped scores, then the raw ones)
  gemm(gpu, dout, v, dS, T, T, d, {
    transB: true,
    batch: H,
    strides: [d, d, T * T],
    ld: [H * d, Hkv * d, T],
    groupB: group,
  });
  const params = { T, H, d, group, Tk: T };
  gpu.dispatch1D(gpu.kernel(shader, 'softmax_backward', { WG: rowWorkgroupSize(T) }), [dS, P], params, H * T);
  if (opt.softcap) {
    const S = scores(gpu, q, k, T, T, H, Hkv, d, scale);
    softcapBackward(gpu, dS, S, { cap: opt.softcap });
    S.release();
  }
  // dQ_h = scale · dS_h K_j
  const dq = gpu.tensor(q.shape);
  gemm(gpu, dS, k, dq, T, d, T, {
    alpha: scale,
    batch: H,
    strides: [T * T, d, d],
    ld: [T, Hkv * d, H * d],
    groupB: group,
  });
  // per query head: dK_h = scale · dS_hᵀ Q_h and dV_h = P_hᵀ dO_h, then summed over each KV group
  const perHead = gpu.tensor([T, H, d]);
  const dk = gpu.tensor(k.shape),
    dv = gpu.tensor(v.shape);
  const sum = gpu.kernel(shader, 'group_sum', { WG });
  gemm(gpu, dS, q, perHead, T, d, T, {
    transA: true,
    alpha: scale,
    batch: H,
    strides: [T * T, d, d],
    ld: [T, H * d, H * d],
  });
  gpu.dispatch1D(sum, [perHead, dk], params, Math.ceil((T * Hkv * d) / WG));
  gemm(gpu, P, dout, perHead, T, d, T, { transA: true, batch: H, strides: [T * T, d, d], ld: [T, H * d, H * d] });
  gpu.dispatch1D(sum, [perHead, dv], params, Math.ceil((T * Hkv * d) / WG));
  perHead.release();
  dS.release();
  P.release();
  return { dq, dk, dv };
}
