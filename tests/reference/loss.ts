// Float64 reference of token-level cross-entropy with ignored labels (−100), and what TRL's
// SFTTrainer logs of each row: the entropy of softmax(z) (every row) and whether the first
// argmax is the label (torch.argmax's pick on ties; 0 where the label is ignored).
export function crossEntropyRef(
  z: ArrayLike<number>,
  labels: ArrayLike<number>,
  T: number,
  V: number,
): { loss: Float64Array; grad: Float64Array; entropy: Float64Array; hit: Float64Array } {
  const loss = new Float64Array(T);
  const grad = new Float64Array(T * V);
  const entropy = new Float64Array(T);
  const hit = new Float64Array(T);
  for (let t = 0; t < T; t++) {
    let m = -Infinity,
      argmax = 0;
    for (let i = 0; i < V; i++) {
      if (z[t * V + i] > m) [m, argmax] = [z[t * V + i], i];
    }
    let s = 0;
    for (let i = 0; i < V; i++) s += Math.exp(z[t * V + i] - m);
    const lse = m + Math.log(s);
    for (let i = 0; i < V; i++) {
      const p = Math.exp(z[t * V + i] - lse);
      entropy[t] -= p * (z[t * V + i] - lse);
    }
    if (labels[t] < 0) continue;
    hit[t] = argmax === labels[t] ? 1 : 0;
    loss[t] = lse - z[t * V + labels[t]];
    for (let i = 0; i < V; i++) grad[t * V + i] = Math.exp(z[t * V + i] - lse) - (i === labels[t] ? 1 : 0);
  }
  return { loss, grad, entropy, hit };
}
