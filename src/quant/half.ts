// 16-bit floats as checkpoints store them: BF16 (the top half of an f32) or IEEE F16, two to a
// u32 on the GPU (element 2j in the low half of word j), read by shaders/half.wgsl.

export type HalfDtype = 'BF16' | 'F16';

/** f32 → bf16 bits, round to nearest even (what torch's .to(torch.bfloat16) does). */
export function toBF16Bits(x: number): number {
  const u = new Uint32Array(Float32Array.of(x).buffer)[0];
  if ((u & 0x7fffffff) > 0x7f800000) return (u >>> 16) | 0x40; // NaN stays NaN
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

/** f32 → f16 bits, round to nearest even, with subnormals and overflow to infinity. */
export function toF16Bits(x: number): number {
  const f = Math.fround(x);
  const sign = f < 0 || Object.is(f, -0) ? 0x8000 : 0;
  const a = Math.abs(f);
  if (Number.isNaN(f)) return 0x7e00;
  if (a >= 65520) return sign | 0x7c00; // rounds past the largest f16
  if (a < 2 ** -24 * 0.5) return sign;
  // Scale into the integer grid of the target exponent and round half to even.
  let e = Math.max(Math.floor(Math.log2(a)), -14);
  while (a >= 2 ** (e + 1)) e++; // log2 can land a hair off near powers of two
  while (e > -14 && a < 2 ** e) e--;
  const m = a / 2 ** (e - 10); // exact: a power-of-two scale
  let q = Math.round(m);
  if (m - Math.trunc(m) === 0.5 && q % 2 === 1) q -= 1; // ties to even
  if (e === -14 && q < 1024) return sign | q; // subnormal
  let exp = e + 15;
  if (q === 2048) {
    q = 1024;
    exp += 1;
  }
  if (exp >= 31) return sign | 0x7c00;
  return sign | (exp << 10) | (q - 1024);
}

export function halfBitsToFloat(bits: number, dtype: HalfDtype): number {
  if (dtype === 'BF16') return new Float32Array(Uint32Array.of(bits << 16).buffer)[0];
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >> 10) & 0x1f;
  const frac = bits & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** Pack values into 16-bit words for the GPU; also returns the values as rounded. */
export function packHalf(values: ArrayLike<number>, dtype: HalfDtype): { words: Uint32Array; rounded: Float32Array } {
  const words = new Uint32Array(Math.ceil(values.length / 2));
  const rounded = new Float32Array(values.length);
  const toBits = dtype === 'BF16' ? toBF16Bits : toF16Bits;
  for (let i = 0; i < values.length; i++) {
    const b = toBits(values[i]);
    words[i >> 1] |= i & 1 ? b << 16 : b;
    rounded[i] = halfBitsToFloat(b, dtype);
  }
  return { words, rounded };
}
