// Float64 references for SwiGLU and RoPE.

export const siluRef = (g: number) => g / (1 + Math.exp(-g));

export function swigluRef(g: ArrayLike<number>, u: ArrayLike<number>): Float64Array {
  return Float64Array.from(g, (gi, i) => siluRef(gi) * u[i]);
}

/** Rotate-half RoPE on x [T, heads, d]; the angle is f32(pos · f32(inv_freq)), as transformers has it. */
export function ropeRef(x: ArrayLike<number>, pos: ArrayLike<number>, invFreq: ArrayLike<number>, T: number, heads: number): Float64Array {
  const half = invFreq.length;
  const d = 2 * half;
  const y = Float64Array.from(x);
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < heads; h++) {
      for (let i = 0; i < half; i++) {
        const angle = Math.fround(pos[t] * Math.fround(invFreq[i]));
        const a = x[(t * heads + h) * d + i], b = x[(t * heads + h) * d + i + half];
        y[(t * heads + h) * d + i] = a * Math.cos(angle) - b * Math.sin(angle);
        y[(t * heads + h) * d + i + half] = b * Math.cos(angle) + a * Math.sin(angle);
      }
    }
  }
  return y;
}
