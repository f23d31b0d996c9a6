// Float64 reference of RMSNorm: y = x · w / √(mean(x²) + eps), per row.
export function rmsnormRef(
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  T: number,
  H: number,
  eps: number,
): Float64Array {
  const y = new Float64Array(T * H);
  for (let t = 0; t < T; t++) {
    let ss = 0;
    for (let i = 0; i < H; i++) ss += x[t * H + i] ** 2;
    const r = 1 / Math.sqrt(ss / H + eps);
    for (let i = 0; i < H; i++) y[t * H + i] = x[t * H + i] * r * w[i];
  }
  return y;
}

// Float64 reference of LayerNorm: y = (x − μ) / √(var + eps) · w + b, per row (biased variance).
export function layernormRef(
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  b: ArrayLike<number>,
  T: number,
  H: number,
  eps: number,
): Float64Array {
  const y = new Float64Array(T * H);
  for (let t = 0; t < T; t++) {
    let mu = 0;
    for (let i = 0; i < H; i++) mu += x[t * H + i];
    mu /= H;
    let v = 0;
    for (let i = 0; i < H; i++) v += (x[t * H + i] - mu) ** 2;
    const r = 1 / Math.sqrt(v / H + eps);
    for (let i = 0; i < H; i++) y[t * H + i] = (x[t * H + i] - mu) * r * w[i] + b[i];
  }
  return y;
}
