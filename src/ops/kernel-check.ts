// The device's own kernels against the CPU, run before trusting a new GPU: the GPU NF4 quantizer's
// bytes against the CPU's (bitsandbytes' bytes), and the NF4 matrix-vector product against
// float64. The page's "Check kernels" button and the bench run it.
import type { Gpu } from '../gpu/runtime';
import { dequantizeNF4, quantizeNF4 } from '../quant/nf4';
import { nf4Linear, quantizeNF4Gpu, readNF4Bytes } from './nf4';

export interface KernelCheck {
  /** What ran: the GPU NF4 quantizer, then the NF4 matrix-vector product. */
  shape: [number, number];
  /** The GPU's packed bytes equal the CPU quantizer's. */
  bytesIdentical: boolean;
  /** ‖y_gpu − y_cpu‖ / ‖y_cpu‖ for y = x Wᵀ with the dequantized W, in float64 on the CPU. */
  relError: number;
  ms: number;
}

export async function checkKernels(gpu: Gpu, out = 257, inF = 384, seed = 1): Promise<KernelCheck> {
  let s = seed >>> 0;
  const rand = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32) * 2 - 1;
  const w = Float32Array.from({ length: out * inF }, rand);
  const x = Float32Array.from({ length: inF }, rand);
  const t0 = performance.now();
  const tw = gpu.tensor([out, inF], 'f32', w);
  const tx = gpu.tensor([1, inF], 'f32', x);
  const q = quantizeNF4Gpu(gpu, tw, { blocksize: 64 });
  const y = nf4Linear(gpu, tx, q);
  const [bytes, yGpu] = [await readNF4Bytes(gpu, q), await gpu.read(y)];
  const ms = performance.now() - t0;
  const cpu = quantizeNF4(w, 64);
  const wd = dequantizeNF4(cpu);
  let num = 0,
    den = 0;
  for (let o = 0; o < out; o++) {
    let ref = 0;
    for (let i = 0; i < inF; i++) ref += x[i] * wd[o * inF + i];
    num += (yGpu[o] - ref) ** 2;
    den += ref ** 2;
  }
  const bytesIdentical = bytes.length === cpu.packed.length && bytes.every((b, i) => b === cpu.packed[i]);
  for (const t of [tw, tx, q.packed, q.absmax, y]) t.release();
  return { shape: [out, inF], bytesIdentical, relError: Math.sqrt(num / den), ms };
}
