// Matrix-vector products for decoding: y (+)= alpha · x Wᵀ with x of at most GEMV_MAX_ROWS rows,
// for every weight format (f32 LoRA factors, the 16-bit head, NF4 linears). A tiled GEMM
// computes 64 rows of x where decoding has one; here LANES threads share a row of W and add
// their shares, by subgroup shuffles where the device has subgroups (shaders/gemv_core.wgsl).
import core from '../../shaders/gemv_core.wgsl?raw';
import rowSum from '../../shaders/row_sum.wgsl?raw';
import rowSumSubgroup from '../../shaders/row_sum_subgroup.wgsl?raw';
import type { Gpu, Kernel, ParamValues, Tensor } from '../gpu/runtime';

/** Up to this many rows of x a matrix-vector pass per row beats the tiled GEMM. */
export const GEMV_MAX_ROWS = 4;

/**
 * Threads per row of W and rows per workgroup (256 threads): a row per subgroup where the
 * device has subgroups (4 on SwiftShader, 32 on NVIDIA), else 32 threads summing through
 * workgroup memory.
 */
function shape(gpu: Gpu): { LANES: number; ROWS: number } {
  const sg = gpu.subgroupSize;
  return sg >= 4 && sg <= 128 ? { LANES: sg, ROWS: 256 / sg } : { LANES: 32, ROWS: 8 };
}

/**
 * The GEMV kernel of a variant (shaders/gemv_*.wgsl, after its `prelude`: nf4.wgsl, half.wgsl)
 * on this device: row sums by subgroup shuffles where `gpu.subgroupSize` is set, else through
 * workgroup memory. The kernel takes its shape from the device: dispatch it with dispatchGemv.
 */
export function gemvKernel(
  gpu: Gpu,
  variant: string,
  constants: Record<string, number | boolean>,
  label: string,
  prelude = '',
): Kernel {
  const s = shape(gpu);
  const sum = s.LANES === gpu.subgroupSize ? rowSumSubgroup : rowSum;
  return gpu.kernel(source(sum, prelude, variant), 'gemv', { ...s, ...constants }, label);
}

// Each source assembled once: decoding asks for its kernels every token.
const sources = new Map<string, string>();
function source(sum: string, prelude: string, variant: string): string {
  const key = [sum, prelude, variant].join('\u0000');
  let code = sources.get(key);
  if (code === undefined) sources.set(key, (code = `${sum}\n${prelude}\n${core}\n${variant}`));
  return code;
}

/** One GEMV over W's N rows for each of x's M rows. */
export function dispatchGemv(
  gpu: Gpu,
  kernel: Kernel,
  buffers: Tensor[],
  params: ParamValues & { M: number; N: number },
  label?: string,
): void {
  if (params.M > GEMV_MAX_ROWS)
    throw new Error(`GEMV: ${params.M} rows of x; the tiled GEMM takes more than ${GEMV_MAX_ROWS}`);
  const groups = Math.ceil(params.N / shape(gpu).ROWS);
  const max = gpu.limits.maxComputeWorkgroupsPerDimension;
  const gy = Math.ceil(groups / max);
  gpu.dispatch(kernel, buffers, params, [Math.ceil(groups / gy), gy, params.M], label);
}
