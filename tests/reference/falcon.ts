// An independent float64 Falcon forward pass on the CPU (transformers' FalconForCausalLM with
// parallel attention, rotary, no alibi), composed of the per-op float64 references, with
// weights given as the values the GPU holds.
import type { ModelConfig } from '../../src/model/config';
import { attentionRef } from './attention';
import { geluRef, ropeRef } from './elementwise';
import { linear, meanLossRef, type RefLinear } from './llama';
import { layernormRef } from './norm';

export interface RefNorm {
  w: ArrayLike<number>;
  b: ArrayLike<number>;
}

export interface RefFalconLayer {
  ln: RefNorm;
  lnMlp: RefNorm | null;
  qkv: RefLinear;
  dense: RefLinear;
  up: RefLinear;
  down: RefLinear;
}

export interface RefFalcon {
  c: ModelConfig;
  embed: ArrayLike<number>; // [V, H]
  layers: RefFalconLayer[];
  lnF: RefNorm;
  head: ArrayLike<number>; // [V, H]
  invFreq: ArrayLike<number>;
}

/** Heads of the fused qkv row, as transformers' FalconAttention._split_heads takes them. */
function splitHeads(qkv: Float64Array, T: number, c: ModelConfig): [Float64Array, Float64Array, Float64Array] {
  const d = c.headDim,
    H = c.heads,
    K = c.kvHeads,
    Nf = H + 2 * K;
  const q = new Float64Array(T * H * d),
    k = new Float64Array(T * K * d),
    v = new Float64Array(T * K * d);
  const copy = (dst: Float64Array, n: number, j: number, t: number, head: number) => {
    for (let e = 0; e < d; e++) dst[(t * n + j) * d + e] = qkv[(t * Nf + head) * d + e];
  };
  for (let t = 0; t < T; t++) {
    if (c.falcon!.qkv === 'multi-query') {
      // view(T, H + 2, d): q = [:-2], k = [-2], v = [-1]
      for (let h = 0; h < H; h++) copy(q, H, h, t, h);
      copy(k, 1, 0, t, H);
      copy(v, 1, 0, t, H + 1);
    } else {
      // view(T, K, H / K + 2, d): per group, q = [:-2], k = [-2], v = [-1]
      const r = H / K;
      for (let g = 0; g < K; g++) {
        for (let i = 0; i < r; i++) copy(q, H, g * r + i, t, g * (r + 2) + i);
        copy(k, K, g, t, g * (r + 2) + r);
        copy(v, K, g, t, g * (r + 2) + r + 1);
      }
    }
  }
  return [q, k, v];
}

export function falconLogitsRef(
  m: RefFalcon,
  ids: ArrayLike<number>,
  pos: ArrayLike<number>,
  start: ArrayLike<number>,
): Float64Array {
  const { c } = m;
  const T = ids.length,
    H = c.hidden,
    eps = c.norm.eps;
  let x = new Float64Array(T * H);
  for (let t = 0; t < T; t++) for (let i = 0; i < H; i++) x[t * H + i] = m.embed[ids[t] * H + i];
  for (const L of m.layers) {
    const a = layernormRef(x, L.ln.w, L.ln.b, T, H, eps);
    const mm = L.lnMlp ? layernormRef(x, L.lnMlp.w, L.lnMlp.b, T, H, eps) : a;
    const [q0, k0, v] = splitHeads(linear(a, T, L.qkv), T, c);
    const q = ropeRef(q0, pos, m.invFreq, T, c.heads);
    const k = ropeRef(k0, pos, m.invFreq, T, c.kvHeads);
    const attn = linear(attentionRef(q, k, v, start, T, c.heads, c.kvHeads, c.headDim), T, L.dense);
    const mlp = linear(geluRef(linear(mm, T, L.up), 'none'), T, L.down);
    x = x.map((xi, i) => xi + attn[i] + mlp[i]);
  }
  const xf = layernormRef(x, m.lnF.w, m.lnF.b, T, H, eps);
  return linear(xf, T, { w: m.head, out: c.vocab, in: H });
}

export function falconLossRef(
  m: RefFalcon,
  ids: ArrayLike<number>,
  labels: ArrayLike<number>,
  pos: ArrayLike<number>,
  start: ArrayLike<number>,
): number {
  return meanLossRef(falconLogitsRef(m, ids, pos, start), labels, m.c.vocab);
}
