// The kernel bench in Node on Dawn, for machines with a GPU but no browser (see
// ../shared/device/README.md): `vite build --ssr bench/node-bench.ts` bundles it so that it
// imports nothing but `webgpu`. No peer here; the device probe's naive matmul is the yardstick.
import { create, globals } from 'webgpu';
import { Engine } from '../src/engine/engine';
import { Gpu } from '../src/gpu/runtime';
import { benchKernels, formatTable } from './kernels';

Object.assign(globalThis, globals);
const gpu = await Gpu.create(create([]));
const adapter = [gpu.info.vendor, gpu.info.architecture, gpu.info.description].filter(Boolean).join(' ');
const small = process.argv.includes('--small');
// Correctness on this device first: the GPU quantizer's bytes against the CPU's on a
// Falcon-sized weight (21M elements), and the GEMV against float64.
const engine = new Engine();
await engine.init(gpu.instance);
for (const [out, inF] of small
  ? [[257, 384]]
  : [
      [257, 384],
      [4672, 4544],
    ]) {
  const c = await engine.checkKernels(out, inF, 7);
  console.log(
    `check W [${out}×${inF}]: bytes identical to CPU: ${c.bytesIdentical}, ` +
      `GEMV rel. error ${c.relError.toExponential(2)}`,
  );
}
const rows = await benchKernels(gpu, small, async () => null);
console.log(`adapter: ${adapter} (${small ? 'small' : 'large'} shapes)\n`);
console.log(formatTable(rows));
console.log(JSON.stringify({ date: new Date().toISOString(), adapter, rows }));
process.exit(0);
