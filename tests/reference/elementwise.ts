// Float64 references for SwiGLU, GELU and RoPE.

export const siluRef = (g: number) => g / (1 + Math.exp(-g));

export function swigluRef(g: ArrayLike<number>, u: ArrayLike<number>): Float64Array {
  return Float64Array.from(g, (gi, i) => siluRef(gi) * u[i]);
}

/**
 * erf and erfc in float64: erf's Maclaurin series below |x| = 3 (alternating terms, a few
 * digits lost to cancellation, far under f32's), erfc's continued fraction above (60 terms,
 * evaluated from the tail). erfc is computed directly in the upper tail, where 1 − erf would
 * cancel to nothing.
 */
export function erfRef(x: number): number {
  const z = Math.abs(x);
  if (z < 3) {
    let term = z,
      sum = z;
    for (let n = 1; n < 100; n++) {
      term *= (-z * z) / n;
      sum += term / (2 * n + 1);
      if (Math.abs(term) < 1e-17) break;
    }
    return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * sum;
  }
  return Math.sign(x) * (1 - erfcTail(z));
}

export function erfcRef(x: number): number {
  if (x >= 3) return erfcTail(x);
  if (x <= -3) return 2 - erfcTail(-x);
  return 1 - erfRef(x);
}

function erfcTail(z: number): number {
  let k = z;
  for (let n = 60; n >= 1; n--) k = z + n / 2 / k;
  return Math.exp(-z * z) / (Math.sqrt(Math.PI) * k);
}

/**
 * GELU: exact, a · ½ erfc(−a / √2), or transformers' tanh approximation written as
 * a · σ(2u) = ½ a (1 + tanh u) — both free of cancellation in the negative tail.
 */
export function geluRef(a: ArrayLike<number>, approximate: 'none' | 'tanh'): Float64Array {
  return Float64Array.from(a, (v) =>
    approximate === 'tanh'
      ? v / (1 + Math.exp(-2 * Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)))
      : 0.5 * v * erfcRef(-v / Math.SQRT2),
  );
}

/** Rotate-half RoPE on x [T, heads, d]; the angle is f32(pos · f32(inv_freq)), as transformers has it. */
export function ropeRef(
  x: ArrayLike<number>,
  pos: ArrayLike<number>,
  invFreq: ArrayLike<number>,
  T: number,
  heads: number,
): Float64Array {
  const half = invFreq.length;
  const d = 2 * half;
  const y = Float64Array.from(x);
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < heads; h++) {
      for (let i = 0; i < half; i++) {
        const angle = Math.fround(pos[t] * Math.fround(invFreq[i]));
        const a = x[(t * heads + h) * d + i],
          b = x[(t * heads + h) * d + i + half];
        y[(t * heads + h) * d + i] = a * Math.cos(angle) - b * Math.sin(angle);
        y[(t * heads + h) * d + i + half] = b * Math.cos(angle) + a * Math.sin(angle);
      }
    }
  }
  return y;
}
