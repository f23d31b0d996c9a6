// A frozen 16-bit matrix on the GPU (embeddings, the output head, 16-bit linears), held in row
// blocks of at most one binding each. A device binds at most maxStorageBufferBindingSize bytes
// to one kernel argument (128 MiB by the spec's default, 1–4 GiB on desktop GPUs), and
// falcon-7b's embedding alone is 591 MB, Gemma 2's 1.18 GB: a table larger than the binding is
// split by rows, and the kernels that read it (embed, halfLinear) run once per block.
//
// Two values per u32 as the checkpoint stores them (shaders/half.wgsl). A block's element
// count is even, so every block starts on a word and bytes map to blocks without shifting.
import type { Gpu, Tensor } from '../gpu/runtime';
import type { HalfDtype } from '../quant/half';
import type { HalfVector } from './norm';

export interface HalfBlock {
  row0: number;
  rows: number;
  words: Tensor; // ceil(rows · cols / 2) u32
}

/** [rows, cols] 16-bit, in row blocks; one block unless the matrix outgrows one binding. */
export interface HalfMatrix {
  shape: [number, number];
  dtype: HalfDtype;
  blocks: HalfBlock[];
}

/** Rows per block so that a block fits `maxBytes` and holds an even number of values. */
export function rowsPerBlock(rows: number, cols: number, maxBytes: number): number {
  let n = Math.min(rows, Math.floor(maxBytes / (cols * 2)));
  if (n < rows && cols % 2 === 1) n -= n % 2;
  if (n < 1) throw new Error(`a 16-bit row of ${cols} values does not fit a binding of ${maxBytes} bytes`);
  return n;
}

/**
 * Allocate a 16-bit tensor: a matrix splits into row blocks of at most `maxBytes` (default the
 * device's binding limit); any other shape is one block of [n, 1].
 */
export function allocHalf(gpu: Gpu, shape: readonly number[], dtype: HalfDtype, maxBytes = gpu.maxBinding): HalfMatrix {
  const [rows, cols] = shape.length === 2 ? [shape[0], shape[1]] : [shape.reduce((a, b) => a * b, 1), 1];
  const step = shape.length === 2 ? rowsPerBlock(rows, cols, maxBytes) : rows;
  const blocks: HalfBlock[] = [];
  for (let row0 = 0; row0 < rows; row0 += step) {
    const n = Math.min(step, rows - row0);
    blocks.push({ row0, rows: n, words: gpu.tensor([Math.ceil((n * cols) / 2)], 'u32') });
  }
  return { shape: [rows, cols], dtype, blocks };
}

/**
 * Write `bytes` (whole 16-bit values, a multiple of 4 bytes but at the end) at `byteOffset` of the
 * matrix, across blocks.
 */
export function writeHalf(gpu: Gpu, m: HalfMatrix, bytes: Uint8Array, byteOffset = 0): void {
  const rowBytes = m.shape[1] * 2;
  for (const b of m.blocks) {
    const start = b.row0 * rowBytes,
      end = (b.row0 + b.rows) * rowBytes;
    const lo = Math.max(start, byteOffset),
      hi = Math.min(end, byteOffset + bytes.length);
    if (lo >= hi) continue;
    let piece = bytes.subarray(lo - byteOffset, hi - byteOffset);
    if (piece.length % 4) piece = padTo4(piece);
    gpu.write(b.words, piece, lo - start);
  }
}

/** A 16-bit tensor from host words (packHalf's, or the checkpoint's bytes), split as allocHalf splits. */
export function uploadHalf(
  gpu: Gpu,
  shape: readonly number[],
  dtype: HalfDtype,
  words: Uint32Array,
  maxBytes = gpu.maxBinding,
): HalfMatrix {
  const m = allocHalf(gpu, shape, dtype, maxBytes);
  writeHalf(gpu, m, new Uint8Array(words.buffer, words.byteOffset, words.byteLength));
  return m;
}

/** The matrix's bytes as the checkpoint stores them: rows · cols · 2. */
export async function readHalf(gpu: Gpu, m: HalfMatrix): Promise<Uint8Array> {
  const out = new Uint8Array(m.shape[0] * m.shape[1] * 2);
  for (const b of m.blocks) {
    const at = b.row0 * m.shape[1] * 2,
      n = b.rows * m.shape[1] * 2;
    out.set(new Uint8Array(await gpu.readBytes(b.words, n)), at);
  }
  return out;
}

/** A 16-bit tensor as the norm and bias kernels read it: one buffer. */
export function halfVector(m: HalfMatrix): HalfVector {
  if (m.blocks.length !== 1)
    throw new Error(`a 16-bit vector of ${m.shape[0] * m.shape[1]} values does not fit one binding`);
  return { words: m.blocks[0].words, length: m.shape[0] * m.shape[1], dtype: m.dtype };
}

export function halfBuffers(m: HalfMatrix): Tensor[] {
  return m.blocks.map((b) => b.words);
}

export function releaseHalf(m: HalfMatrix): void {
  for (const b of m.blocks) b.words.release();
}

function padTo4(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(bytes.length + 4 - (bytes.length % 4));
  out.set(bytes);
  return out;
}
