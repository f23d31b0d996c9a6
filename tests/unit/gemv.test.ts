// The decoding GEMVs (src/ops/gemv.ts) of every weight format against float64, with both row
// sums: subgroup shuffles (SwiftShader has subgroups, 4 wide) and the workgroup-memory fallback.
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Gpu } from '../../src/gpu/runtime';
import { halfLinear } from '../../src/ops/head';
import { uploadHalf } from '../../src/ops/half-matrix';
import { gemm } from '../../src/ops/matmul';
import { nf4Linear, uploadNF4 } from '../../src/ops/nf4';
import { packHalf, type HalfDtype } from '../../src/quant/half';
import { dequantizeNF4, quantizeNF4 } from '../../src/quant/nf4';
import { testGpu } from '../gpu';
import { gemmRef } from '../reference/linalg';
import { POISON, freshSeed, randn, relError, rng } from '../reference/random';

let gpu: Gpu;
let deviceSubgroups: number;
beforeAll(async () => {
  gpu = await testGpu();
  deviceSubgroups = gpu.subgroupSize;
});
afterEach(() => {
  gpu.subgroupSize = deviceSubgroups;
});

// [M rows of x, K, N rows of W]: one and several rows of x, K odd, whole words, long rows
const SHAPES: [number, number, number][] = [
  [1, 13, 37],
  [3, 64, 19],
  [4, 333, 70],
  [1, 1024, 9],
];

describe('decoding GEMVs against float64', () => {
  it('runs on subgroups here: SwiftShader offers them, so both row sums are covered below', () => {
    expect(deviceSubgroups).toBeGreaterThanOrEqual(4);
  });

  for (const reduction of ['subgroup shuffles', 'workgroup memory'] as const) {
    const use = () => {
      if (reduction === 'workgroup memory') gpu.subgroupSize = 0;
    };
    for (const [M, K, N] of SHAPES) {
      it(`f32 y += alpha · x Wᵀ at M=${M} K=${K} N=${N}, ${reduction}`, async () => {
        use();
        const seed = freshSeed();
        const r = rng(seed);
        const x = randn(r, M * K),
          w = randn(r, N * K),
          y0 = randn(r, M * N);
        const y = gpu.tensor([M, N], 'f32', y0);
        gemm(gpu, gpu.tensor([M, K], 'f32', x), gpu.tensor([N, K], 'f32', w), y, M, N, K, {
          transB: true,
          accumulate: true,
          alpha: 0.5,
        });
        const ref = gemmRef(x, w, M, N, K, { transB: true, alpha: 0.5, c0: y0 });
        expect(relError(await gpu.read(y), ref), `seed ${seed}`).toBeLessThan(1e-5);
      });

      it(`NF4 y = x Wᵀ at M=${M} K=${K} N=${N}, ${reduction}`, async () => {
        use();
        const seed = freshSeed();
        const r = rng(seed);
        const x = randn(r, M * K);
        const q = quantizeNF4(randn(r, N * K, 0.1), 64);
        const y = gpu.tensor([M, N]);
        gpu.fill(y, POISON);
        nf4Linear(gpu, gpu.tensor([M, K], 'f32', x), uploadNF4(gpu, q, [N, K]), { out: y });
        const ref = gemmRef(x, dequantizeNF4(q), M, N, K, { transB: true });
        expect(relError(await gpu.read(y), ref), `seed ${seed}`).toBeLessThan(1e-5);
      });

      for (const dtype of ['BF16', 'F16'] as HalfDtype[]) {
        it(`${dtype} z = x W[row0…]ᵀ at M=${M} K=${K} N=${N}, ${reduction}`, async () => {
          use();
          const seed = freshSeed();
          const r = rng(seed);
          const x = randn(r, M * K);
          const { words, rounded } = packHalf(randn(r, N * K, 0.1), dtype);
          // a chunk from an odd row: with K odd its rows start mid-word
          const row0 = Math.min(1, N - 1),
            rows = N - row0;
          const z = gpu.tensor([M, rows]);
          gpu.fill(z, POISON);
          halfLinear(gpu, gpu.tensor([M, K], 'f32', x), uploadHalf(gpu, [N, K], dtype, words), {
            out: z,
            row0,
            rows,
          });
          const full = gemmRef(x, rounded, M, N, K, { transB: true });
          const ref = new Float64Array(M * rows).map((_, i) => full[Math.floor(i / rows) * N + row0 + (i % rows)]);
          expect(relError(await gpu.read(z), ref), `seed ${seed}`).toBeLessThan(1e-5);
        });
      }
    }
  }
});
