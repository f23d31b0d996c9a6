// RMSNorm with a frozen 16-bit weight, forward and backward side by side (shaders/rmsnorm.wgsl).
//   forward   y  = x · r · w,   r = 1 / √(mean(x²) + eps)        x, y: [T, H], w: 16-bit [H]
//   backward  dx = r · (w ⊙ dy) − x · r³ / H · Σ_j w_j dy_j x_j
import half from '../../shaders/half.wgsl?raw';
import reduce from '../../shaders/reduce.wgsl?raw';
import layernorm from '../../shaders/layernorm.wgsl?raw';
import rmsnorm from '../../shaders/rmsnorm.wgsl?raw';
import type { Gpu, Tensor } from '../gpu/runtime';
import type { HalfDtype } from '../quant/half';
import { expectShape, rowWorkgroupSize, rows2d } from './check';

const RMSNORM = `${half}\n${reduce}\n${rmsnorm}`;
const LAYERNORM = `${half}\n${reduce}\n${layernorm}`;

/** A frozen 16-bit vector on the GPU: `words` holds two values per u32. */
export interface HalfVector {
  words: Tensor;
  length: number;
  dtype: HalfDtype;
}

function check(op: string, x: Tensor, w: HalfVector): [number, number] {
  const [T, H] = rows2d(op, 'x', x);
  if (w.length !== H) throw new Error(`${op}: the weight has ${w.length} values, x has ${H} features`);
  return [T, H];
}

export interface RmsnormOptions {
  /** Added to mean(x²) (default 1e-6, transformers' LlamaRMSNorm default; pass the config's). */
  eps?: number;
  /** The weight applied is offset + w (default 0; Gemma stores its RMSNorm weights minus one: 1). */
  offset?: number;
  /** Add into the output instead of overwriting it (default false; Gemma's post-norms feed the residual stream). */
  accumulate?: boolean;
}

// forward: y = x · r · w; `out`: y, a new tensor by default
export function rmsnormForward(gpu: Gpu, x: Tensor, w: HalfVector, o: RmsnormOptions & { out?: Tensor } = {}): Tensor {
  const { eps = 1e-6, offset = 0, accumulate = false } = o;
  const [T, H] = check('rmsnormForward', x, w);
  const y = o.out ?? gpu.tensor(x.shape);
  expectShape('rmsnormForward', 'out', y, [T, H]);
  const overrides = { WG: rowWorkgroupSize(H), BF16: w.dtype === 'BF16', OFFSET: offset, ACCUMULATE: accumulate };
  gpu.dispatch1D(gpu.kernel(RMSNORM, 'rmsnorm_forward', overrides), [x, w.words, y], { T, H, eps }, T);
  return y;
}

// backward: dx (+)= r · (w ⊙ dy) − x · r³ / H · Σ w dy x    (w is frozen); `dx`: a new tensor by default
export function rmsnormBackward(
  gpu: Gpu,
  x: Tensor,
  w: HalfVector,
  dy: Tensor,
  o: RmsnormOptions & { dx?: Tensor } = {},
): Tensor {
  const { eps = 1e-6, offset = 0, accumulate = false } = o;
  const [T, H] = check('rmsnormBackward', x, w);
  const dx = o.dx ?? gpu.tensor(x.shape);
  expectShape('rmsnormBackward', 'dY', dy, [T, H]);
  expectShape('rmsnormBackward', 'dX', dx, [T, H]);
  const overrides = { WG: rowWorkgroupSize(H), BF16: w.dtype === 'BF16', ACCUMULATE: accumulate, OFFSET: offset };
  gpu.dispatch1D(gpu.kernel(RMSNORM, 'rmsnorm_backward', overrides), [x, w.words, dy, dx], { T, H, eps }, T);
  return dx;
}

// LayerNorm (Falcon), with a frozen 16-bit weight and bias:
//   forward   y  = x̂ · w + b,   x̂ = (x − μ) / √(var(x) + eps)
//   backward  dx = r · (g − mean(g) − x̂ · mean(g ⊙ x̂)),   g = w ⊙ dy
// `eps` defaults to 1e-5 (torch.nn.LayerNorm's; pass the config's); `out`/`dx`: new tensors by
// default; `accumulate` (default false) adds into dx.
export function layernormForward(
  gpu: Gpu,
  x: Tensor,
  w: HalfVector,
  b: HalfVector,
  o: { eps?: number; out?: Tensor } = {},
): Tensor {
  const eps = o.eps ?? 1e-5;
  const [T, H] = check('layernormForward', x, w);
  if (b.length !== H || b.dtype !== w.dtype) {
    throw new Error(`layernormForward: the bias has ${b.length} ${b.dtype} values, the weight ${H} ${w.dtype}`);
  }
  const y = o.out ?? gpu.tensor(x.shape);
  expectShape('layernormForward', 'out', y, [T, H]);
  const k = gpu.kernel(LAYERNORM, 'layernorm_forward', { WG: rowWorkgroupSize(H), BF16: w.dtype === 'BF16' });
  gpu.dispatch1D(k, [x, w.words, b.words, y], { T, H, eps }, T);
  return y;
}

export function layernormBackward(
  gpu: Gpu,
  x: Tensor,
  w: HalfVector,
  dy: Tensor,
  o: { eps?: number; dx?: Tensor; accumulate?: boolean } = {},
): Tensor {
  const eps = o.eps ?? 1e-5,
    accumulate = !!o.accumulate;
  const [T, H] = check('layernormBackward', x, w);
  const dx = o.dx ?? gpu.tensor(x.shape);
  expectShape('layernormBackward', 'dY', dy, [T, H]);
  expectShape('layernormBackward', 'dX', dx, [T, H]);
  const k = gpu.kernel(LAYERNORM, 'layernorm_backward', {
    WG: rowWorkgroupSize(H),
    BF16: w.dtype === 'BF16',
    ACCUMULATE: accumulate,
  });
  gpu.dispatch1D(k, [x, w.words, dy, dx], { T, H, eps }, T);
  return dx;
}
