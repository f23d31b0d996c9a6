// The kernel bench, run in a page (bench/run.mjs drives it in headless Chromium): our f32 GEMM,
// NF4 GEMM and NF4 GEMV against @tensorflow/tfjs-backend-webgpu's f32 matMul of the same shape,
// on the same device. Results land in window.__bench.
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-webgpu';
import { Gpu, type Tensor } from '../src/gpu/runtime';
import { linear } from '../src/ops/matmul';
import { nf4Linear, quantizeNF4Gpu } from '../src/ops/nf4';

export interface BenchRow {
  kernel: string;
  shape: string; // T×in→out
  ms: number;
  gflops: number;
  gbps: number;
  peer_ms: number;
  ratio: number; // ours / peer time: below 1 is faster than the peer
}

declare global {
  interface Window {
    __bench?: { adapter: string; size: string; rows: BenchRow[] } | { error: string };
  }
}

const random = (n: number) => Float32Array.from({ length: n }, () => Math.random() * 2 - 1);

async function timeOurs(gpu: Gpu, run: () => Tensor, reps: number): Promise<number> {
  await gpu.read(run()); // warm-up: compile, first touch
  const t0 = performance.now();
  let y: Tensor | null = null;
  for (let i = 0; i < reps; i++) y = run();
  await gpu.read(y!);
  return (performance.now() - t0) / reps;
}

async function timePeer(T: number, K: number, N: number, reps: number): Promise<number> {
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
  const reps = small ? 3 : 20;
  const shapes: [number, number, number][] = small
    ? [[128, 512, 512], [64, 1024, 768]]
    : [[512, 2048, 2048], [512, 4096, 4096], [512, 4544, 4672]];
  const gemv: [number, number][] = small ? [[1024, 1024], [2048, 2048]] : [[4096, 4096], [4544, 4672], [4096, 14336]];
  const rows: BenchRow[] = [];
  const add = (kernel: string, T: number, K: number, N: number, bytes: number, ms: number, peer: number) =>
    rows.push({
      kernel, shape: `${T}×${K}→${N}`, ms, gflops: (2 * T * K * N) / ms / 1e6, gbps: bytes / ms / 1e6,
      peer_ms: peer, ratio: ms / peer,
    });

  for (const [T, K, N] of shapes) {
    const x = gpu.tensor([T, K], 'f32', random(T * K));
    const w = gpu.tensor([N, K], 'f32', random(N * K));
    const y = gpu.tensor([T, N]);
    const peer = await timePeer(T, K, N, reps);
    add('f32 matmul x·Wᵀ', T, K, N, 4 * (T * K + N * K + T * N), await timeOurs(gpu, () => linear(gpu, x, w, y), reps), peer);
    const q = quantizeNF4Gpu(gpu, w, 64);
    const nf4Bytes = 4 * T * K + (N * K) / 2 + (N * K) / 16 + 4 * T * N;
    add('NF4 matmul x·Wᵀ', T, K, N, nf4Bytes, await timeOurs(gpu, () => nf4Linear(gpu, x, q, y), reps), peer);
    for (const t of [x, w, y, q.packed, q.absmax]) t.release();
  }
  for (const [K, N] of gemv) {
    const x = gpu.tensor([1, K], 'f32', random(K));
    const w = gpu.tensor([N, K], 'f32', random(N * K));
    const q = quantizeNF4Gpu(gpu, w, 64);
    const y = gpu.tensor([1, N]);
    const peer = await timePeer(1, K, N, reps * 5);
    add('NF4 GEMV (decode)', 1, K, N, 4 * K + (N * K) / 2 + (N * K) / 16 + 4 * N, await timeOurs(gpu, () => nf4Linear(gpu, x, q, y), reps * 5), peer);
    for (const t of [x, w, y, q.packed, q.absmax]) t.release();
  }
  window.__bench = { adapter, size: small ? 'small' : 'large', rows };
  document.getElementById('status')!.textContent = `done on ${adapter}`;
  document.getElementById('table')!.textContent = JSON.stringify(rows, null, 1);
}

main().catch((e: unknown) => {
  window.__bench = { error: e instanceof Error ? `${e.message}\n${e.stack}` : String(e) };
});
