// An independent float64 Llama-family forward pass on the CPU, for the model tests: the same
// network as src/model/llama/layer.ts, composed of the per-op float64 references, with weights given
// as the values the GPU holds (NF4 dequantized, 16-bit rounded).
import type { ModelConfig } from '../../src/model/config';
import { attentionRef } from './attention';
import { ropeRef, swigluRef } from './elementwise';
import { rmsnormRef } from './norm';

export interface RefLinear {
  w: ArrayLike<number>; // [out, in]
  out: number;
  in: number;
  b?: ArrayLike<number>;
  A?: ArrayLike<number>; // [r, in]
  B?: ArrayLike<number>; // [out, r]
  r?: number;
  scale?: number;
}

export interface RefLayer {
  inputNorm: ArrayLike<number>;
  postNorm: ArrayLike<number>;
  /** Qwen3's per-head norms of q and k, [head_dim] each (absent for the other families). */
  qNorm?: ArrayLike<number>;
  kNorm?: ArrayLike<number>;
  q: RefLinear;
  k: RefLinear;
  v: RefLinear;
  o: RefLinear;
  gate: RefLinear;
  up: RefLinear;
  down: RefLinear;
}

export interface RefModel {
  c: ModelConfig;
  embed: ArrayLike<number>; // [V, H]
  layers: RefLayer[];
  norm: ArrayLike<number>;
  head: ArrayLike<number>; // [V, H]
  invFreq: ArrayLike<number>;
}

export function linear(x: Float64Array, T: number, L: RefLinear): Float64Array {
  const y = new Float64Array(T * L.out);
  for (let t = 0; t < T; t++) {
    const h = new Float64Array(L.r ?? 0);
    if (L.A) for (let j = 0; j < L.r!; j++) for (let i = 0; i < L.in; i++) h[j] += x[t * L.in + i] * L.A[j * L.in + i];
    for (let o = 0; o < L.out; o++) {
      let s = L.b ? L.b[o] : 0;
      for (let i = 0; i < L.in; i++) s += x[t * L.in + i] * L.w[o * L.in + i];
      if (L.B) for (let j = 0; j < L.r!; j++) s += L.scale! * h[j] * L.B[o * L.r! + j];
      y[t * L.out + o] = s;
    }
  }
  return y;
}

/** Logits [T, V] for token ids, with RoPE positions and attention starts per token. */
export function llamaLogitsRef(
  m: RefModel,
  ids: ArrayLike<number>,
  pos: ArrayLike<number>,
  start: ArrayLike<number>,
): Float64Array {
  const { c } = m;
  const T = ids.length,
    H = c.hidden,
    d = c.headDim;
  let x = new Float64Array(T * H);
  for (let t = 0; t < T; t++) for (let i = 0; i < H; i++) x[t * H + i] = m.embed[ids[t] * H + i];
  for (const [l, L] of m.layers.entries()) {
    const a = rmsnormRef(x, L.inputNorm, T, H, c.norm.eps);
    // SmolLM3's NoPE layers rotate nothing
    const rope = (y: Float64Array, n: number) => (c.noRope[l] ? y : ropeRef(y, pos, m.invFreq, T, n));
    // Qwen3: an RMSNorm over each head's d values of q and of k, rows [T·heads, d], before RoPE
    const headNorm = (x: Float64Array, w: ArrayLike<number> | undefined, n: number) =>
      w ? rmsnormRef(x, w, T * n, d, c.norm.eps) : x;
    const q = rope(headNorm(linear(a, T, L.q), L.qNorm, c.heads), c.heads);
    const k = rope(headNorm(linear(a, T, L.k), L.kNorm, c.kvHeads), c.kvHeads);
    const attn = attentionRef(q, k, linear(a, T, L.v), start, T, c.heads, c.kvHeads, d);
    const o = linear(attn, T, L.o);
    const x2 = x.map((v, i) => v + o[i]);
    const mm = rmsnormRef(x2, L.postNorm, T, H, c.norm.eps);
    const g = linear(mm, T, L.gate),
      u = linear(mm, T, L.up);
    const hh = swigluRef(g, u);
    const dn = linear(hh, T, L.down);
    x = x2.map((v, i) => v + dn[i]);
  }
  const xf = rmsnormRef(x, m.norm, T, H, c.norm.eps);
  return linear(xf, T, { w: m.head, out: c.vocab, in: H });
}

/** Token-weighted mean cross-entropy over labels ≥ 0. */
export function llamaLossRef(
  m: RefModel,
  ids: ArrayLike<number>,
  labels: ArrayLike<number>,
  pos: ArrayLike<number>,
  start: ArrayLike<number>,
): number {
  return meanLossRef(llamaLogitsRef(m, ids, pos, start), labels, m.c.vocab);
}

/** Token-weighted mean cross-entropy of logits z [T, V] over labels ≥ 0. */
export function meanLossRef(z: Float64Array, labels: ArrayLike<number>, V: number): number {
  let total = 0,
    count = 0;
  for (let t = 0; t < labels.length; t++) {
    if (labels[t] < 0) continue;
    let mx = -Infinity;
    for (let i = 0; i < V; i++) mx = Math.max(mx, z[t * V + i]);
    let s = 0;
    for (let i = 0; i < V; i++) s += Math.exp(z[t * V + i] - mx);
    total += mx + Math.log(s) - z[t * V + labels[t]];
    count++;
  }
  return total / count;
}
