// Heads out of a fused projection and back (shaders/heads.wgsl), for fused q/k/v weights:
//   gather    dst[t, j] = src[t, map[j]]        src: [T, Ns, d] → dst: [T, n, d]
//   scatter   dsrc[t, map[j]] = ddst[t, j]      its backward (the pieces' maps partition Ns)
import shader from '../../shaders/heads.wgsl?raw';
import type { Gpu, Tensor } from '../gpu/runtime';

const WG = 256;

// The kernel's Params: T tokens, Ns heads in the fused tensor, n in the piece, d per head.
function dims(op: string, fused: Tensor, piece: Tensor, map: Tensor): { T: number; Ns: number; n: number; d: number } {
  if (fused.shape.length !== 3 || piece.shape.length !== 3) throw new Error(`${op}: tensors must be [T, heads, d]`);
  const [T, Ns, d] = fused.shape;
  const [T2, n, d2] = piece.shape;
  if (T2 !== T || d2 !== d || map.numel !== n)
    throw new Error(`${op}: [${fused.shape}] and [${piece.shape}] with ${map.numel} heads mapped do not fit`);
  return { T, Ns, n, d };
}

export function gatherHeads(gpu: Gpu, src: Tensor, map: Tensor, dst: Tensor): Tensor {
  const p = dims('gatherHeads', src, dst, map);
  gpu.dispatch1D(gpu.kernel(shader, 'gather_heads', { WG }), [src, map, dst], p, Math.ceil((p.T * p.n * p.d) / WG));
  return dst;
}

export function scatterHeads(gpu: Gpu, ddst: Tensor, map: Tensor, dsrc: Tensor): Tensor {
  const p = dims('scatterHeads', dsrc, ddst, map);
  gpu.dispatch1D(gpu.kernel(shader, 'scatter_heads', { WG }), [ddst, map, dsrc], p, Math.ceil((p.T * p.n * p.d) / WG));
  return dsrc;
}
