// Causal grouped-query attention, forward and backward side by side, fused as FlashAttention
// does (shaders/flash_attention.wgsl): scores are made, soft-maxed and used a B×B tile at a
// time in workgroup memory, so no [heads, T, T] matrix exists in global memory and memory is
// linear in length. Forward keeps each query's log-sum-exp; backward recomputes the scores.
//   forward   S = scale · Q_h K_jᵀ  (j = h / group),  P = softmax(S, mask),  O_h = P V_j
//   backward  dP = dO_h V_jᵀ,  dS = P ⊙ (dP − rowsum(dO ⊙ O)),
//             dQ_h = scale · dS K_j,  dK_j = scale · Σ_h dSᵀ Q_h,  dV_j = Σ_h Pᵀ dO_h
// q, o: [Tq, H, d]; k, v: [Tk, Hkv, d]; start: u32 [Tq], the first key each query may see (0 for
// plain causal attention, its sequence's first token when sequences are packed, later in a
// sliding window). Training has Tq = Tk; decoding with a KV cache has the Tq new queries at the
// last Tq of Tk positions. Options (Gemma 2 and 3): `scale` other than 1/√d, and `softcap`:
// S ← cap · tanh(S / cap) before the softmax.
import flash from '../../shaders/flash_attention.wgsl?raw';
import type { Gpu, Tensor } from '../gpu/runtime';

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

export interface AttentionDims {
  T: number;
  heads: number;
  kvHeads: number;
  headDim: number;
}

/** Threads per workgroup, and queries (or keys) per block: each thread owns four of a block's B×B scores. */
const WG = 64;
const B = 16;

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

/** The kernels for head dimension d (made once per d): each thread keeps ceil(B·d / WG) outputs in registers. */
const sources = new Map<number, string>();
function source(d: number): string {
  let code = sources.get(d);
  if (code === undefined) {
    const consts = { D: d, OPT: Math.ceil((B * d) / WG), B, WG };
    const header = Object.entries(consts).map(([name, v]) => `const ${name}: u32 = ${v}u;`);
    sources.set(d, (code = `${header.join('\n')}\n${flash}`));
  }
  return code;
}

function params(Tq: number, Tk: number, H: number, Hkv: number, d: number, opt: AttentionOptions) {
  return { Tq, Tk, H, Hkv, scale: opt.scale ?? 1 / Math.sqrt(d), cap: opt.softcap ?? 0 };
}

// forward: o = softmax(scale · q kᵀ, mask) v; returns o as `out`, and each query's log-sum-exp
// of its scores, lse [H, Tq], for the backward pass
export function attentionForward(
  gpu: Gpu,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  start: Tensor,
  opt: AttentionForwardOptions = {},
): { out: Tensor; lse: Tensor } {
  const { T, Tk, heads: H, kvHeads: Hkv, headDim: d } = dims(q, k, v, false);
  const o = opt.out ?? gpu.tensor(q.shape);
  const lse = gpu.tensor([H, T]);
  const kernel = gpu.kernel(source(d), 'flash_forward', {}, 'attention');
  gpu.dispatch(kernel, [q, k, v, start, o, lse], params(T, Tk, H, Hkv, d, opt), [Math.ceil(T / B), H]);
  return { out: o, lse };
}

// backward: dq, dk, dv from dO, the mask's `start`, and the forward's o and lse (lse is released here)
export function attentionBackward(
  gpu: Gpu,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  start: Tensor,
  o: Tensor,
  lse: Tensor,
  dout: Tensor,
  opt: AttentionOptions = {},
): { dq: Tensor; dk: Tensor; dv: Tensor } {
  const { T, heads: H, kvHeads: Hkv, headDim: d } = dims(q, k, v);
  if (o.numel !== q.numel || dout.numel !== q.numel)
    throw new Error('attention backward: o and dO must be shaped as q');
  const p = params(T, T, H, Hkv, d, opt);
  const code = source(d);
  const dq = gpu.tensor(q.shape);
  const dk = gpu.tensor(k.shape),
    dv = gpu.tensor(v.shape);
  const saved = [q, k, v, start, o, lse, dout];
  // dQ: a block of queries of one head, over the keys it sees
  gpu.dispatch(gpu.kernel(code, 'flash_dq', {}, 'attention'), [...saved, dq], p, [Math.ceil(T / B), H]);
  // dK, dV: a block of keys of one KV head, over its group's heads and the queries that see them
  gpu.dispatch(gpu.kernel(code, 'flash_dkv', {}, 'attention'), [...saved, dk, dv], p, [Math.ceil(T / B), Hkv]);
  lse.release();
  return { dq, dk, dv };
}
