// The kernel timings shared by the page bench (bench/bench.ts, with tfjs-webgpu as the peer)
// and the Node bench (bench/node-bench.ts, on Dawn, no peer).
import type { Gpu, Tensor } from '../src/gpu/runtime';
import { linear } from '../src/ops/matmul';
import { nf4Linear, quantizeNF4Gpu } from '../src/ops/nf4';

export interface BenchRow {
  kernel: string;
  shape: string; // T×in→out
  ms: number;
  gflops: number;
  gbps: number;
  peer_ms: number | null;
  ratio: number | null; // ours / peer time: below 1 is faster than the peer
}

/** Times y = x Wᵀ (x: [T, K], W: [N, K]) in the peer library; null when there is none. */
export type Peer = (T: number, K: number, N: number, reps: number) => Promise<number | null>;

export const random = (n: number) => Float32Array.from({ length: n }, () => Math.random() * 2 - 1);

async function timeOurs(gpu: Gpu, run: () => Tensor, reps: number): Promise<number> {
  await gpu.read(run()); // warm-up: compile, first touch
  const t0 = performance.now();
  let y: Tensor | null = null;
  for (let i = 0; i < reps; i++) y = run();
  await gpu.read(y!);
  return (performance.now() - t0) / reps;
}

export async function benchKernels(gpu: Gpu, small: boolean, peer: Peer): Promise<BenchRow[]> {
  const reps = small ? 3 : 20;
  // Falcon-7B's shapes at the large size: hidden 4544, fused QKV 4672, MLP 18176.
  const shapes: [number, number, number][] = small
    ? [
        [128, 512, 512],
        [64, 1024, 768],
      ]
    : [
        [512, 2048, 2048],
        [512, 4096, 4096],
        [512, 4544, 4672],
        [512, 4544, 18176],
      ];
  const gemv: [number, number][] = small
    ? [
        [1024, 1024],
        [2048, 2048],
      ]
    : [
        [4096, 4096],
        [4544, 4672],
        [4544, 18176],
      ];
  const rows: BenchRow[] = [];
  const add = (kernel: string, T: number, K: number, N: number, bytes: number, ms: number, peerMs: number | null) =>
    rows.push({
      kernel,
      shape: `${T}×${K}→${N}`,
      ms,
      gflops: (2 * T * K * N) / ms / 1e6,
      gbps: bytes / ms / 1e6,
      peer_ms: peerMs,
      ratio: peerMs ? ms / peerMs : null,
    });
  const nf4Bytes = (T: number, K: number, N: number) => 4 * T * K + (N * K) / 2 + (N * K) / 16 + 4 * T * N;

  for (const [T, K, N] of shapes) {
    const x = gpu.tensor([T, K], 'f32', random(T * K));
    const w = gpu.tensor([N, K], 'f32', random(N * K));
    const y = gpu.tensor([T, N]);
    const peerMs = await peer(T, K, N, reps);
    const f32Ms = await timeOurs(gpu, () => linear(gpu, x, w, { out: y }), reps);
    add('f32 matmul x·Wᵀ', T, K, N, 4 * (T * K + N * K + T * N), f32Ms, peerMs);
    const q = quantizeNF4Gpu(gpu, w, { blocksize: 64 });
    const nf4Ms = await timeOurs(gpu, () => nf4Linear(gpu, x, q, { out: y }), reps);
    add('NF4 matmul x·Wᵀ', T, K, N, nf4Bytes(T, K, N), nf4Ms, peerMs);
    for (const t of [x, w, y, q.packed, q.absmax]) t.release();
  }
  for (const [K, N] of gemv) {
    const x = gpu.tensor([1, K], 'f32', random(K));
    const w = gpu.tensor([N, K], 'f32', random(N * K));
    const q = quantizeNF4Gpu(gpu, w, { blocksize: 64 });
    const y = gpu.tensor([1, N]);
    const peerMs = await peer(1, K, N, reps * 5);
    const gemvMs = await timeOurs(gpu, () => nf4Linear(gpu, x, q, { out: y }), reps * 5);
    add('NF4 GEMV (decode)', 1, K, N, nf4Bytes(1, K, N), gemvMs, peerMs);
    for (const t of [x, w, y, q.packed, q.absmax]) t.release();
  }
  return rows;
}

export function formatTable(rows: BenchRow[]): string {
  const pad = (s: unknown, n: number) => String(s).padEnd(n);
  const lines = [
    pad('kernel', 20) +
      pad('T×in→out', 18) +
      pad('ms', 10) +
      pad('GFLOP/s', 10) +
      pad('GB/s', 9) +
      pad('peer ms', 10) +
      'ours/peer',
  ];
  for (const r of rows) {
    lines.push(
      pad(r.kernel, 20) +
        pad(r.shape, 18) +
        pad(r.ms.toFixed(3), 10) +
        pad(r.gflops.toFixed(1), 10) +
        pad(r.gbps.toFixed(1), 9) +
        pad(r.peer_ms?.toFixed(3) ?? '—', 10) +
        (r.ratio?.toFixed(2) ?? '—'),
    );
  }
  return lines.join('\n');
}
