// Embedding lookup and bias addition from frozen 16-bit tables (shaders/rows.wgsl). Both are
// frozen, so neither has a backward: LoRA's gradients never need the embedding's.
import half from '../../shaders/half.wgsl?raw';
import rows from '../../shaders/rows.wgsl?raw';
import type { Gpu, Tensor } from '../gpu/runtime';
import type { HalfMatrix } from './half-matrix';
import type { HalfVector } from './norm';
import { rows2d } from './check';

const ROWS = `${half}\n${rows}`;
const WG = 256;

/**
 * x[t] = E[ids[t]] · scale; `ids` is u32 [T], checked against the vocabulary by the caller.
 * Each row block of E fills the tokens whose ids fall in it. `out`: x, a new tensor by default;
 * `scale`: 1 by default (Gemma: √hidden).
 */
export function embed(gpu: Gpu, table: HalfMatrix, ids: Tensor, o: { out?: Tensor; scale?: number } = {}): Tensor {
  const [V, H] = table.shape;
  const T = ids.numel;
  const x = o.out ?? gpu.tensor([T, H]),
    scale = o.scale ?? 1;
  if (x.shape[0] !== T || x.shape[1] !== H)
    throw new Error(`embed: x must be [${T}, ${H}], got [${x.shape.join(', ')}]`);
  const k = gpu.kernel(ROWS, 'embed', { WG, BF16: table.dtype === 'BF16' });
  for (const b of table.blocks) {
    gpu.dispatch1D(k, [b.words, ids, x], { T, N: H, V, scale, row0: b.row0, rows: b.rows }, Math.ceil((T * H) / WG));
  }
  return x;
}

/** y[t] += b for every row t. */
export function addBias(gpu: Gpu, y: Tensor, b: HalfVector): void {
  const [T, N] = rows2d('addBias', 'y', y);
  if (b.length !== N) throw new Error(`addBias: the bias has ${b.length} values, y has ${N} columns`);
  const k = gpu.kernel(ROWS, 'add_bias', { WG, BF16: b.dtype === 'BF16' });
  // add_bias reads only T and N of the struct it shares with embed.
  gpu.dispatch1D(k, [b.words, y], { T, N, V: 0, scale: 1, row0: 0, rows: 0 }, Math.ceil((T * N) / WG));
}
