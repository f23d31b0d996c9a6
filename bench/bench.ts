// The bench page (bench/run.mjs drives it in headless Chromium: `npm run bench:page`): our kernels
// against @tensorflow/tfjs-backend-webgpu's f32 matMul of the same shape on the same device, then
// the end-to-end rows of ./model-bench.ts (training and decoding, with the GPU time split).
// Results land in window.__bench.
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-webgpu';
import { Gpu } from '../src/gpu/runtime';
import { benchKernels, formatTable, random, type BenchRow } from './kernels';
import { benchCases, benchModel, formatModelTable, formatSplitTable, type ModelRow } from './model-bench';

declare global {
  interface Window {
    __bench?:
      | { adapter: string; size: string; rows: BenchRow[]; models: ModelRow[]; table: string }
      | { error: string };
  }
}

async function tfjsMatmul(T: number, K: number, N: number, reps: number): Promise<number> {
  const x = tf.tensor2d(random(T * K), [T, K]);
  const w = tf.tensor2d(random(N * K), [N, K]);
  const warm = tf.matMul(x, w, false, true);
  await warm.data();
  warm.dispose();
  const t0 = performance.now();
  let y: tf.Tensor | null = null;
  for (let i = 0; i < reps; i++) {
    y?.dispose();
    y = tf.matMul(x, w, false, true);
  }
  await y!.data();
  const ms = (performance.now() - t0) / reps;
  for (const t of [x, w, y!]) t.dispose();
  return ms;
}

async function main(): Promise<void> {
  const gpu = await Gpu.create(navigator.gpu);
  await tf.setBackend('webgpu');
  await tf.ready();
  const adapter = [gpu.info.vendor, gpu.info.architecture, gpu.info.description].filter(Boolean).join(' ');
  // SwiftShader runs at a few hundred MFLOP/s: small shapes there, model-sized ones on a GPU.
  const small = /swiftshader/i.test(adapter) || new URLSearchParams(location.search).get('size') === 'small';
  const status = document.getElementById('status')!;
  status.textContent = 'kernels…';
  const rows = await benchKernels(gpu, small, tfjsMatmul);
  const models: ModelRow[] = [];
  for (const k of benchCases(small ? 'small' : 'large')) {
    status.textContent = `${k.name}…`;
    models.push(await benchModel(() => Gpu.create(navigator.gpu), k));
  }
  const table = `${formatTable(rows)}\n\n${formatModelTable(models)}\n\n${formatSplitTable(models)}`;
  window.__bench = { adapter, size: small ? 'small' : 'large', rows, models, table };
  status.textContent = `done on ${adapter}`;
  document.getElementById('table')!.textContent = table;
}

main().catch((e: unknown) => {
  window.__bench = { error: e instanceof Error ? `${e.message}\n${e.stack}` : String(e) };
});
