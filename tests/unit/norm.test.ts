import { beforeAll, describe, expect, it } from 'vitest';
import type { Gpu } from '../../src/gpu/runtime';
import {
  layernormBackward,
  layernormForward,
  rmsnormBackward,
  rmsnormForward,
  type HalfVector,
} from '../../src/ops/norm';
import { halfBitsToFloat, packHalf, toBF16Bits, toF16Bits, type HalfDtype } from '../../src/quant/half';
import { testGpu } from '../gpu';
import { finiteDifferences } from '../reference/linalg';
import { layernormRef, rmsnormRef } from '../reference/norm';
import { POISON, freshSeed, randn, relError, rng } from '../reference/random';

let gpu: Gpu;
beforeAll(async () => {
  gpu = await testGpu();
});

describe('16-bit weights', () => {
  it('rounds to BF16 and F16 to nearest even, as torch does', () => {
    expect(toBF16Bits(1)).toBe(0x3f80);
    expect(toBF16Bits(Math.fround(1 + 2 ** -8))).toBe(0x3f80); // tie → even
    expect(toBF16Bits(Math.fround(1 + 3 * 2 ** -8))).toBe(0x3f82); // tie → even (up)
    expect(toF16Bits(1)).toBe(0x3c00);
    expect(toF16Bits(65504)).toBe(0x7bff);
    expect(toF16Bits(70000)).toBe(0x7c00);
    expect(toF16Bits(2 ** -24)).toBe(0x0001);
    expect(toF16Bits(-2)).toBe(0xc000);
    expect(toF16Bits(1 + 2 ** -11)).toBe(0x3c00); // tie → even
    expect(toF16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02);
    for (const x of [0.1, -3.3, 1e-4, 123.456]) {
      // normal f16 range (subnormals below 6.1e-5)
      expect(Math.abs(halfBitsToFloat(toF16Bits(x), 'F16') - x)).toBeLessThanOrEqual(Math.abs(x) * 2 ** -11);
      expect(Math.abs(halfBitsToFloat(toBF16Bits(x), 'BF16') - x)).toBeLessThanOrEqual(Math.abs(x) * 2 ** -8);
    }
  });
});

describe('RMSNorm against float64', () => {
  for (const [T, H, dtype] of [
    [7, 77, 'BF16'],
    [3, 576, 'F16'],
    [1, 5, 'BF16'],
    [33, 300, 'F16'],
  ] as [number, number, HalfDtype][]) {
    it(`forward and backward at T=${T} H=${H}, ${dtype} weight`, async () => {
      const seed = freshSeed();
      const r = rng(seed);
      const eps = 1e-5;
      const x = randn(r, T * H),
        dy = randn(r, T * H);
      const { words, rounded: w } = packHalf(
        randn(r, H, 0.5).map((v) => v + 1),
        dtype,
      );
      const weight: HalfVector = { words: gpu.tensor([words.length], 'u32', words), length: H, dtype };
      const tx = gpu.tensor([T, H], 'f32', x);
      const y = gpu.tensor([T, H]),
        dx = gpu.tensor([T, H]);
      gpu.fill(y, POISON);
      gpu.fill(dx, POISON);
      rmsnormForward(gpu, tx, weight, { eps, out: y });
      rmsnormBackward(gpu, tx, weight, gpu.tensor([T, H], 'f32', dy), { eps, dx });
      expect(relError(await gpu.read(y), rmsnormRef(x, w, T, H, eps)), `seed ${seed}`).toBeLessThan(1e-5);
      const loss = (v: Float64Array) => rmsnormRef(v, w, T, H, eps).reduce((s, yi, i) => s + yi * dy[i], 0);
      expect(relError(await gpu.read(dx), finiteDifferences(loss, x, 1e-5)), `seed ${seed}`).toBeLessThan(1e-4);
    });
  }

  it("scales by 1 + w when the weight is stored minus one (Gemma's RMSNorm)", async () => {
    const seed = freshSeed();
    const r = rng(seed);
    const [T, H, eps] = [6, 96, 1e-6];
    const x = randn(r, T * H),
      dy = randn(r, T * H);
    const { words, rounded: w } = packHalf(randn(r, H, 0.3), 'BF16');
    const weight: HalfVector = { words: gpu.tensor([words.length], 'u32', words), length: H, dtype: 'BF16' };
    const tx = gpu.tensor([T, H], 'f32', x);
    const y = rmsnormForward(gpu, tx, weight, { eps, offset: 1 });
    const dx = rmsnormBackward(gpu, tx, weight, gpu.tensor([T, H], 'f32', dy), { eps, offset: 1 });
    const w1 = Float64Array.from(w, (v) => 1 + v);
    expect(relError(await gpu.read(y), rmsnormRef(x, w1, T, H, eps)), `seed ${seed}`).toBeLessThan(1e-5);
    const loss = (v: Float64Array) => rmsnormRef(v, w1, T, H, eps).reduce((s, yi, i) => s + yi * dy[i], 0);
    expect(relError(await gpu.read(dx), finiteDifferences(loss, x, 1e-5)), `seed ${seed}`).toBeLessThan(1e-4);
  });

  it('adds into dx when asked (the residual stream already holds a gradient)', async () => {
    const seed = freshSeed();
    const r = rng(seed);
    const [T, H] = [4, 40];
    const x = randn(r, T * H),
      dy = randn(r, T * H),
      base = randn(r, T * H);
    const { words } = packHalf(randn(r, H), 'BF16');
    const weight: HalfVector = { words: gpu.tensor([words.length], 'u32', words), length: H, dtype: 'BF16' };
    const tx = gpu.tensor([T, H], 'f32', x),
      tdy = gpu.tensor([T, H], 'f32', dy);
    const alone = await gpu.read(rmsnormBackward(gpu, tx, weight, tdy, { eps: 1e-6 }));
    const dx = gpu.tensor([T, H], 'f32', base);
    rmsnormBackward(gpu, tx, weight, tdy, { eps: 1e-6, dx, accumulate: true });
    expect(
      relError(
        await gpu.read(dx),
        Float64Array.from(base, (b, i) => b + alone[i]),
      ),
      `seed ${seed}`,
    ).toBeLessThan(1e-6);
  });

  it('refuses a weight of the wrong length', () => {
    const w: HalfVector = { words: gpu.tensor([2], 'u32'), length: 4, dtype: 'BF16' };
    expect(() => rmsnormForward(gpu, gpu.tensor([2, 5]), w)).toThrow(/the weight has 4 values, x has 5 features/);
  });
});

describe('LayerNorm against float64', () => {
  for (const [T, H, dtype] of [
    [5, 71, 'BF16'],
    [2, 256, 'F16'],
    [1, 3, 'BF16'],
    [17, 454, 'BF16'],
  ] as [number, number, HalfDtype][]) {
    it(`forward and backward at T=${T} H=${H}, ${dtype} weight and bias`, async () => {
      const seed = freshSeed();
      const r = rng(seed);
      const eps = 1e-5;
      // rows with a mean far from 0, as residual streams have
      const x = randn(r, T * H).map((v, i) => v + 3 * Math.sin(i / H)),
        dy = randn(r, T * H);
      const wp = packHalf(
        randn(r, H, 0.5).map((v) => v + 1),
        dtype,
      );
      const bp = packHalf(randn(r, H, 0.2), dtype);
      const weight: HalfVector = { words: gpu.tensor([wp.words.length], 'u32', wp.words), length: H, dtype };
      const bias: HalfVector = { words: gpu.tensor([bp.words.length], 'u32', bp.words), length: H, dtype };
      const tx = gpu.tensor([T, H], 'f32', x);
      const y = gpu.tensor([T, H]),
        dx = gpu.tensor([T, H]);
      gpu.fill(y, POISON);
      gpu.fill(dx, POISON);
      layernormForward(gpu, tx, weight, bias, { eps, out: y });
      layernormBackward(gpu, tx, weight, gpu.tensor([T, H], 'f32', dy), { eps, dx });
      expect(
        relError(await gpu.read(y), layernormRef(x, wp.rounded, bp.rounded, T, H, eps)),
        `seed ${seed}`,
      ).toBeLessThan(1e-5);
      const loss = (v: Float64Array) =>
        layernormRef(v, wp.rounded, bp.rounded, T, H, eps).reduce((s, yi, i) => s + yi * dy[i], 0);
      expect(relError(await gpu.read(dx), finiteDifferences(loss, x, 1e-5)), `seed ${seed}`).toBeLessThan(1e-4);
    });
  }

  it('adds into dx when asked', async () => {
    const seed = freshSeed();
    const r = rng(seed);
    const [T, H] = [3, 50];
    const x = randn(r, T * H),
      dy = randn(r, T * H),
      base = randn(r, T * H);
    const { words } = packHalf(randn(r, H), 'BF16');
    const weight: HalfVector = { words: gpu.tensor([words.length], 'u32', words), length: H, dtype: 'BF16' };
    const tx = gpu.tensor([T, H], 'f32', x),
      tdy = gpu.tensor([T, H], 'f32', dy);
    const alone = await gpu.read(layernormBackward(gpu, tx, weight, tdy, { eps: 1e-5 }));
    const dx = gpu.tensor([T, H], 'f32', base);
    layernormBackward(gpu, tx, weight, tdy, { eps: 1e-5, dx, accumulate: true });
    expect(
      relError(
        await gpu.read(dx),
        Float64Array.from(base, (b, i) => b + alone[i]),
      ),
      `seed ${seed}`,
    ).toBeLessThan(1e-6);
  });
});
