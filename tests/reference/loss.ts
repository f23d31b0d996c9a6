// Float64 reference of token-level cross-entropy with ignored labels (−100).
export function crossEntropyRef(
  z: ArrayLike<number>,
  labels: ArrayLike<number>,
  T: number,
  V: number,
): { loss: Float64Array; grad: Float64Array } {
  const loss = new Float64Array(T);
  const grad = new Float64Array(T * V);
  for (let t = 0; t < T; t++) {
    if (labels[t] < 0) continue;
    let m = -Infinity;
    for (let i = 0; i < V; i++) m = Math.max(m, z[t * V + i]);
    let s = 0;
    for (let i = 0; i < V; i++) s += Math.exp(z[t * V + i] - m);
    const lse = m + Math.log(s);
    loss[t] = lse - z[t * V + labels[t]];
    for (let i = 0; i < V; i++) grad[t * V + i] = Math.exp(z[t * V + i] - lse) - (i === labels[t] ? 1 : 0);
  }
  return { loss, grad };
}
