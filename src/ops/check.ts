// Shape checks shared by the ops: a wrong shape is a programming error, caught before any
// GPU work is recorded, with the shapes in the message.
import type { Tensor } from '../gpu/runtime';

export function expectShape(op: string, name: string, t: { shape: readonly number[] }, shape: readonly number[]): void {
  if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
    throw new Error(`${op}: ${name} has shape [${t.shape.join(', ')}], expected [${shape.join(', ')}]`);
  }
}

export function rows2d(op: string, name: string, t: Tensor): [number, number] {
  if (t.shape.length !== 2) throw new Error(`${op}: ${name} must be 2-D, got [${t.shape.join(', ')}]`);
  return [t.shape[0], t.shape[1]];
}

/**
 * Threads for a kernel that reduces rows of n values with one workgroup per row
 * (shaders/reduce.wgsl): about 8 values per thread, 32 to 256 threads. Wider groups only add
 * idle threads and barrier steps: on SwiftShader a 64-wide softmax over 166 keys runs six
 * times faster than a 256-wide one.
 */
export function rowWorkgroupSize(n: number): number {
  let wg = 32;
  while (wg < 256 && wg * 8 < n) wg *= 2;
  return wg;
}
