// The frozen NF4 linear layer y = x Wᵀ on the GPU, forward and backward side by side, and the
// GPU quantizer that produces its weights. W never exists as f32 in GPU memory: the kernels
// dequantize codes as they load them (shaders/nf4.wgsl holds the layout).
import core from '../../shaders/gemm_core.wgsl?raw';
import gemmVariant from '../../shaders/gemm_nf4.wgsl?raw';
import nf4 from '../../shaders/nf4.wgsl?raw';
import gemv from '../../shaders/nf4_gemv.wgsl?raw';
import quantize from '../../shaders/nf4_quantize.wgsl?raw';
import type { Gpu, Tensor } from '../gpu/runtime';
import { checkBlocksize, nf4Absmax, type NF4Tensor } from '../quant/nf4';
import { expectShape, rows2d } from './check';
import { dispatchGemv, GEMV_MAX_ROWS, gemvKernel } from './gemv';
import { gemmGrid, gemmTile, type ProductOptions } from './matmul';

const GEMM_NF4 = `${nf4}\n${gemmVariant}\n${core}`;

const QUANTIZE_NF4 = `${nf4}\n${quantize}`;

/** An NF4 weight on the GPU: `shape` is PyTorch's [out, in]. */
export interface NF4Weight {
  packed: Tensor; // u32 [ceil(out·in / 8)]
  absmax: Tensor; // f32 [ceil(out·in / blocksize)]
  shape: [number, number];
  blocksize: number;
}

/** Upload a CPU-quantized tensor (ours, or a pre-quantized checkpoint's) as it is. */
export function uploadNF4(gpu: Gpu, q: NF4Tensor, shape: [number, number]): NF4Weight {
  checkBlocksize(q.blocksize);
  if (shape[0] * shape[1] !== q.length)
    throw new Error(`uploadNF4: shape [${shape}] does not hold ${q.length} elements`);
  const words = new Uint32Array(Math.ceil(q.packed.length / 4));
  new Uint8Array(words.buffer).set(q.packed);
  const absmax = nf4Absmax(q);
  return {
    packed: gpu.tensor([words.length], 'u32', words),
    absmax: gpu.tensor([absmax.length], 'f32', absmax),
    shape,
    blocksize: q.blocksize,
  };
}

export interface QuantizeOptions {
  /** Values per absmax block (bitsandbytes' default, 64). */
  blocksize?: number;
}

/** Quantize an f32 weight [out, in] already on the GPU, block by block. */
export function quantizeNF4Gpu(gpu: Gpu, w: Tensor, { blocksize = 64 }: QuantizeOptions = {}): NF4Weight {
  checkBlocksize(blocksize);
  const [outF, inF] = rows2d('quantizeNF4Gpu', 'W', w);
  const n = outF * inF;
  const q: NF4Weight = {
    packed: gpu.tensor([Math.ceil(n / 8)], 'u32'),
    absmax: gpu.tensor([Math.ceil(n / blocksize)], 'f32'),
    shape: [outF, inF],
    blocksize,
  };
  gpu.dispatch1D(
    gpu.kernel(QUANTIZE_NF4, 'main', {}, 'nf4_quantize'),
    [w, q.packed, q.absmax],
    { n, blocksize },
    Math.ceil(n / blocksize),
  );
  return q;
}

/**
 * Quantize a host f32 weight [out, in] on the GPU. Its f32 copy goes up a band of rows at a
 * time where it would outgrow `maxBytes` (one binding: falcon-40b's dense_h_to_4h is 1.07 GB
 * in f32, 134 MB in NF4); each band holds whole blocks, so the result is the same bytes.
 * `maxBytes` defaults to the device's binding limit.
 */
export function quantizeNF4Host(
  gpu: Gpu,
  values: Float32Array,
  shape: [number, number],
  { blocksize = 64, maxBytes = gpu.maxBinding }: QuantizeOptions & { maxBytes?: number } = {},
): NF4Weight {
  const [outF, inF] = shape;
  const n = outF * inF;
  if (values.length !== n) throw new Error(`quantizeNF4Host: shape [${shape}] does not hold ${values.length} values`);
  const quantizeBand = (r0: number, rows: number): NF4Weight => {
    const w = gpu.tensor([rows, inF], 'f32', values.subarray(r0 * inF, (r0 + rows) * inF));
    const q = quantizeNF4Gpu(gpu, w, { blocksize });
    w.release();
    return q;
  };
  if (n * 4 <= maxBytes) return quantizeBand(0, outF);
  const unit = blocksize / gcd(inF, blocksize); // rows that make whole blocks (and whole words: blocksize ≥ 64)
  const band = Math.floor(maxBytes / (4 * inF * unit)) * unit;
  if (band < 1)
    throw new Error(`quantizeNF4Host: ${unit} rows of ${inF} f32 values do not fit a binding of ${maxBytes} bytes`);
  const q: NF4Weight = {
    packed: gpu.tensor([Math.ceil(n / 8)], 'u32'),
    absmax: gpu.tensor([Math.ceil(n / blocksize)], 'f32'),
    shape,
    blocksize,
  };
  try {
    for (let r0 = 0; r0 < outF; r0 += band) {
      const part = quantizeBand(r0, Math.min(band, outF - r0));
      gpu.copy(part.packed, q.packed, { to: (r0 * inF) / 8 });
      gpu.copy(part.absmax, q.absmax, { to: (r0 * inF) / blocksize });
      part.packed.release();
      part.absmax.release();
    }
  } catch (e) {
    q.packed.release();
    q.absmax.release();
    throw e;
  }
  return q;
}

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}

/** The packed bytes exactly as bitsandbytes stores them: ceil(n / 2) bytes. */
export async function readNF4Bytes(gpu: Gpu, q: NF4Weight): Promise<Uint8Array> {
  const n = q.shape[0] * q.shape[1];
  return new Uint8Array(await gpu.readBytes(q.packed, Math.ceil(n / 2)));
}

/** LoRA's up-projection, folded into the frozen product: y += scale · h Bᵀ. */
export interface FusedLora {
  h: Tensor; // [T, r]: dropout(x) Aᵀ
  B: Tensor; // [out, r]
  scale: number;
}

export interface NF4LinearOptions extends ProductOptions {
  /** y, [T, out]; a new tensor by default. */
  out?: Tensor;
  /** Adds LoRA's s · h Bᵀ in the same pass (alpha scales it too). */
  lora?: FusedLora;
}

// forward: y = x Wᵀ (+ s · h Bᵀ)    x: [T, in], W: NF4 [out, in], y: [T, out]; h: [T, r], B: [out, r]
export function nf4Linear(gpu: Gpu, x: Tensor, w: NF4Weight, o: NF4LinearOptions = {}): Tensor {
  const [T, inF] = rows2d('nf4Linear', 'x', x);
  const [outF, wIn] = w.shape;
  if (wIn !== inF) throw new Error(`nf4Linear: x has ${inF} features, W is [${w.shape.join(', ')}]`);
  const y = o.out ?? gpu.tensor([T, outF]);
  expectShape('nf4Linear', 'out', y, [T, outF]);
  const lora = o.lora;
  const r = lora ? lora.B.shape[1] : 0;
  if (lora) {
    expectShape('nf4Linear', 'h', lora.h, [T, r]);
    expectShape('nf4Linear', 'B', lora.B, [outF, r]);
  }
  // without LoRA its two bindings are not read: x stands in for them
  const loraBuffers = lora ? [lora.h, lora.B] : [x, x];
  const fused = { LORA: !!lora, ACCUMULATE: !!o.accumulate };
  const blockShift = Math.log2(w.blocksize);
  const alpha = o.alpha ?? 1;
  const scale = lora?.scale ?? 0;
  if (T <= GEMV_MAX_ROWS) {
    const kernel = gemvKernel(gpu, gemv, { ...fused, ALIGNED: inF % 8 === 0 }, 'nf4_gemv', nf4);
    const params = { M: T, N: outF, K: inF, alpha, blockShift, r, scale };
    dispatchGemv(gpu, kernel, [x, w.packed, w.absmax, y, ...loraBuffers], params);
  } else {
    const tile = gemmTile(T, outF);
    const kernel = gpu.kernel(GEMM_NF4, 'main', { ...tile, ...fused, TRANS_B: true }, 'gemm_nf4');
    const params = { M: T, N: outF, K: inF + r, alpha, sA: 0, sB: 0, sC: 0, blockShift, Kw: inF, r, scale };
    gpu.dispatch(kernel, [x, w.packed, w.absmax, y, ...loraBuffers], params, gemmGrid(tile, T, outF));
  }
  return y;
}

// backward, input: dX = dY W    dY: [T, out], W: NF4 [out, in], dX: [T, in]
// (W is frozen: it has no gradient; LoRA's gradients come from ops/lora.ts.) `dx`: a new tensor by default.
export function nf4LinearBackwardInput(
  gpu: Gpu,
  dy: Tensor,
  w: NF4Weight,
  o: ProductOptions & { dx?: Tensor } = {},
): Tensor {
  const [T, outF] = rows2d('nf4LinearBackwardInput', 'dY', dy);
  const [wOut, inF] = w.shape;
  if (wOut !== outF) throw new Error(`nf4LinearBackwardInput: dY has ${outF} features, W is [${w.shape.join(', ')}]`);
  const dx = o.dx ?? gpu.tensor([T, inF]);
  expectShape('nf4LinearBackwardInput', 'dX', dx, [T, inF]);
  const tile = gemmTile(T, inF);
  const constants = { ...tile, TRANS_B: false, ACCUMULATE: !!o.accumulate, LORA: false };
  const kernel = gpu.kernel(GEMM_NF4, 'main', constants, 'gemm_nf4');
  const blockShift = Math.log2(w.blocksize);
  const params = {
    M: T,
    N: inF,
    K: outF,
    alpha: o.alpha ?? 1,
    sA: 0,
    sB: 0,
    sC: 0,
    blockShift,
    Kw: outF,
    r: 0,
    scale: 0,
  };
  gpu.dispatch(kernel, [dy, w.packed, w.absmax, dx, dy, dy], params, gemmGrid(tile, T, inF));
  return dx;
}
