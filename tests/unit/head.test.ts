import { beforeAll, describe, expect, it } from 'vitest';
import type { Gpu } from '../../src/gpu/runtime';
import { crossEntropy, halfLinear, halfLinearBackwardInput } from '../../src/ops/head';
import { uploadHalf, type HalfMatrix } from '../../src/ops/half-matrix';
import { packHalf, type HalfDtype } from '../../src/quant/half';
import { testGpu } from '../gpu';
import { finiteDifferences, gemmRef } from '../reference/linalg';
import { crossEntropyRef } from '../reference/loss';
import { POISON, freshSeed, randn, relError, rng } from '../reference/random';

let gpu: Gpu;
beforeAll(async () => {
  gpu = await testGpu();
});

function halfMatrix(
  values: Float32Array,
  rows: number,
  cols: number,
  dtype: HalfDtype,
  maxBytes?: number,
): { w: HalfMatrix; rounded: Float32Array } {
  const { words, rounded } = packHalf(values, dtype);
  return { w: uploadHalf(gpu, [rows, cols], dtype, words, maxBytes), rounded };
}

describe('16-bit output head against float64', () => {
  // blockRows: W held in row blocks of this many rows (as a table larger than one binding is)
  for (const [T, H, V, dtype, blockRows] of [
    [7, 65, 33, 'BF16', 0],
    [70, 64, 129, 'F16', 0],
    [3, 13, 1001, 'BF16', 0],
    [7, 65, 33, 'BF16', 10],
    [70, 64, 129, 'F16', 50],
    [3, 13, 1001, 'BF16', 250],
  ] as [number, number, number, HalfDtype, number][]) {
    const inBlocks = blockRows ? `, in blocks of ${blockRows} rows` : '';
    it(`z = x Wᵀ, by vocabulary chunks, and dX = dZ W at T=${T} H=${H} V=${V}, ${dtype}${inBlocks}`, async () => {
      const seed = freshSeed();
      const r = rng(seed);
      const x = randn(r, T * H),
        dz = randn(r, T * V);
      const { w, rounded } = halfMatrix(randn(r, V * H, 0.1), V, H, dtype, blockRows ? blockRows * H * 2 : undefined);
      expect(w.blocks.length).toBe(blockRows ? Math.ceil(V / blockRows) : 1);
      const tx = gpu.tensor([T, H], 'f32', x);
      const full = gemmRef(x, rounded, T, V, H, { transB: true });
      const row0 = Math.floor(V / 3),
        rows = V - row0 - 1; // a chunk from the middle, odd length
      const z = gpu.tensor([T, rows]);
      gpu.fill(z, POISON);
      halfLinear(gpu, tx, w, { out: z, row0, rows });
      const ref = new Float64Array(T * rows).map((_, i) => full[Math.floor(i / rows) * V + row0 + (i % rows)]);
      expect(relError(await gpu.read(z), ref), `seed ${seed}`).toBeLessThan(1e-5);
      const dx = gpu.tensor([T, H]);
      gpu.fill(dx, POISON);
      halfLinearBackwardInput(gpu, gpu.tensor([T, V], 'f32', dz), w, { dx });
      expect(relError(await gpu.read(dx), gemmRef(dz, rounded, T, H, V)), `seed ${seed}`).toBeLessThan(1e-5);
    });
  }
});

describe('cross-entropy against float64', () => {
  for (const [T, V] of [
    [9, 37],
    [5, 1000],
    [4, 3],
  ]) {
    it(`loss and gradient in place at T=${T} V=${V}, with ignored labels`, async () => {
      const seed = freshSeed();
      const r = rng(seed);
      const z = randn(r, T * V, 3);
      const labels = Int32Array.from({ length: T }, (_, t) => (t % 3 === 1 ? -100 : Math.floor(r() * V)));
      const counted = labels.filter((l) => l >= 0).length;
      // a row whose label is the largest logit, so that both hits and misses occur
      if (labels[0] >= 0) z[labels[0]] = 20;
      const tz = gpu.tensor([T, V], 'f32', z);
      const loss = gpu.tensor([T]);
      const stats = gpu.tensor([T, 2]);
      gpu.fill(loss, POISON);
      gpu.fill(stats, POISON);
      crossEntropy(gpu, tz, gpu.tensor([T], 'i32', labels), { scale: 1 / counted, loss, stats });
      const ref = crossEntropyRef(z, labels, T, V);
      expect(relError(await gpu.read(loss), ref.loss), `seed ${seed}`).toBeLessThan(1e-5);
      const st = await gpu.read(stats);
      const column = (c: number) => st.filter((_, i) => i % 2 === c);
      expect(relError(column(0), ref.entropy), `seed ${seed}`).toBeLessThan(1e-5);
      expect(Array.from(column(1)), `seed ${seed}`).toEqual(Array.from(ref.hit));
      expect(ref.hit[0]).toBe(1);
      const grad = await gpu.read(tz);
      expect(
        relError(
          grad,
          ref.grad.map((g) => g / counted),
        ),
        `seed ${seed}`,
      ).toBeLessThan(1e-5);
      if (T * V <= 400) {
        const mean = (v: Float64Array) => crossEntropyRef(v, labels, T, V).loss.reduce((a, b) => a + b, 0) / counted;
        expect(relError(grad, finiteDifferences(mean, z)), `seed ${seed}`).toBeLessThan(1e-4);
      }
    });
  }

  it("soft-caps the logits first, as Gemma 2's final_logit_softcapping does, gradient included", async () => {
    const seed = freshSeed();
    const r = rng(seed);
    const [T, V, cap] = [5, 23, 4];
    const z = randn(r, T * V, 6); // beyond the cap, so that it bites
    const labels = Int32Array.from({ length: T }, (_, t) => (t === 2 ? -100 : Math.floor(r() * V)));
    const counted = labels.filter((l) => l >= 0).length;
    const tz = gpu.tensor([T, V], 'f32', z);
    const tl = gpu.tensor([T], 'i32', labels);
    const loss = await gpu.read(crossEntropy(gpu, tz, tl, { scale: 1 / counted, softcap: cap }));
    const capped = (v: ArrayLike<number>) => Float64Array.from(v, (x) => cap * Math.tanh(x / cap));
    expect(relError(loss, crossEntropyRef(capped(z), labels, T, V).loss), `seed ${seed}`).toBeLessThan(1e-5);
    const mean = (v: Float64Array) =>
      crossEntropyRef(capped(v), labels, T, V).loss.reduce((a, b) => a + b, 0) / counted;
    expect(relError(await gpu.read(tz), finiteDifferences(mean, z)), `seed ${seed}`).toBeLessThan(1e-4);
  });

  it('counts a hit for the first of tied maxima only (torch.argmax); a flat row has entropy log V', async () => {
    const V = 7;
    const z = new Float32Array(3 * V);
    z.set([0, 5, 1, 5, 2, 0, 0], 0); // maxima at 1 and 3: argmax 1
    z.set([0, 5, 1, 5, 2, 0, 0], V);
    // row 2 is flat: entropy log 7, and its first index is the argmax
    const labels = Int32Array.of(1, 3, 0);
    const stats = gpu.tensor([3, 2]);
    gpu.fill(stats, POISON);
    crossEntropy(gpu, gpu.tensor([3, V], 'f32', z), gpu.tensor([3], 'i32', labels), { stats });
    const st = await gpu.read(stats);
    expect([st[1], st[3], st[5]]).toEqual([1, 0, 1]);
    expect(st[4]).toBeCloseTo(Math.log(7), 6);
    expect(relError(Float32Array.of(st[0], st[2]), crossEntropyRef(z, labels, 2, V).entropy)).toBeLessThan(1e-5);
  });

  it('takes a chunk of rows at an offset into the labels', async () => {
    const V = 11;
    const z = randn(rng(5), 2 * V);
    const labels = Int32Array.of(3, -100, 7, 1);
    const tz = gpu.tensor([2, V], 'f32', z);
    const loss = await gpu.read(crossEntropy(gpu, tz, gpu.tensor([4], 'i32', labels), { rowOffset: 2 }));
    const ref = crossEntropyRef(z, labels.subarray(2), 2, V);
    expect(relError(loss, ref.loss)).toBeLessThan(1e-5);
  });
});
