// The GPU runtime: a handful of names in the spirit of gpu.cpp.
//
//   const gpu = await Gpu.create(navigator.gpu)
//   const x = gpu.tensor([T, K], 'f32', data)      // storage buffer, pooled
//   const k = gpu.kernel(wgsl, 'main', { TK: 16 })  // compiled once per (code, entry, constants)
//   gpu.dispatch(k, [x, w, y], { T, H, eps }, [gx, gy, gz]) // recorded, submitted on flush()/read()
//   await gpu.read(y)                                // Float32Array
//   const y = gpu.scope(() => …)                     // frees what it made, but what it returns
//
// Conventions every kernel follows: storage buffers at @binding(0..n-1) of group 0 in the
// order given, the shape uniform at @binding(n), typed `struct Params` of u32/i32/f32 fields.
// Dispatches name the fields ({ T, H, eps }) and the runtime packs them in the struct's order,
// so no call site repeats a shader's field order by hand. Work is recorded into one compute pass and
// submitted lazily. Each dispatch's uniform is a slot of one ring buffer, written as it is
// recorded, and bind groups are cached by buffer and slot, so a training step that repeats the
// last one's work allocates nothing on the GPU, whatever values change from step to step.

import { acquireDevice, type AdapterSummary } from './device';

export type DType = 'f32' | 'u32' | 'i32';
export type Grid = [number, number?, number?];

export class Tensor {
  released = false;
  constructor(
    readonly gpu: Gpu,
    readonly buffer: GPUBuffer,
    readonly shape: readonly number[],
    readonly dtype: DType,
    /** Bytes into `buffer` where a view starts (0 for a tensor that owns its buffer). */
    readonly offset = 0,
    /** Set on views: the tensor whose buffer they share. */
    readonly parent: Tensor | null = null,
  ) {}
  get numel(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }
  /** Bytes of data (the buffer may be larger: sizes are rounded up for pooling). */
  get byteLength(): number {
    return this.numel * 4;
  }
  /** Return the buffer to the pool; the tensor must not be used afterwards. */
  release(): void {
    this.gpu.release(this);
  }
}

export interface Kernel {
  pipeline: GPUComputePipeline;
  label: string;
  id: number;
  /** The fields of the source's `struct Params`, in declaration order; null when it has none. */
  params: readonly ParamField[] | null;
}

export type ParamType = 'u32' | 'i32' | 'f32';
export interface ParamField {
  name: string;
  type: ParamType;
}

/** A dispatch's uniform values by field name, e.g. `{ T, H, eps }` for `struct Params { T: u32, H: u32, eps: f32 }`. */
export type ParamValues = Readonly<Record<string, number>>;

export class GpuError extends Error {
  override name = 'GpuError';
}

const SCALARS: ReadonlySet<string> = new Set<ParamType>(['u32', 'i32', 'f32']);

/** WGSL without its comments (line comments, and block comments, which nest). */
function stripComments(code: string): string {
  let out = '';
  let depth = 0;
  for (let i = 0; i < code.length; ) {
    if (depth === 0 && code.startsWith('//', i)) {
      const nl = code.indexOf('\n', i);
      i = nl < 0 ? code.length : nl;
    } else if (code.startsWith('/*', i)) {
      depth++;
      i += 2;
    } else if (depth > 0 && code.startsWith('*/', i)) {
      depth--;
      i += 2;
      if (depth === 0) out += ' '; // a comment separates tokens
    } else {
      if (depth === 0) out += code[i];
      i++;
    }
  }
  return out;
}

/** Split at commas outside <…>, so that `array<f32, 4>` stays one piece. */
function splitTopLevel(body: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < body.length; i++) {
    if (body[i] === '<') depth++;
    else if (body[i] === '>') depth--;
    else if (body[i] === ',' && depth === 0) {
      parts.push(body.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(body.slice(start));
  return parts.map((p) => p.trim()).filter((p) => p !== '');
}

/**
 * The fields of a WGSL source's `struct Params`, in declaration order, or null when it declares
 * none. Only 4-byte scalars are accepted: WGSL's uniform layout then puts field i at byte 4·i
 * with no padding. Vectors, arrays, f16 and @align/@size would need WGSL's padding rules, which
 * no kernel needs today, so they are refused here rather than packed at the wrong offsets.
 */
export function parseParams(code: string, label: string): ParamField[] | null {
  const src = stripComments(code);
  // Every uniform must be a Params: one of another type would be bound with Params' packing.
  for (const m of src.matchAll(/\bvar\s*<\s*uniform\s*>\s*([A-Za-z_]\w*)\s*:\s*([^;=]+)/g)) {
    const type = m[2]!.trim();
    if (type !== 'Params') {
      throw new GpuError(
        `${label}: the uniform "${m[1]}" has type ${type}; the runtime packs uniforms only as ` +
          '`struct Params` of u32/i32/f32 fields: declare one and read its fields',
      );
    }
  }
  const structs = [...src.matchAll(/\bstruct\s+Params\s*\{([^}]*)\}/g)];
  if (structs.length === 0) return null;
  if (structs.length > 1) {
    throw new GpuError(
      `${label}: the WGSL declares struct Params ${structs.length} times; declare it once in a source and its parts`,
    );
  }
  const fields: ParamField[] = [];
  for (const decl of splitTopLevel(structs[0]![1]!)) {
    const m = /^([A-Za-z_]\w*)\s*:\s*(\S+)$/.exec(decl);
    if (!m || !SCALARS.has(m[2]!)) {
      throw new GpuError(
        `${label}: struct Params member "${decl.replace(/\s+/g, ' ')}" is not a plain u32, i32 or f32; the runtime ` +
          'packs only 4-byte scalars, with no padding or attributes: split vectors and arrays into scalar fields',
      );
    }
    fields.push({ name: m[1]!, type: m[2] as ParamType });
  }
  return fields;
}

const structText = (fields: readonly ParamField[]): string =>
  `struct Params { ${fields.map((f) => `${f.name}: ${f.type}`).join(', ')} }`;

/**
 * A dispatch's named values as the uniform's 32-bit words, in the struct's order: f32 fields
 * as float bits, u32 and i32 fields as checked integers. Any mismatch with the struct is an
 * error naming the kernel and the field, since a wrong word would silently become a wrong shape.
 */
export function packParams(kernel: Pick<Kernel, 'label' | 'params'>, values: ParamValues): Uint32Array<ArrayBuffer> {
  const fields = kernel.params;
  if (!fields) {
    throw new GpuError(`${kernel.label}: params were given, but its WGSL declares no struct Params to pack them into`);
  }
  for (const name of Object.keys(values)) {
    if (!fields.some((f) => f.name === name)) {
      throw new GpuError(`${kernel.label}: "${name}" is not a field of its ${structText(fields)}`);
    }
  }
  // A uniform binding is sized in 16-byte steps.
  const words = new Uint32Array(Math.max(4, Math.ceil(fields.length / 4) * 4));
  const asInt = new Int32Array(words.buffer);
  const asFloat = new Float32Array(words.buffer);
  fields.forEach((f, i) => {
    const where = () => `${kernel.label}: Params.${f.name} (${f.type})`;
    if (!Object.hasOwn(values, f.name)) {
      throw new GpuError(`${where()} is missing; pass every field of ${structText(fields)}`);
    }
    const v: unknown = values[f.name];
    if (typeof v !== 'number') throw new GpuError(`${where()} must be a number, got ${typeof v} ${String(v)}`);
    if (f.type === 'f32') {
      const x = Math.fround(v);
      if (!Number.isFinite(x)) throw new GpuError(`${where()} must be finite in f32, got ${v}`);
      asFloat[i] = x;
    } else {
      const [lo, hi] = f.type === 'u32' ? [0, 0xffffffff] : [-(2 ** 31), 2 ** 31 - 1];
      if (!Number.isInteger(v) || v < lo || v > hi) {
        throw new GpuError(`${where()} must be an integer in [${lo}, ${hi}], got ${v}`);
      }
      if (f.type === 'u32') words[i] = v;
      else asInt[i] = v;
    }
  });
  return words;
}

/** The tensors (owners, for views) a value holds: itself, or inside arrays and plain objects. */
function heldTensors(value: unknown, into = new Set<Tensor>(), depth = 0): Set<Tensor> {
  if (value instanceof Tensor) {
    let owner = value;
    while (owner.parent) owner = owner.parent;
    into.add(owner);
  } else if (depth < 6 && Array.isArray(value)) for (const v of value) heldTensors(v, into, depth + 1);
  else if (depth < 6 && value !== null && typeof value === 'object') {
    const proto = Object.getPrototypeOf(value);
    if (proto === Object.prototype || proto === null)
      for (const v of Object.values(value)) heldTensors(v, into, depth + 1);
  }
  return into;
}

export class Gpu {
  /** Uniform slots in the ring (see paramSlot()); a submit that fills them is flushed. */
  static PARAM_SLOTS = 4096;
  private pool = new Map<number, GPUBuffer[]>();
  private staging = new Map<number, GPUBuffer[]>();
  private modules = new Map<string, GPUShaderModule>();
  private layouts = new Map<string, ParamField[] | null>();
  private codeIds = new Map<string, number>();
  private pipelines = new Map<string, Kernel>();
  private bindGroups = new Map<string, GPUBindGroup>();
  private bufferIds = new WeakMap<GPUBuffer, number>();
  private nextBufferId = 1;
  private paramRing: GPUBuffer | null = null;
  private paramSlots = 0;
  private slotsUsed = 0;
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private error: GPUError | null = null;
  private lostHandlers: ((info: GPUDeviceLostInfo) => void)[] = [];
  /**
   * Storage bytes held by live tensors (and their peak), and held in all: live tensors and the
   * pool's free buffers (trim() gives the pool's back).
   */
  readonly memory = { inUse: 0, peak: 0, allocated: 0 };
  /**
   * What the device was asked to do, for the bench: dispatches recorded, and GPU objects created
   * (buffers of every kind, bind groups). A step that repeats its shapes should create none.
   */
  readonly counters = { dispatches: 0, buffersCreated: 0, bindGroupsCreated: 0 };
  private timing: KernelTimer | null = null;
  /** The tensors each open scope made, innermost last. */
  private scopes: Set<Tensor>[] = [];
  /**
   * The subgroup width kernels may rely on (the adapter's narrowest), 0 where the device has no
   * subgroups. Setting 0 runs the workgroup-memory fallbacks (the tests cover both).
   */
  subgroupSize: number;
  /** Set once the device is lost; every later call throws. */
  lostInfo: GPUDeviceLostInfo | null = null;

  private constructor(
    // Held for the device's lifetime: Dawn's Node binding frees its instance when the `GPU`
    // object is collected, and the device's event processing then reads freed memory.
    readonly instance: GPU,
    readonly device: GPUDevice,
    readonly info: AdapterSummary,
  ) {
    this.subgroupSize = info.subgroupMinSize;
    device.addEventListener('uncapturederror', (e) => {
      this.error ??= (e as GPUUncapturedErrorEvent).error;
    });
    void device.lost.then((info) => {
      this.lostInfo = info;
      for (const h of this.lostHandlers) h(info);
    });
  }

  /**
   * `p`, or the device's loss, whichever comes first: a read or wait on a device lost under it
   * (destroy(), a driver reset) need not settle at all on every implementation.
   */
  private orLost<T>(p: Promise<T>): Promise<T> {
    p.catch(() => {}); // its own rejection, if it comes after the loss, is not an unhandled one
    return Promise.race([
      p,
      this.device.lost.then(() => {
        this.checkAlive();
        return p; // not reached: checkAlive throws once lostInfo is set
      }),
    ]);
  }

  static async create(gpu: GPU | undefined | null, options?: { powerPreference?: GPUPowerPreference }): Promise<Gpu> {
    const { device, summary } = await acquireDevice(gpu, options);
    const g = new Gpu(gpu!, device, summary);
    await g.checkSubgroups();
    return g;
  }

  /**
   * Whether this device's subgroups are what the subgroup kernels assume (shaders/row_sum_subgroup.wgsl):
   * runs of `subgroupSize` consecutive threads that a shuffle butterfly stays within. Run once at
   * start-up; where it fails, `subgroupSize` becomes 0 and the kernels sum through workgroup memory.
   */
  async checkSubgroups(): Promise<boolean> {
    const n = this.subgroupSize;
    if (!n) return false;
    const rows = Math.max(1, Math.floor(256 / n));
    const code = `enable subgroups;
      @group(0) @binding(0) var<storage, read_write> out: array<u32>;
      @compute @workgroup_size(${n}, ${rows}) fn subgroup_check(@builtin(local_invocation_index) i: u32) {
        var s = i;
        for (var o = ${n}u / 2u; o > 0u; o >>= 1u) { s += subgroupShuffleXor(s, o); }
        out[i] = s;
      }`;
    const out = this.tensor([n * rows], 'u32');
    let ok: boolean;
    try {
      this.dispatch(this.kernel(code, 'subgroup_check'), [out], null, [1]);
      const got = await this.readU32(out);
      // each thread gets the sum of its run's indices: n·(first index of the run) + n(n − 1)/2
      ok = got.every((v, i) => v === n * (i - (i % n)) + (n * (n - 1)) / 2);
    } catch {
      ok = false;
    } finally {
      out.release();
    }
    if (!ok) this.subgroupSize = 0;
    return ok;
  }

  get limits(): GPUSupportedLimits {
    return this.device.limits;
  }
  /** The most bytes one buffer can hold and bind to a kernel. */
  get maxBinding(): number {
    return Math.min(this.limits.maxBufferSize, this.limits.maxStorageBufferBindingSize);
  }
  hasFeature(name: GPUFeatureName): boolean {
    return this.device.features.has(name);
  }

  /** Called when the device is lost (driver reset, tab backgrounded too long, destroy()). */
  onLost(handler: (info: GPUDeviceLostInfo) => void): void {
    this.lostHandlers.push(handler);
    if (this.lostInfo) handler(this.lostInfo);
  }

  // ---- tensors ------------------------------------------------------------------------

  tensor(shape: readonly number[], dtype: DType = 'f32', data?: ArrayBufferView): Tensor {
    this.checkAlive();
    const numel = shape.reduce((a, b) => a * b, 1);
    if (!Number.isInteger(numel) || numel < 0) throw new GpuError(`bad tensor shape [${shape.join(', ')}]`);
    const bytes = numel * 4;
    const max = this.maxBinding;
    if (bytes > max) {
      throw new GpuError(
        `a tensor of shape [${shape.join(', ')}] needs ${bytes} bytes, more than this GPU binds in one ` +
          `buffer (${max}); split it, or use a device with larger limits`,
      );
    }
    const t = new Tensor(this, this.takeBuffer(bytes), shape, dtype);
    this.scopes.at(-1)?.add(t);
    if (data) this.write(t, data);
    return t;
  }

  /**
   * Runs `fn` and releases every tensor made while it ran, except those its result holds:
   * returned, or inside returned arrays and plain objects (a view holds its parent). Those join
   * the enclosing scope, which frees them in turn unless it returns them too. A layer's forward
   * and backward are scopes: no list of what to free is kept by hand. Tensors released inside
   * are skipped; if `fn` throws, everything it made is released.
   */
  scope<T>(fn: () => T): T {
    const made = new Set<Tensor>();
    this.scopes.push(made);
    let result: T;
    try {
      result = fn();
    } catch (e) {
      this.scopes.pop();
      for (const t of made) if (!t.released) t.release();
      throw e;
    }
    this.scopes.pop();
    if (result instanceof Promise) throw new GpuError('gpu.scope takes a synchronous function');
    const kept = heldTensors(result);
    const outer = this.scopes.at(-1);
    for (const t of made) {
      if (t.released) continue;
      if (kept.has(t)) outer?.add(t);
      else t.release();
    }
    return result;
  }

  /**
   * Hands the tensors `value` holds (as scope() reads a result) to the innermost scope, which
   * then frees them: a layer's saved state, made by its forward, freed after its backward.
   */
  adopt(value: unknown): void {
    const top = this.scopes.at(-1);
    if (!top) throw new GpuError('gpu.adopt outside a scope');
    for (const t of heldTensors(value)) {
      for (const s of this.scopes) s.delete(t);
      top.add(t);
    }
  }

  /**
   * A view of `count` elements of `parent` starting at element `start`, shaped `shape`: one
   * allocation holds many tensors (the LoRA weights, their gradients, the AdamW moments), and
   * whole-buffer kernels still see them all. The start must fall on the device's storage
   * offset alignment (256 bytes, 64 floats, everywhere today).
   */
  view(parent: Tensor, start: number, shape: readonly number[]): Tensor {
    const count = shape.reduce((a, b) => a * b, 1);
    const offset = parent.offset + start * 4;
    if (offset % this.limits.minStorageBufferOffsetAlignment !== 0) {
      throw new GpuError(
        `a view at element ${start} is not aligned to ${this.limits.minStorageBufferOffsetAlignment} bytes`,
      );
    }
    if (start < 0 || start + count > parent.numel)
      throw new GpuError(`a view of ${count} elements at ${start} runs past its parent's ${parent.numel}`);
    return new Tensor(this, parent.buffer, shape, parent.dtype, offset, parent);
  }

  /** Replace a tensor's contents. Pending work is submitted first so that it sees the old data. */
  write(t: Tensor, data: ArrayBufferView, byteOffset = 0): void {
    const room = t.parent ? t.byteLength : t.buffer.size;
    if (data.byteLength + byteOffset > room) throw new GpuError('write past the end of the tensor');
    this.flush();
    // writeBuffer wants sizes in multiples of 4; our tensors are 4-byte elements.
    this.device.queue.writeBuffer(t.buffer, t.offset + byteOffset, data.buffer, data.byteOffset, data.byteLength);
  }

  /** Fill a tensor with one 32-bit pattern (e.g. NaN bits, to poison outputs in tests). */
  fill(t: Tensor, bits: number): void {
    const a = new Uint32Array((t.parent ? t.byteLength : t.buffer.size) / 4).fill(bits);
    this.write(t, a);
  }

  release(t: Tensor): void {
    if (t.parent) throw new GpuError('a view does not own its buffer: release its parent');
    if (t.released) throw new GpuError(`tensor [${t.shape.join(', ')}] released twice`);
    t.released = true;
    this.memory.inUse -= t.buffer.size;
    const list = this.pool.get(t.buffer.size) ?? [];
    // Kept by descending id, so that takeBuffer hands out the oldest free buffer: which buffer a
    // tensor gets then depends only on which are free, not on the order they were released in.
    // A step that repeats the last one's work gets the same buffers, and finds its bind groups cached.
    const id = this.bufferId(t.buffer);
    let at = list.length;
    while (at > 0 && this.bufferId(list[at - 1]) < id) at--;
    list.splice(at, 0, t.buffer);
    this.pool.set(t.buffer.size, list);
  }

  /**
   * Destroys the pool's free buffers (and readback staging): after loading a model, the f32
   * bands the quantizer staged weights in would otherwise stay allocated for good (falcon-7b's
   * MLP bands alone are 330 MB each). Bind groups that held them are dropped.
   */
  trim(): void {
    this.flush();
    for (const list of this.pool.values())
      for (const b of list) {
        this.memory.allocated -= b.size;
        b.destroy();
      }
    for (const list of this.staging.values()) for (const b of list) b.destroy();
    this.pool.clear();
    this.staging.clear();
    this.bindGroups.clear();
  }

  private takeBuffer(bytes: number): GPUBuffer {
    const size = Math.max(256, Math.ceil(bytes / 256) * 256);
    this.memory.inUse += size;
    this.memory.peak = Math.max(this.memory.peak, this.memory.inUse);
    const reused = this.pool.get(size)?.pop();
    if (reused) return reused;
    this.memory.allocated += size;
    this.counters.buffersCreated++;
    const buffer = this.device.createBuffer({
      size,
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
    });
    this.bufferId(buffer); // ids in creation order
    return buffer;
  }

  // ---- kernels ------------------------------------------------------------------------

  /**
   * A compute pipeline, compiled once per (code, entry point, override constants). `label` names
   * it in errors and timings (the entry point by default: give one where the entry is `main`).
   */
  kernel(
    code: string,
    entryPoint: string,
    constants: Record<string, number | boolean> = {},
    label = entryPoint,
  ): Kernel {
    this.checkAlive();
    // keyed by a number per source: a key holding the source itself would be hashed whole on
    // every dispatch (the source string keeps its hash; a new key string does not)
    let codeId = this.codeIds.get(code);
    if (codeId === undefined) this.codeIds.set(code, (codeId = this.codeIds.size));
    const key = `${codeId}|${entryPoint}|${label}|${JSON.stringify(constants)}`;
    let k = this.pipelines.get(key);
    if (!k) {
      // One module (and one reading of its Params) per source, shared by its entry points and constant sets.
      let params = this.layouts.get(code);
      if (params === undefined) {
        params = parseParams(code, entryPoint);
        this.layouts.set(code, params);
      }
      let module = this.modules.get(code);
      if (!module) {
        module = this.device.createShaderModule({ code, label });
        this.modules.set(code, module);
      }
      const numeric: Record<string, number> = {};
      for (const [name, v] of Object.entries(constants)) numeric[name] = typeof v === 'boolean' ? Number(v) : v;
      const pipeline = this.device.createComputePipeline({
        layout: 'auto',
        label,
        compute: { module, entryPoint, constants: numeric },
      });
      k = { pipeline, label, id: this.pipelines.size + 1, params };
      this.pipelines.set(key, k);
    }
    return k;
  }

  /**
   * Record one dispatch. `grid` is the number of workgroups per dimension; a dimension over
   * the device's limit (65535 by default) is refused here: 1-D kernels should call
   * `dispatch1D`, which folds a long grid into two dimensions. `params` names every field of
   * the kernel's `struct Params` (null for a kernel without a uniform). `label` says what the
   * work is for in timings (one GEMM serves attention, LoRA and the rest): the kernel's by default.
   */
  dispatch(
    kernel: Kernel,
    buffers: (Tensor | GPUBuffer)[],
    params: ParamValues | null,
    grid: Grid,
    label = kernel.label,
  ): void {
    this.checkAlive();
    // Packed before the empty-grid return, so that a bad call fails on small inputs too.
    const words = params ? packParams(kernel, params) : null;
    const [x, y = 1, z = 1] = grid;
    const max = this.limits.maxComputeWorkgroupsPerDimension;
    if (x > max || y > max || z > max) {
      throw new GpuError(`${kernel.label}: grid ${x}×${y}×${z} exceeds ${max} workgroups per dimension`);
    }
    if (x === 0 || y === 0 || z === 0) return;
    const bound: GPUBufferBinding[] = buffers.map((b) =>
      b instanceof Tensor
        ? b.parent
          ? { buffer: b.buffer, offset: b.offset, size: b.byteLength }
          : { buffer: b.buffer }
        : { buffer: b },
    );
    if (words) bound.push(this.paramSlot(words));
    const bindGroup = this.bindGroup(kernel, bound);
    this.counters.dispatches++;
    this.encoder ??= this.device.createCommandEncoder();
    if (this.timing) {
      // Timed: each dispatch in a pass of its own, stamped at its start and end.
      this.pass?.end();
      this.pass = this.encoder.beginComputePass({ timestampWrites: this.timing.next(label) });
    } else {
      // Consecutive dispatches share one compute pass; WebGPU orders their storage accesses.
      this.pass ??= this.encoder.beginComputePass();
    }
    this.pass.setPipeline(kernel.pipeline);
    this.pass.setBindGroup(0, bindGroup);
    this.pass.dispatchWorkgroups(x, y, z);
    if (this.timing) {
      this.pass.end();
      this.pass = null;
      if (this.timing.full) this.flush();
    }
  }

  /** How many compiled pipelines and bind groups are cached. */
  get cached(): { pipelines: number; bindGroups: number } {
    return { pipelines: this.pipelines.size, bindGroups: this.bindGroups.size };
  }

  // ---- timing (the bench) ---------------------------------------------------------------

  /** Whether kernels can be timed on the GPU (the adapter offers timestamp queries). */
  get canTime(): boolean {
    return this.hasFeature('timestamp-query');
  }

  /**
   * Time every dispatch from here on with timestamp queries, until `stopTiming`. Each dispatch
   * then runs in a pass of its own, which costs a little; the bench times steps without it.
   */
  startTiming(): void {
    if (!this.canTime) throw new GpuError('this device has no timestamp-query feature: kernels cannot be timed');
    this.flush();
    this.timing ??= new KernelTimer(this.device);
  }

  /** GPU milliseconds and dispatch counts per kernel (entry point) since `startTiming`. */
  async stopTiming(): Promise<Map<string, { ms: number; count: number }>> {
    const timer = this.timing;
    if (!timer) throw new GpuError('stopTiming without startTiming');
    this.flush();
    this.timing = null;
    const totals = await timer.totals();
    timer.destroy();
    this.throwIfError();
    return totals;
  }

  /**
   * A 1-D grid of `count` workgroups folded into (x, y) so that neither exceeds the limit.
   * Kernels recover the linear index as `wid.x + wid.y * nwg.x` and return when it is past
   * `count` (the fold may round up).
   */
  dispatch1D(
    kernel: Kernel,
    buffers: (Tensor | GPUBuffer)[],
    params: ParamValues | null,
    count: number,
    label = kernel.label,
  ): void {
    const max = this.limits.maxComputeWorkgroupsPerDimension;
    const y = Math.ceil(count / max);
    this.dispatch(kernel, buffers, params, [Math.ceil(count / y), y], label);
  }

  /**
   * Bind groups cached by (pipeline, buffers): pooled buffers keep their identity, so a
   * training step that repeats its dispatches creates none after the first.
   */
  private bindGroup(kernel: Kernel, buffers: GPUBufferBinding[]): GPUBindGroup {
    const bound = buffers.map((b) => `${this.bufferId(b.buffer)}@${b.offset ?? 0}+${b.size ?? ''}`);
    const key = `${kernel.id}|${bound.join(',')}`;
    let group = this.bindGroups.get(key);
    if (!group) {
      if (this.bindGroups.size >= 16384) this.bindGroups.clear(); // bounded; rebuilt on demand
      this.counters.bindGroupsCreated++;
      group = this.device.createBindGroup({
        layout: kernel.pipeline.getBindGroupLayout(0),
        entries: buffers.map((resource, binding) => ({ binding, resource })),
      });
      this.bindGroups.set(key, group);
    }
    return group;
  }

  private bufferId(b: GPUBuffer): number {
    let id = this.bufferIds.get(b);
    if (id === undefined) this.bufferIds.set(b, (id = this.nextBufferId++));
    return id;
  }

  /**
   * A dispatch's uniform: the next slot of one ring buffer, written now. The write reaches the
   * queue before the submit that records the dispatch, and after every earlier submit, so slots
   * are reused from the first at each submit and each dispatch reads its own values. A full
   * ring submits what is recorded. Values that change every step (dropout seeds, AdamW's step,
   * the loss scale) then cost no buffer, and a step's dispatches take the same slots each time,
   * so their bind groups are cached.
   */
  private paramSlot(words: Uint32Array<ArrayBuffer>): GPUBufferBinding {
    const stride = Math.max(256, this.limits.minUniformBufferOffsetAlignment);
    if (!this.paramRing) {
      this.paramSlots = Gpu.PARAM_SLOTS;
      this.counters.buffersCreated++;
      this.paramRing = this.device.createBuffer({
        size: this.paramSlots * stride,
        usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
        label: 'params',
      });
    }
    if (this.slotsUsed >= this.paramSlots) this.flush();
    const offset = this.slotsUsed++ * stride;
    this.device.queue.writeBuffer(this.paramRing, offset, words);
    return { buffer: this.paramRing, offset, size: words.byteLength };
  }

  /** Record zeroing a tensor, in order with the dispatches (no upload from the CPU). */
  zero(t: Tensor): void {
    this.checkAlive();
    this.encoder ??= this.device.createCommandEncoder();
    this.pass?.end();
    this.pass = null;
    this.encoder.clearBuffer(t.buffer, t.offset, Math.ceil(t.byteLength / 4) * 4);
  }

  /**
   * Record a copy of `count` elements (all of src by default) from src at element `from` into
   * dst at element `to`, in order with the dispatches.
   */
  copy(src: Tensor, dst: Tensor, o: { from?: number; to?: number; count?: number } = {}): void {
    const from = o.from ?? 0,
      to = o.to ?? 0,
      count = o.count ?? src.numel - from;
    if (from + count > src.numel || to + count > dst.numel) {
      throw new GpuError(`copy: ${count} elements from ${from} of ${src.numel} into ${to} of ${dst.numel}`);
    }
    this.checkAlive();
    this.encoder ??= this.device.createCommandEncoder();
    this.pass?.end();
    this.pass = null;
    this.encoder.copyBufferToBuffer(src.buffer, src.offset + from * 4, dst.buffer, dst.offset + to * 4, count * 4);
  }

  /** Submit everything recorded so far. */
  flush(): void {
    if (!this.encoder) return;
    this.pass?.end();
    this.timing?.resolve(this.encoder);
    this.device.queue.submit([this.encoder.finish()]);
    this.timing?.submitted();
    this.encoder = null;
    this.pass = null;
    this.slotsUsed = 0; // later writes land after this submit: its slots are free again
  }

  /** Wait for all submitted work; throws the first GPU validation error seen, if any. */
  async sync(): Promise<void> {
    this.flush();
    await this.orLost(this.device.queue.onSubmittedWorkDone());
    this.throwIfError();
  }

  async readBytes(t: Tensor, byteLength = t.byteLength): Promise<ArrayBuffer> {
    this.flush();
    const size = Math.ceil(byteLength / 4) * 4;
    // Staging buffers are pooled by size, like storage buffers: a per-step loss read allocates nothing.
    let staging = this.staging.get(size)?.pop();
    if (!staging) {
      this.counters.buffersCreated++;
      staging = this.device.createBuffer({ size, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    }
    const enc = this.device.createCommandEncoder();
    enc.copyBufferToBuffer(t.buffer, t.offset, staging, 0, size);
    this.device.queue.submit([enc.finish()]);
    await this.orLost(staging.mapAsync(GPUMapMode.READ));
    const out = staging.getMappedRange().slice(0, byteLength);
    staging.unmap();
    const list = this.staging.get(size) ?? [];
    list.push(staging);
    this.staging.set(size, list);
    this.throwIfError();
    return out;
  }

  async read(t: Tensor): Promise<Float32Array> {
    return new Float32Array(await this.readBytes(t));
  }
  async readU32(t: Tensor): Promise<Uint32Array> {
    return new Uint32Array(await this.readBytes(t));
  }

  private throwIfError(): void {
    if (this.error) {
      const e = this.error;
      this.error = null;
      throw new GpuError(`WebGPU error: ${e.message}`);
    }
  }

  private checkAlive(): void {
    if (this.lostInfo) {
      throw new GpuError(
        `the GPU device was lost (${this.lostInfo.reason}: ${this.lostInfo.message}); ` +
          'reload the model to get a new device',
      );
    }
  }

  destroy(): void {
    this.flush();
    for (const list of [...this.pool.values(), ...this.staging.values()]) for (const b of list) b.destroy();
    this.paramRing?.destroy();
    this.pool.clear();
    this.staging.clear();
    this.bindGroups.clear();
    this.device.destroy();
  }
}

/**
 * Timestamp queries for the bench: a query set of pairs (start, end of each timed pass), resolved
 * into a readable buffer at each submit; labels remember which kernel each pair timed.
 */
class KernelTimer {
  private static readonly PAIRS = 2048; // a query set holds at most 4096 queries
  private set: GPUQuerySet | null = null;
  private labels: string[] = [];
  private readbacks: Promise<void>[] = [];
  private free: GPUQuerySet[] = [];
  private readonly sums = new Map<string, { ms: number; count: number }>();

  constructor(private readonly device: GPUDevice) {}

  get full(): boolean {
    return this.labels.length >= KernelTimer.PAIRS;
  }

  next(label: string): GPUComputePassTimestampWrites {
    this.set ??= this.free.pop() ?? this.device.createQuerySet({ type: 'timestamp', count: 2 * KernelTimer.PAIRS });
    const i = this.labels.push(label) - 1;
    return { querySet: this.set, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 };
  }

  private pending: { set: GPUQuerySet; labels: string[]; resolved: GPUBuffer; read: GPUBuffer } | null = null;

  /** Record resolving this submit's queries, at the end of its encoder. */
  resolve(encoder: GPUCommandEncoder): void {
    if (!this.set || this.labels.length === 0) return;
    const bytes = this.labels.length * 16;
    // Buffers made while timing are not the workload's: they are not counted.
    const resolved = this.device.createBuffer({
      size: bytes,
      usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
    });
    const read = this.device.createBuffer({ size: bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    encoder.resolveQuerySet(this.set, 0, 2 * this.labels.length, resolved, 0);
    encoder.copyBufferToBuffer(resolved, 0, read, 0, bytes);
    this.pending = { set: this.set, labels: this.labels, resolved, read };
    this.set = null;
    this.labels = [];
  }

  /** After the submit: read the stamps back when the GPU is done with them. */
  submitted(): void {
    const p = this.pending;
    if (!p) return;
    this.pending = null;
    this.readbacks.push(
      p.read.mapAsync(GPUMapMode.READ).then(() => {
        const stamps = new BigUint64Array(p.read.getMappedRange());
        p.labels.forEach((label, i) => {
          const ns = Number(stamps[2 * i + 1] - stamps[2 * i]);
          const s = this.sums.get(label) ?? { ms: 0, count: 0 };
          s.ms += Math.max(0, ns) / 1e6;
          s.count++;
          this.sums.set(label, s);
        });
        p.read.unmap();
        p.read.destroy();
        p.resolved.destroy();
        this.free.push(p.set);
      }),
    );
  }

  async totals(): Promise<Map<string, { ms: number; count: number }>> {
    await Promise.all(this.readbacks);
    return this.sums;
  }

  destroy(): void {
    for (const s of this.free) s.destroy();
    this.set?.destroy();
  }
}
