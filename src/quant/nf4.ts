// NF4 on the CPU, in bitsandbytes' layout and arithmetic (REFERENCE.md), so that our bytes are
// the bytes `bnb.functional.quantize_4bit(w, quant_type="nf4")` writes, and pre-quantized
// `*-bnb-4bit` checkpoints load as they are.
//
//   quantize:   per block of `blocksize` elements of the row-major flattened weight,
//               absmax = max |x|;  r = 1/absmax (f32);  code = #{thresholds t : x·r > t}
//   pack:       element 2j in the high nibble of byte j, 2j+1 in the low nibble; an odd
//               length pads the last low nibble with the code of 0.0 (as bitsandbytes loads
//               the missing element as zero)
//   dequantize: NF4_CODE[code] · absmax[block]
//
// Every step is f32 arithmetic written with Math.fround, in the order bitsandbytes' CUDA kernel
// uses. One known difference: that kernel is built with --use_fast_math, so its 1/absmax is
// `rcp.approx`, which is 1 ulp off the correctly rounded reciprocal for about 13% of mantissas.
// We use the correctly rounded one (as the GPU quantizer in shaders/nf4_quantize.wgsl does);
// a code can differ only where x·r falls within an ulp of a threshold, a tie either way.

/** The 16 NF4 values, index 0..15 (bitsandbytes `get_4bit_type("nf4")`). */
export const NF4_CODE = Float32Array.of(
  -1.0,
  -0.6961928009986877,
  -0.5250730514526367,
  -0.39491748809814453,
  -0.28444138169288635,
  -0.18477343022823334,
  -0.09105003625154495,
  0.0,
  0.07958029955625534,
  0.16093020141124725,
  0.24611230194568634,
  0.33791524171829224,
  0.44070982933044434,
  0.5626170039176941,
  0.7229568362236023,
  1.0,
);

/**
 * The decision thresholds of bitsandbytes' `dQuantizeNF4`, as f32: threshold k separates code
 * k from code k+1, and a value exactly on a threshold takes the lower code (`x > t`).
 */
export const NF4_THRESHOLDS = Float32Array.of(
  -0.8480964004993439,
  -0.6106329262256622,
  -0.4599952697753906,
  -0.33967943489551544,
  -0.23460740596055984,
  -0.13791173323988914,
  -0.045525018125772476,
  0.03979014977812767,
  0.1202552504837513,
  0.2035212516784668,
  0.2920137718319893,
  0.3893125355243683,
  0.5016634166240692,
  0.6427869200706482,
  0.8614784181118011,
);

export const NESTED_BLOCKSIZE = 256;

/** Double quantization of the absmax values (bnb_4bit_use_double_quant). */
export interface NestedAbsmax {
  /** 8-bit indices into `code`, one per NF4 block. */
  codes: Uint8Array;
  /** One f32 scale per 256 NF4 blocks. */
  absmax2: Float32Array;
  /** Mean of the absmax values, subtracted before quantizing them. */
  offset: number;
  /** The 256-entry signed dynamic map (bitsandbytes `create_dynamic_map()`). */
  code: Float32Array;
  blocksize: number;
}

export interface NF4Tensor {
  /** ceil(length / 2) bytes, high nibble first. */
  packed: Uint8Array;
  /** One f32 per block; absent when `nested` holds them. */
  absmax: Float32Array;
  blocksize: number;
  /** Number of elements. */
  length: number;
  nested?: NestedAbsmax;
}

export class QuantizationError extends Error {
  override name = 'QuantizationError';
}

export function checkBlocksize(blocksize: number): void {
  if (!Number.isInteger(blocksize) || blocksize < 32 || blocksize > 4096 || (blocksize & (blocksize - 1)) !== 0) {
    throw new QuantizationError(`NF4 blocksize must be a power of two from 32 to 4096, got ${blocksize}`);
  }
}

function checkFinite(values: Float32Array, what: string): void {
  for (let i = 0; i < values.length; i++) {
    if (!Number.isFinite(values[i])) {
      throw new QuantizationError(
        `${what} has ${values[i]} at element ${i}: NF4 needs finite weights. The checkpoint is ` +
          'corrupt or was saved after a diverged run; re-download it or pick another revision.',
      );
    }
  }
}

/** The NF4 code of a value already divided by its block's absmax. */
export function nf4Index(normed: number): number {
  let code = 0;
  for (let k = 0; k < 15; k++) if (normed > NF4_THRESHOLDS[k]) code++;
  return code;
}

export function quantizeNF4(values: Float32Array, blocksize = 64, doubleQuant = false): NF4Tensor {
  checkBlocksize(blocksize);
  checkFinite(values, 'the weight');
  const n = values.length;
  const nblocks = Math.ceil(n / blocksize);
  const absmax = new Float32Array(nblocks);
  const packed = new Uint8Array(Math.ceil(n / 2));
  const f = Math.fround;
  for (let b = 0; b < nblocks; b++) {
    const start = b * blocksize;
    const end = Math.min(n, start + blocksize);
    let m = 0;
    for (let i = start; i < end; i++) m = Math.max(m, Math.abs(values[i]));
    absmax[b] = m;
    // 1/0 = Inf and 0·Inf = NaN, which exceeds no threshold: an all-zero block is all code 0,
    // exactly as bitsandbytes writes it.
    const r = f(1 / m);
    for (let i = start; i < end + (end & 1); i += 2) {
      const hi = nf4Index(f(values[i] * r));
      const lo = nf4Index(f((i + 1 < n ? values[i + 1] : 0) * r));
      packed[i >> 1] = (hi << 4) | lo;
    }
  }
  const q: NF4Tensor = { packed, absmax, blocksize, length: n };
  if (doubleQuant) q.nested = quantizeAbsmax(absmax);
  return q;
}

/** The absmax values of `q`, undoing double quantization where it was used. */
export function nf4Absmax(q: NF4Tensor): Float32Array {
  return q.nested ? dequantizeAbsmax(q.nested) : q.absmax;
}

export function dequantizeNF4(q: NF4Tensor): Float32Array {
  checkBlocksize(q.blocksize);
  const absmax = nf4Absmax(q);
  if (q.packed.length !== Math.ceil(q.length / 2) || absmax.length !== Math.ceil(q.length / q.blocksize)) {
    throw new QuantizationError(
      `NF4 tensor of ${q.length} elements needs ${Math.ceil(q.length / 2)} bytes and ` +
        `${Math.ceil(q.length / q.blocksize)} absmax values, got ${q.packed.length} and ${absmax.length}`,
    );
  }
  const out = new Float32Array(q.length);
  for (let i = 0; i < q.length; i++) {
    const byte = q.packed[i >> 1];
    const code = i & 1 ? byte & 15 : byte >> 4;
    out[i] = Math.fround(NF4_CODE[code] * absmax[Math.floor(i / q.blocksize)]);
  }
  return out;
}

// ---- double quantization: the absmax values in 8 bits --------------------------------------

/**
 * bitsandbytes' signed dynamic map (`create_dynamic_map(signed=True, max_exponent_bits=7,
 * total_bits=8)`): for i = 0..6, the midpoints of torch.linspace(0.1, 1, 2^i + 1) scaled by
 * 10^(i-6), with both signs; then 0 and 1, sorted. Computed in f32 as torch's default CPU
 * kernel does (multiply, then add). Checkpoints carry their own map (`nested_quant_map`), which
 * loading uses as it is.
 */
export function dynamicMap(): Float32Array {
  const f = Math.fround;
  const values: number[] = [];
  for (let i = 0; i < 7; i++) {
    const steps = 2 ** i + 1;
    const start = f(0.1);
    const end = 1;
    const step = f(f(end - start) / (steps - 1));
    const b: number[] = [];
    for (let k = 0; k < steps; k++) {
      b.push(k < steps >> 1 ? f(start + f(step * k)) : f(end - f(step * (steps - 1 - k))));
    }
    const scale = f(10 ** (i - 6));
    for (let k = 0; k + 1 < steps; k++) {
      const v = f(scale * f(f(b[k] + b[k + 1]) / 2));
      values.push(v, -v);
    }
  }
  values.push(0, 1);
  return Float32Array.from(values.sort((a, b) => a - b));
}

/**
 * The index bitsandbytes' CUDA `dQuantize` picks for a normalised value: a binary search over
 * the sorted 256-entry map, then the nearer of the final pivot and its neighbour on the side
 * the value lies, by f32 midpoint (a tie stays at the pivot).
 */
export function dynamicIndex(code: Float32Array, x: number): number {
  const f = Math.fround;
  let pivot = 127;
  let upperPivot = 255;
  let lowerPivot = 0;
  let lower = -1;
  let upper = 1;
  let val = code[pivot];
  for (let i = 64; i > 0; i >>= 1) {
    if (x > val) {
      lowerPivot = pivot;
      lower = val;
      pivot += i;
    } else {
      upperPivot = pivot;
      upper = val;
      pivot -= i;
    }
    val = code[pivot];
  }
  if (upperPivot === 255) upper = code[255];
  if (lowerPivot === 0) lower = code[0];
  if (x > val) return x > f(f(upper + val) * 0.5) ? upperPivot : pivot;
  return x < f(f(lower + val) * 0.5) ? lowerPivot : pivot;
}

export function quantizeAbsmax(absmax: Float32Array, code = dynamicMap()): NestedAbsmax {
  const f = Math.fround;
  // torch takes the mean in f32 in its own summation order; we sum in f64 and round once.
  // The offset travels with the tensor, so loading never recomputes it.
  let sum = 0;
  for (const v of absmax) sum += v;
  const offset = f(sum / absmax.length);
  const nblocks = Math.ceil(absmax.length / NESTED_BLOCKSIZE);
  const codes = new Uint8Array(absmax.length);
  const absmax2 = new Float32Array(nblocks);
  for (let b = 0; b < nblocks; b++) {
    const start = b * NESTED_BLOCKSIZE;
    const end = Math.min(absmax.length, start + NESTED_BLOCKSIZE);
    let m = 0;
    for (let i = start; i < end; i++) m = Math.max(m, Math.abs(f(absmax[i] - offset)));
    absmax2[b] = m;
    const r = f(1 / m);
    for (let i = start; i < end; i++) codes[i] = dynamicIndex(code, f(f(absmax[i] - offset) * r));
  }
  return { codes, absmax2, offset, code, blocksize: NESTED_BLOCKSIZE };
}

export function dequantizeAbsmax(n: NestedAbsmax): Float32Array {
  const f = Math.fround;
  const out = new Float32Array(n.codes.length);
  for (let i = 0; i < out.length; i++) {
    out[i] = f(f(n.code[n.codes[i]] * n.absmax2[Math.floor(i / n.blocksize)]) + n.offset);
  }
  return out;
}
