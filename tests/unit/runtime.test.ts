import { beforeAll, describe, expect, it } from 'vitest';
import { acquireDevice } from '../../src/gpu/device';
import { Gpu, GpuError } from '../../src/gpu/runtime';
import { dropoutForward } from '../../src/ops/lora';
import { newTestGpu, testGpu } from '../gpu';

let gpu: Gpu;
beforeAll(async () => {
  gpu = await testGpu();
});

describe('GPU runtime', () => {
  it('says what to do when WebGPU or an adapter is missing', async () => {
    await expect(acquireDevice(undefined)).rejects.toThrow(/WebGPU is not available here.*Chrome/);
    const noAdapter = { requestAdapter: async () => null } as unknown as GPU;
    await expect(acquireDevice(noAdapter)).rejects.toThrow(/no GPU adapter was offered/);
  });

  it("asks for the adapter's real limits and reports them", () => {
    expect(gpu.limits.maxStorageBufferBindingSize).toBeGreaterThan(128 << 20);
    expect(gpu.info.limits.maxBufferSize).toBe(gpu.limits.maxBufferSize);
    expect(gpu.info.features).toContain('subgroups');
  });

  it('compiles each (shader, entry, constants) once', () => {
    const code = '@group(0) @binding(0) var<storage, read_write> a: array<f32>; override K: f32 = 1; @compute @workgroup_size(1) fn main() { a[0] = K; }';
    expect(gpu.kernel(code, 'main', { K: 2 })).toBe(gpu.kernel(code, 'main', { K: 2 }));
    expect(gpu.kernel(code, 'main', { K: 3 })).not.toBe(gpu.kernel(code, 'main', { K: 2 }));
  });

  it('folds a 1-D grid over 65535 workgroups into two dimensions', async () => {
    const n = 65535 * 256 + 3 * 256 + 77; // 65539 workgroups of 256
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) data[i] = (i % 1000) + 1;
    const out = await gpu.read(dropoutForward(gpu, gpu.tensor([n], 'f32', data), 0, 0));
    let wrong = 0;
    for (let i = 0; i < n; i++) if (out[i] !== data[i]) wrong++;
    expect(wrong).toBe(0);
  });

  it('refuses a plain dispatch past the per-dimension limit, and bad uniforms', () => {
    const k = gpu.kernel('@compute @workgroup_size(1) fn main() {}', 'main');
    expect(() => gpu.dispatch(k, [], null, [70000])).toThrow(/exceeds 65535 workgroups per dimension/);
    const t = gpu.tensor([4]);
    const k2 = gpu.kernel('@group(0) @binding(0) var<storage, read_write> a: array<f32>; @group(0) @binding(1) var<uniform> n: vec4u; @compute @workgroup_size(1) fn main() { a[0] = f32(n.x); }', 'main');
    expect(() => gpu.dispatch(k2, [t], [-1], [1])).toThrow(/uniform 0 is not a u32/);
  });

  it('refuses a tensor larger than one binding can hold, naming the size', () => {
    const max = Math.min(gpu.limits.maxBufferSize, gpu.limits.maxStorageBufferBindingSize);
    expect(() => gpu.tensor([max / 4 + 1])).toThrow(/more than this GPU binds in one buffer/);
  });

  it('reuses released buffers, and refuses a double release', () => {
    const a = gpu.tensor([1000]);
    const buffer = a.buffer;
    a.release();
    expect(gpu.tensor([990]).buffer).toBe(buffer); // same 256-byte-rounded size
    expect(() => a.release()).toThrow(/released twice/);
  });

  it('makes aligned views into one buffer that kernels, writes and reads address separately', async () => {
    const flat = gpu.tensor([64 * 3]);
    gpu.fill(flat, 0);
    const a = gpu.view(flat, 0, [2, 5]), b = gpu.view(flat, 64, [7]), c = gpu.view(flat, 128, [3]);
    gpu.write(b, Float32Array.of(1, 2, 3, 4, 5, 6, 7));
    gpu.write(c, Float32Array.of(9, 9, 9));
    expect(Array.from(await gpu.read(b))).toEqual([1, 2, 3, 4, 5, 6, 7]);
    const doubled = await gpu.read(dropoutForward(gpu, b, 0.5, 3)); // a kernel reading a view
    expect(doubled.every((v, i) => v === 0 || v === 2 * (i + 1))).toBe(true);
    expect(Array.from(await gpu.read(a))).toEqual(new Array(10).fill(0));
    expect(Array.from(await gpu.read(c))).toEqual([9, 9, 9]);
    expect(() => gpu.view(flat, 3, [2])).toThrow(/not aligned to 256 bytes/);
    expect(() => gpu.view(flat, 128, [65])).toThrow(/runs past its parent/);
    expect(() => a.release()).toThrow(/does not own its buffer/);
  });

  it('surfaces WGSL errors on the next sync', async () => {
    expect(() => gpu.kernel('fn main( {', 'main')).not.toThrow(); // errors arrive asynchronously
    await expect(gpu.sync()).rejects.toThrow(GpuError);
  });

  it('reports device loss to its handlers and refuses work afterwards', async () => {
    const own = await newTestGpu();
    const lost = new Promise<GPUDeviceLostInfo>((resolve) => own.onLost(resolve));
    own.destroy();
    expect((await lost).reason).toBe('destroyed');
    expect(() => own.tensor([4])).toThrow(/device was lost/);
  });
});
