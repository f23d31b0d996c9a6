import { beforeAll, describe, expect, it } from 'vitest';
import type { Gpu } from '../../src/gpu/runtime';
import { gemm, gemmTile, linear, linearBackwardInput, linearBackwardWeight } from '../../src/ops/matmul';
import { testGpu } from '../gpu';
import { finiteDifferences, gemmRef, linearLoss } from '../reference/linalg';
import { POISON, freshSeed, randn, relError, rng } from '../reference/random';

let gpu: Gpu;
beforeAll(async () => {
  gpu = await testGpu();
});

// Odd shapes (no dimension a tile multiple) and tile multiples, as [T, in, out]; the last two
// have a side of 16 or less (LoRA's rank), which takes the 64×16 and 16×64 tiles.
const SHAPES: [number, number, number][] = [
  [7, 65, 33],
  [1, 13, 5],
  [64, 64, 64],
  [130, 17, 129],
  [130, 40, 16],
  [200, 13, 70],
];

describe('f32 linear layer matmuls against float64', () => {
  for (const [T, inF, outF] of SHAPES) {
    it(`y = x Wᵀ, dX = dY W, dW = dYᵀ X at T=${T} in=${inF} out=${outF}`, async () => {
      const seed = freshSeed();
      const r = rng(seed);
      const x = randn(r, T * inF),
        w = randn(r, outF * inF),
        dy = randn(r, T * outF);
      const tx = gpu.tensor([T, inF], 'f32', x),
        tw = gpu.tensor([outF, inF], 'f32', w),
        tdy = gpu.tensor([T, outF], 'f32', dy);
      const y = gpu.tensor([T, outF]),
        dx = gpu.tensor([T, inF]),
        dw = gpu.tensor([outF, inF]);
      for (const t of [y, dx, dw]) gpu.fill(t, POISON);
      linear(gpu, tx, tw, { out: y });
      linearBackwardInput(gpu, tdy, tw, { dx });
      linearBackwardWeight(gpu, tdy, tx, { dw });
      const msg = `seed ${seed}`;
      expect(relError(await gpu.read(y), gemmRef(x, w, T, outF, inF, { transB: true })), msg).toBeLessThan(1e-5);
      expect(relError(await gpu.read(dx), gemmRef(dy, w, T, inF, outF)), msg).toBeLessThan(1e-5);
      expect(relError(await gpu.read(dw), gemmRef(dy, x, outF, inF, T, { transA: true })), msg).toBeLessThan(1e-5);
    });
  }

  it('computes the gradients of L = Σ (x Wᵀ) ⊙ G, by central finite differences', async () => {
    const seed = freshSeed();
    const r = rng(seed);
    const [T, inF, outF] = [5, 13, 9];
    const x = randn(r, T * inF),
      w = randn(r, outF * inF),
      G = randn(r, T * outF);
    const tx = gpu.tensor([T, inF], 'f32', x),
      tw = gpu.tensor([outF, inF], 'f32', w),
      tg = gpu.tensor([T, outF], 'f32', G);
    const dx = await gpu.read(linearBackwardInput(gpu, tg, tw));
    const dw = await gpu.read(linearBackwardWeight(gpu, tg, tx));
    const fdX = finiteDifferences((v) => linearLoss(v, w, G, T, inF, outF), x);
    const fdW = finiteDifferences((v) => linearLoss(x, v, G, T, inF, outF), w);
    expect(relError(dx, fdX), `seed ${seed}`).toBeLessThan(1e-4);
    expect(relError(dw, fdW), `seed ${seed}`).toBeLessThan(1e-4);
  });

  it('accumulates with alpha, and runs batches through grid z', async () => {
    const seed = freshSeed();
    const r = rng(seed);
    const [B, M, N, K] = [3, 9, 70, 31];
    const a = randn(r, B * M * K),
      b = randn(r, B * K * N),
      c0 = randn(r, B * M * N);
    const ta = gpu.tensor([B, M, K], 'f32', a),
      tb = gpu.tensor([B, K, N], 'f32', b),
      tc = gpu.tensor([B, M, N], 'f32', c0);
    gemm(gpu, ta, tb, tc, M, N, K, { accumulate: true, alpha: -0.75, batch: B });
    const out = await gpu.read(tc);
    for (let i = 0; i < B; i++) {
      const ref = gemmRef(a.subarray(i * M * K), b.subarray(i * K * N), M, N, K, {
        alpha: -0.75,
        c0: c0.subarray(i * M * N),
      });
      expect(relError(out.subarray(i * M * N, (i + 1) * M * N), ref), `batch ${i}, seed ${seed}`).toBeLessThan(1e-5);
    }
  });

  it('takes narrow tiles where one side of C is 16 or less, square ones elsewhere', () => {
    expect(gemmTile(256, 16)).toMatchObject({ WGX: 4, WGY: 16 }); // LoRA's h = x Aᵀ: [T, r]
    expect(gemmTile(16, 768)).toMatchObject({ WGX: 16, WGY: 4 }); // its dA = dhᵀ x: [r, in]
    expect(gemmTile(256, 768)).toMatchObject({ WGX: 16, WGY: 16 });
    expect(gemmTile(5, 9)).toMatchObject({ WGX: 16, WGY: 16 });
  });

  it('refuses mismatched shapes with the shapes in the message', () => {
    const x = gpu.tensor([4, 8]),
      w = gpu.tensor([5, 9]);
    expect(() => linear(gpu, x, w)).toThrow(/W has shape \[5, 9\], expected \[5, 8\]/);
  });
});
