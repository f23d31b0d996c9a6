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
