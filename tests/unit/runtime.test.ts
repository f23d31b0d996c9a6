import { beforeAll, describe, expect, it } from 'vitest';
import { acquireDevice } from '../../src/gpu/device';
import { Gpu, GpuError, type Tensor } from '../../src/gpu/runtime';
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
    const code =
      '@group(0) @binding(0) var<storage, read_write> a: array<f32>; override K: f32 = 1; ' +
      '@compute @workgroup_size(1) fn main() { a[0] = K; }';
    expect(gpu.kernel(code, 'main', { K: 2 })).toBe(gpu.kernel(code, 'main', { K: 2 }));
    expect(gpu.kernel(code, 'main', { K: 3 })).not.toBe(gpu.kernel(code, 'main', { K: 2 }));
  });

  it('folds a 1-D grid over 65535 workgroups into two dimensions', async () => {
    const n = 65535 * 256 + 3 * 256 + 77; // 65539 workgroups of 256
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) data[i] = (i % 1000) + 1;
    const out = await gpu.read(dropoutForward(gpu, gpu.tensor([n], 'f32', data), { p: 0 }));
    let wrong = 0;
    for (let i = 0; i < n; i++) if (out[i] !== data[i]) wrong++;
    expect(wrong).toBe(0);
  });

  it('refuses a plain dispatch past the per-dimension limit', () => {
    const k = gpu.kernel('@compute @workgroup_size(1) fn main() {}', 'main');
    expect(() => gpu.dispatch(k, [], null, [70000])).toThrow(/exceeds 65535 workgroups per dimension/);
  });

  // Copies its uniform word for word into `out`. The comments inside the struct hold a comma and
  // a commented-out vector field, which the reading of the struct must skip.
  const COPY_PARAMS = `
    struct Params {
      a: u32,   // the largest u32, to see no sign or rounding creep in
      b: i32, /* a block /* nested */ comment: v: vec4f, */
      c: f32,
      d: u32, e: f32,
    }
    @group(0) @binding(0) var<storage, read_write> out: array<u32>;
    @group(0) @binding(1) var<uniform> p: Params;
    @compute @workgroup_size(1) fn copy_params() {
      out[0] = p.a; out[1] = bitcast<u32>(p.b); out[2] = bitcast<u32>(p.c); out[3] = p.d; out[4] = bitcast<u32>(p.e);
    }`;
  const good = { a: 0xffffffff, b: -7, c: 0.1, d: 3, e: -2.5e-3 };
  const floatBits = (v: number) => new Uint32Array(Float32Array.of(v).buffer)[0]!;

  it("packs named params in the struct's order, each as its declared type", async () => {
    const k = gpu.kernel(COPY_PARAMS, 'copy_params');
    expect(k.params).toEqual([
      { name: 'a', type: 'u32' },
      { name: 'b', type: 'i32' },
      { name: 'c', type: 'f32' },
      { name: 'd', type: 'u32' },
      { name: 'e', type: 'f32' },
    ]);
    const out = gpu.tensor([8], 'u32');
    gpu.fill(out, 0x7fc00000); // NaN bits: a word the kernel did not write shows
    const { a, b, c, d, e } = good;
    gpu.dispatch(k, [out], { e, d, c, b, a }, [1]); // keys out of order on purpose
    const words = Array.from(await gpu.readU32(out));
    const poison = 0x7fc00000;
    expect(words).toEqual([0xffffffff, -7 >>> 0, floatBits(0.1), 3, floatBits(-2.5e-3), poison, poison, poison]);
    out.release();
  });

  it('refuses params that do not match the struct, naming the kernel and the field', () => {
    const k = gpu.kernel(COPY_PARAMS, 'copy_params');
    const out = gpu.tensor([8], 'u32');
    // The wrong types come from JavaScript callers (or `as`); TypeScript alone would stop them.
    const bad =
      (changes: Record<string, unknown>, grid = 1) =>
      () =>
        gpu.dispatch(k, [out], { ...good, ...changes } as Record<string, number>, [grid]);
    const { e: _, ...noE } = good;
    expect(() => gpu.dispatch(k, [out], noE, [1])).toThrow(
      /copy_params: Params\.e \(f32\) is missing; pass every field of struct Params \{ a: u32, b: i32/,
    );
    expect(bad({ f: 1 })).toThrow(/copy_params: "f" is not a field of its struct Params \{ a: u32, b: i32, c: f32/);
    expect(bad({ d: '3' })).toThrow(/copy_params: Params\.d \(u32\) must be a number, got string 3/);
    expect(bad({ c: true })).toThrow(/copy_params: Params\.c \(f32\) must be a number, got boolean true/);
    expect(bad({ a: 1.5 })).toThrow(/copy_params: Params\.a \(u32\) must be an integer in \[0, 4294967295\], got 1.5/);
    expect(bad({ a: -1 })).toThrow(/Params\.a \(u32\) must be an integer in \[0, 4294967295\], got -1/);
    expect(bad({ a: 2 ** 32 })).toThrow(/Params\.a \(u32\) must be an integer in \[0, 4294967295\], got 4294967296/);
    expect(bad({ b: 2 ** 31 })).toThrow(/Params\.b \(i32\) must be an integer in \[-2147483648, 2147483647\]/);
    expect(bad({ b: 0.5 })).toThrow(/Params\.b \(i32\) must be an integer/);
    expect(bad({ c: NaN })).toThrow(/copy_params: Params\.c \(f32\) must be finite in f32, got NaN/);
    expect(bad({ e: -Infinity })).toThrow(/Params\.e \(f32\) must be finite in f32, got -Infinity/);
    expect(bad({ c: 1e39 })).toThrow(/Params\.c \(f32\) must be finite in f32, got 1e\+39/); // past f32's range
    // Checked even when the grid is empty, so that small inputs catch a bad call too.
    expect(bad({ c: NaN }, 0)).toThrow(/Params\.c \(f32\) must be finite/);
    const none = gpu.kernel('@compute @workgroup_size(1) fn no_uniform() {}', 'no_uniform');
    expect(() => gpu.dispatch(none, [], { n: 1 }, [1])).toThrow(
      /no_uniform: params were given, but its WGSL declares no struct Params/,
    );
    out.release();
  });

  it('refuses uniforms it cannot pack as 4-byte scalars, when the kernel is compiled', () => {
    const uniform = (type: string) =>
      `@group(0) @binding(0) var<uniform> p: ${type}; @compute @workgroup_size(1) fn k() {}`;
    const kernel =
      (struct: string, type = 'Params') =>
      () =>
        gpu.kernel(`${struct} ${uniform(type)}`, 'k');
    expect(kernel('struct Params { n: u32, v: vec4f }')).toThrow(/k: struct Params member "v: vec4f" is not a plain/);
    expect(kernel('struct Params { n: u32, v: array<f32, 4> }')).toThrow(/member "v: array<f32, 4>" is not a plain/);
    expect(kernel('struct Params { @align(16) n: u32 }')).toThrow(/member "@align\(16\) n: u32" is not a plain/);
    expect(kernel('struct Params { n: u32 } struct Params { m: u32 }')).toThrow(/declares struct Params 2 times/);
    expect(kernel('', 'vec4u')).toThrow(/k: the uniform "p" has type vec4u; the runtime packs uniforms only as/);
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
    const a = gpu.view(flat, 0, [2, 5]),
      b = gpu.view(flat, 64, [7]),
      c = gpu.view(flat, 128, [3]);
    gpu.write(b, Float32Array.of(1, 2, 3, 4, 5, 6, 7));
    gpu.write(c, Float32Array.of(9, 9, 9));
    expect(Array.from(await gpu.read(b))).toEqual([1, 2, 3, 4, 5, 6, 7]);
    const doubled = await gpu.read(dropoutForward(gpu, b, { p: 0.5, seed: 3 })); // a kernel reading a view
    expect(doubled.every((v, i) => v === 0 || v === 2 * (i + 1))).toBe(true);
    expect(Array.from(await gpu.read(a))).toEqual(new Array(10).fill(0));
    expect(Array.from(await gpu.read(c))).toEqual([9, 9, 9]);
    expect(() => gpu.view(flat, 3, [2])).toThrow(/not aligned to 256 bytes/);
    expect(() => gpu.view(flat, 128, [65])).toThrow(/runs past its parent/);
    expect(() => a.release()).toThrow(/does not own its buffer/);
  });

  // out[i] = p.v: one word per dispatch, so each dispatch's uniform shows in the output
  const WRITE_AT = `
    struct Params { i: u32, v: u32 }
    @group(0) @binding(0) var<storage, read_write> out: array<u32>;
    @group(0) @binding(1) var<uniform> p: Params;
    @compute @workgroup_size(1) fn write_at() { out[p.i] = p.v; }`;

  it('gives each dispatch a slot of one uniform ring, and submits when the ring is full', async () => {
    const own = await newTestGpu();
    const saved = Gpu.PARAM_SLOTS;
    Gpu.PARAM_SLOTS = 8;
    try {
      const k = own.kernel(WRITE_AT, 'write_at');
      const out = own.tensor([40], 'u32');
      const created = own.counters.buffersCreated;
      // 40 distinct values through 8 slots: five submits, each dispatch reading its own
      const values = Array.from({ length: 40 }, (_, i) => 1000 + 7 * i);
      for (const [i, v] of values.entries()) own.dispatch(k, [out], { i, v }, [1]);
      expect(Array.from(await own.readU32(out))).toEqual(values);
      expect(own.counters.buffersCreated - created).toBe(2); // the ring, and the readback's staging
      // a repeat with new values makes no buffer and no bind group: same slots, same buffers
      const groups = own.counters.bindGroupsCreated;
      const buffers = own.counters.buffersCreated;
      for (const [i, v] of values.entries()) own.dispatch(k, [out], { i, v: v + 1 }, [1]);
      expect(Array.from(await own.readU32(out))).toEqual(values.map((v) => v + 1));
      expect(own.counters.bindGroupsCreated).toBe(groups);
      expect(own.counters.buffersCreated).toBe(buffers);
    } finally {
      Gpu.PARAM_SLOTS = saved;
      own.destroy();
    }
  });

  it('hands out the oldest free buffer, so a repeated step reuses its buffers and bind groups', async () => {
    const own = await newTestGpu();
    try {
      const k = own.kernel(WRITE_AT, 'write_at');
      // a "step": three temporaries of one size, each written by a dispatch, released in a
      // different order each time; the next step must get the same three buffers
      const step = (order: number[]) => {
        const ts = [own.tensor([4], 'u32'), own.tensor([4], 'u32'), own.tensor([4], 'u32')];
        for (const [i, t] of ts.entries()) own.dispatch(k, [t], { i: 0, v: i }, [1]);
        const buffers = ts.map((t) => t.buffer);
        for (const i of order) ts[i].release();
        own.flush(); // a step ends by submitting (its loss is read back)
        return buffers;
      };
      const first = step([0, 1, 2]);
      const groups = own.counters.bindGroupsCreated;
      const created = own.counters.buffersCreated;
      expect(step([2, 0, 1])).toEqual(first);
      expect(step([1, 2, 0])).toEqual(first);
      expect(own.counters.bindGroupsCreated).toBe(groups);
      expect(own.counters.buffersCreated).toBe(created);
      await own.sync();
    } finally {
      own.destroy();
    }
  });

  it('times each dispatch by its label with timestamp queries', async () => {
    expect(gpu.canTime).toBe(true); // SwiftShader has timestamp-query
    const k = gpu.kernel(WRITE_AT, 'write_at');
    const out = gpu.tensor([4], 'u32');
    const before = gpu.counters.dispatches;
    gpu.startTiming();
    for (let i = 0; i < 3; i++) gpu.dispatch(k, [out], { i, v: i }, [1]);
    gpu.dispatch(k, [out], { i: 3, v: 3 }, [1], 'relabelled');
    const times = await gpu.stopTiming();
    expect(gpu.counters.dispatches - before).toBe(4);
    expect(times.get('write_at')?.count).toBe(3);
    expect(times.get('relabelled')?.count).toBe(1);
    for (const { ms } of times.values()) expect(ms).toBeGreaterThanOrEqual(0);
    expect(Array.from(await gpu.readU32(out))).toEqual([0, 1, 2, 3]); // timed work ran as recorded
    await expect(gpu.stopTiming()).rejects.toThrow(/without startTiming/);
  });

  it('frees in a scope what it made, but what it returns, which the enclosing scope then owns', () => {
    const inUse = gpu.memory.inUse;
    const outside = gpu.tensor([4]);
    let inner: Tensor | null = null;
    const kept = gpu.scope(() => {
      const result = gpu.scope(() => {
        const temp = gpu.tensor([64]);
        const early = gpu.tensor([64]);
        early.release(); // released inside: skipped at the end
        inner = gpu.tensor([128]);
        const flat = gpu.tensor([256]);
        // returned through an object, an array and a view: the view keeps its parent
        return { a: [inner], v: gpu.view(flat, 64, [8]), temp };
      });
      expect(result.temp.released).toBe(false);
      return result.v; // the enclosing scope keeps only the view's parent
    });
    expect(inner!.released).toBe(true);
    expect(kept.parent!.released).toBe(false);
    expect(outside.released).toBe(false); // made outside: not the scope's
    kept.parent!.release();
    outside.release();
    expect(gpu.memory.inUse).toBe(inUse);
  });

  it('frees all it made when the function throws, and hands saved state to another scope by adopt', () => {
    const inUse = gpu.memory.inUse;
    expect(() =>
      gpu.scope(() => {
        gpu.tensor([64]);
        throw new Error('boom');
      }),
    ).toThrow('boom');
    expect(gpu.memory.inUse).toBe(inUse);
    // a forward's saved state outlives its scope, and goes with the scope that adopts it
    const saved = gpu.scope(() => gpu.scope(() => ({ h: gpu.tensor([32]), out: gpu.tensor([32]) })));
    expect(saved.h.released || saved.out.released).toBe(false);
    gpu.scope(() => gpu.adopt(saved));
    expect(saved.h.released && saved.out.released).toBe(true);
    expect(() => gpu.adopt(saved)).toThrow(/outside a scope/);
    expect(gpu.memory.inUse).toBe(inUse);
  });

  it('checks at start-up that its subgroups are what the kernels assume, and falls back where not', async () => {
    expect(gpu.subgroupSize).toBe(4); // SwiftShader's subgroups, 4 wide, passed the check
    const own = await newTestGpu();
    try {
      own.subgroupSize = 8; // runs of 8 straddle its 4-wide subgroups: shuffles leave them
      expect(await own.checkSubgroups()).toBe(false);
      expect(own.subgroupSize).toBe(0); // the GEMVs now sum through workgroup memory
    } finally {
      own.destroy();
    }
  });

  it('gives its free buffers back to the device on trim, and works on after it', async () => {
    const own = await newTestGpu();
    try {
      const kept = own.tensor([64], 'f32', new Float32Array(64).fill(2));
      own.tensor([1 << 16]).release(); // a loader's staging, now free in the pool
      expect(own.memory.allocated).toBeGreaterThan(own.memory.inUse);
      own.trim();
      expect(own.memory.allocated).toBe(own.memory.inUse);
      const again = own.tensor([1 << 16]); // a new buffer, not the destroyed one
      own.copy(kept, again);
      expect(Array.from((await own.read(again)).subarray(0, 4))).toEqual([2, 2, 2, 2]);
    } finally {
      own.destroy();
    }
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
