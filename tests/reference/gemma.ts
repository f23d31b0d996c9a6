// An independent float64 Gemma 2 / Gemma 3 forward pass on the CPU (transformers' Gemma2ForCausalLM
// and Gemma3ForCausalLM), composed of the per-op float64 references, with weights given as the
// values the GPU holds.
import type { ModelConfig } from '../../src/model/config';
import { attentionRef } from './attention';
import { geluRef, ropeRef } from './elementwise';
import { linear, meanLossRef, type RefLinear } from './llama';
import { rmsnormRef } from './norm';

export interface RefGemmaLayer {
  inputNorm: ArrayLike<number>;
  postAttnNorm: ArrayLike<number>;
  preFfNorm: ArrayLike<number>;
  postFfNorm: ArrayLike<number>;
  /** Gemma 3's per-head norms of q and k, [head_dim] each, stored minus one like the others. */
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

export interface RefGemma {
  c: ModelConfig;
  embed: ArrayLike<number>;
  layers: RefGemmaLayer[];
  norm: ArrayLike<number>;
  invFreq: ArrayLike<number>;
  /** Gemma 3: the local layers' RoPE (rope_local_base_freq). */
  invFreqLocal?: ArrayLike<number>;
}

/** Gemma's RMSNorm: x / √(mean(x²) + eps) · (1 + w). */
const norm = (x: Float64Array, w: ArrayLike<number>, T: number, c: ModelConfig, width = c.hidden) =>
  rmsnormRef(
    x,
    Float64Array.from(w, (v) => 1 + v),
    T,
    width,
    c.norm.eps,
  );

export function gemmaLogitsRef(
  m: RefGemma,
  ids: ArrayLike<number>,
  pos: ArrayLike<number>,
  start: ArrayLike<number>,
): Float64Array {
  const { c } = m;
  const g = c.gemma!;
  const T = ids.length,
    H = c.hidden;
  let x = new Float64Array(T * H);
  for (let t = 0; t < T; t++) for (let i = 0; i < H; i++) x[t * H + i] = m.embed[ids[t] * H + i] * c.embedScale;
  for (const [l, L] of m.layers.entries()) {
    // local layers: a sliding window of the last `window` tokens of the sequence, itself included,
    // and (Gemma 3) their own RoPE base
    const local = c.localLayers[l];
    const w = c.localWindow!;
    const s = local ? Array.from(start, (s0, t) => Math.max(s0, t - w + 1)) : start;
    const inv = local && m.invFreqLocal ? m.invFreqLocal : m.invFreq;
    const a = norm(x, L.inputNorm, T, c);
    // Gemma 3: a (1 + w) RMSNorm over each head's d values of q and of k, before RoPE
    const headNorm = (y: Float64Array, nw: ArrayLike<number> | undefined, n: number) =>
      nw ? norm(y, nw, T * n, c, c.headDim) : y;
    const q = ropeRef(headNorm(linear(a, T, L.q), L.qNorm, c.heads), pos, inv, T, c.heads);
    const k = ropeRef(headNorm(linear(a, T, L.k), L.kNorm, c.kvHeads), pos, inv, T, c.kvHeads);
    const attn = attentionRef(q, k, linear(a, T, L.v), s, T, c.heads, c.kvHeads, c.headDim, {
      scale: 1 / Math.sqrt(g.queryPreAttnScalar),
      softcap: g.attnSoftcap ?? undefined,
    });
    const pa = norm(linear(attn, T, L.o), L.postAttnNorm, T, c);
    const x2 = x.map((v, i) => v + pa[i]);
    const mm = norm(x2, L.preFfNorm, T, c);
    const gate = geluRef(linear(mm, T, L.gate), 'tanh'),
      up = linear(mm, T, L.up);
    const pf = norm(
      linear(
        gate.map((v, i) => v * up[i]),
        T,
        L.down,
      ),
      L.postFfNorm,
      T,
      c,
    );
    x = x2.map((v, i) => v + pf[i]);
  }
  const z = linear(norm(x, m.norm, T, c), T, { w: m.embed, out: c.vocab, in: H });
  const cap = c.finalSoftcap;
  return cap ? z.map((v) => cap * Math.tanh(v / cap)) : z;
}

export function gemmaLossRef(
  m: RefGemma,
  ids: ArrayLike<number>,
  labels: ArrayLike<number>,
  pos: ArrayLike<number>,
  start: ArrayLike<number>,
): number {
  return meanLossRef(gemmaLogitsRef(m, ids, pos, start), labels, m.c.vocab);
}
