// WebGPU for the Node tests: Dawn on SwiftShader (src/node/dawn.ts), so results do not depend
// on the machine. One device per test file, shared by its tests.
import type { Gpu } from '../src/gpu/runtime';
import { nodeGpu } from '../src/node/dawn';

let shared: Promise<Gpu> | null = null;

/** The file's shared device. */
export function testGpu(): Promise<Gpu> {
  shared ??= newTestGpu();
  return shared;
}

/** A device of its own, for tests that destroy or lose it. */
export function newTestGpu(): Promise<Gpu> {
  return nodeGpu({ swiftshader: true });
}
