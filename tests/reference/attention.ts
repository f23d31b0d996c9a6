// Float64 reference of causal grouped-query attention with per-token start positions.
export function attentionRef(
  q: ArrayLike<number>, k: ArrayLike<number>, v: ArrayLike<number>, start: ArrayLike<number>,
  T: number, H: number, Hkv: number, d: number,
): Float64Array {
  const o = new Float64Array(T * H * d);
  const group = H / Hkv;
  const scale = 1 / Math.sqrt(d);
  for (let h = 0; h < H; h++) {
    const j = Math.floor(h / group);
    for (let t = 0; t < T; t++) {
      const scores: number[] = [];
      for (let s = start[t]; s <= t; s++) {
        let dot = 0;
        for (let e = 0; e < d; e++) dot += q[(t * H + h) * d + e] * k[(s * Hkv + j) * d + e];
        scores.push(dot * scale);
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
