// Float64 references for the linear-algebra kernels.

/** C[M,N] = alpha · op(A) · op(B) (+ C0), all in float64. A is [M,K] (or [K,M] with transA). */
export function gemmRef(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  M: number,
  N: number,
  K: number,
  o: { transA?: boolean; transB?: boolean; alpha?: number; c0?: ArrayLike<number> } = {},
): Float64Array {
  const c = new Float64Array(M * N);
  const alpha = o.alpha ?? 1;
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let s = 0;
      for (let k = 0; k < K; k++) {
        const av = o.transA ? a[k * M + m] : a[m * K + k];
        const bv = o.transB ? b[n * K + k] : b[k * N + n];
        s += av * bv;
      }
      c[m * N + n] = alpha * s + (o.c0 ? o.c0[m * N + n] : 0);
    }
  }
  return c;
}

/** Central finite differences of a scalar function of one array, in float64. */
export function finiteDifferences(loss: (v: Float64Array) => number, at: ArrayLike<number>, eps = 1e-4): Float64Array {
  const v = Float64Array.from(at);
  const g = new Float64Array(v.length);
  for (let k = 0; k < v.length; k++) {
    const old = v[k];
    v[k] = old + eps;
    const lp = loss(v);
    v[k] = old - eps;
    const lm = loss(v);
    v[k] = old;
    g[k] = (lp - lm) / (2 * eps);
  }
  return g;
}

/** L = Σ (x Wᵀ) ⊙ G, the loss whose gradients the linear backward kernels compute. */
export function linearLoss(
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  G: ArrayLike<number>,
  T: number,
  inF: number,
  outF: number,
): number {
  const y = gemmRef(x, w, T, outF, inF, { transB: true });
  let s = 0;
  for (let i = 0; i < y.length; i++) s += y[i] * G[i];
  return s;
}

export function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}
