// Float64 reference of causal grouped-query attention with per-token start positions (and
// Gemma 2's options: another scale, soft-capped scores).
export function attentionRef(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  start: ArrayLike<number>,
  T: number,
  H: number,
  Hkv: number,
  d: number,
  opt: { scale?: number; softcap?: number } = {},
): Float64Array {
  const o = new Float64Array(T * H * d);
  const group = H / Hkv;
  const scale = opt.scale ?? 1 / Math.sqrt(d);
  const cap = (x: number) => (opt.softcap ? opt.softcap * Math.tanh(x / opt.softcap) : x);
  for (let h = 0; h < H; h++) {
    const j = Math.floor(h / group);
    for (let t = 0; t < T; t++) {
      const scores: number[] = [];
      for (let s = start[t]; s <= t; s++) {
        let dot = 0;
        for (let e = 0; e < d; e++) dot += q[(t * H + h) * d + e] * k[(s * Hkv + j) * d + e];
        scores.push(cap(dot * scale));
      }
      const m = Math.max(...scores);
      const w = scores.map((x) => Math.exp(x - m));
      const sum = w.reduce((a, b) => a + b, 0);
      for (let s = start[t]; s <= t; s++) {
        const pw = w[s - start[t]] / sum;
        for (let e = 0; e < d; e++) o[(t * H + h) * d + e] += pw * v[(s * Hkv + j) * d + e];
      }
    }
  }
  return o;
}
