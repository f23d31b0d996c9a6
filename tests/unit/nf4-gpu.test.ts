import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Gpu } from '../../src/gpu/runtime';
import { nf4Linear, nf4LinearBackwardInput, quantizeNF4Gpu, readNF4Bytes, uploadNF4 } from '../../src/ops/nf4';
import { NF4_CODE, NF4_THRESHOLDS, dequantizeNF4, quantizeNF4 } from '../../src/quant/nf4';
import { testGpu } from '../gpu';
import { finiteDifferences, gemmRef, linearLoss } from '../reference/linalg';
import { POISON, freshSeed, randn, relError, rng } from '../reference/random';

let gpu: Gpu;
beforeAll(async () => {
  gpu = await testGpu();
});

describe('GPU NF4 quantizer', () => {
  it('uses the same threshold bits as the CPU quantizer', () => {
    const src = readFileSync(new URL('../../shaders/nf4_quantize.wgsl', import.meta.url), 'utf8');
    const list = /NF4_THRESHOLD_BITS = array<u32, 15>\(([^)]*)\)/.exec(src)![1];
    const bits = list.split(',').map((s) => parseInt(s.trim().replace(/u$/, ''), 16));
    expect(bits).toEqual(Array.from(new Uint32Array(NF4_THRESHOLDS.buffer)));
  });

  for (const bs of [32, 64, 256, 4096]) {
    it(`writes the same bytes and absmax as the CPU at blocksize ${bs}, odd shapes and edge values`, async () => {
      const seed = freshSeed();
      const r = rng(seed);
      const [rows, cols] = [7, Math.ceil((2.5 * bs) / 7) * 2 + 1]; // odd element count, partial last block
      const n = rows * cols;
      const x = randn(r, n, 0.03);
      x.fill(0, bs, 2 * bs); // an all-zero block
      for (let i = 0; i < 16; i++) x[2 * bs + i] = NF4_CODE[i] * 0.5; // exact code values
      for (let i = 0; i < 15; i++) x[2 * bs + 16 + i] = NF4_THRESHOLDS[i] * 0.5; // exactly on thresholds
      x[2 * bs + 40] = 0.5; // sets that block's absmax to 0.5
      const cpu = quantizeNF4(x, bs);
      const w = gpu.tensor([rows, cols], 'f32', x);
      const q = quantizeNF4Gpu(gpu, w, { blocksize: bs });
      gpu.fill(q.packed, POISON);
      gpu.fill(q.absmax, POISON);
      const q2 = quantizeNF4Gpu(gpu, w, { blocksize: bs });
      const bytes = await readNF4Bytes(gpu, q2);
      expect(Buffer.from(bytes).equals(Buffer.from(cpu.packed)), `seed ${seed}`).toBe(true);
      expect(Array.from(await gpu.read(q2.absmax)), `seed ${seed}`).toEqual(Array.from(cpu.absmax));
    });
  }

  it('takes the correctly rounded reciprocal for every absmax mantissa pattern it meets', async () => {
    // Many blocks, each with its own random absmax, and values spread over all codes: any
    // 1-ulp error in 1/absmax that crosses a threshold shows up as a different byte.
    const seed = freshSeed();
    const r = rng(seed);
    const bs = 32,
      blocks = 4096;
    const x = new Float32Array(bs * blocks);
    for (let b = 0; b < blocks; b++) {
      const a = Math.fround(0.001 + r() * 3);
      for (let i = 0; i < bs; i++) {
        const t = NF4_THRESHOLDS[Math.floor(r() * 15)];
        x[b * bs + i] = Math.fround(Math.fround(t * a) * (1 + (r() - 0.5) * 2e-7)); // near a threshold
      }
      x[b * bs] = a;
    }
    const cpu = quantizeNF4(x, bs);
    const q = quantizeNF4Gpu(gpu, gpu.tensor([blocks, bs], 'f32', x), { blocksize: bs });
    const bytes = await readNF4Bytes(gpu, q);
    let diff = 0;
    for (let i = 0; i < bytes.length; i++) if (bytes[i] !== cpu.packed[i]) diff++;
    expect(diff, `seed ${seed}`).toBe(0);
  });
});

describe('NF4 linear layer against float64 with the dequantized weight', () => {
  // [T, in, out]: GEMV rows (T ≤ 4), odd shapes, tile multiples; `in` not a multiple of 8, so
  // rows of W start mid-word.
  const SHAPES: [number, number, number][] = [
    [1, 65, 33],
    [3, 127, 70],
    [1, 256, 19], // GEMV on whole-word rows (in % 8 == 0)
    [2, 96, 37],
    [7, 65, 33],
    [64, 128, 64],
    [70, 77, 131],
    [40, 72, 12], // a narrow product: 64×16 tiles forward
  ];
  for (const [T, inF, outF] of SHAPES) {
    it(`y = x Wᵀ and dX = dY W at T=${T} in=${inF} out=${outF}`, async () => {
      const seed = freshSeed();
      const r = rng(seed);
      const wv = randn(r, outF * inF, 0.05),
        x = randn(r, T * inF),
        dy = randn(r, T * outF);
      const cpu = quantizeNF4(wv, 64);
      const wd = dequantizeNF4(cpu);
      const w = uploadNF4(gpu, cpu, [outF, inF]);
      const tx = gpu.tensor([T, inF], 'f32', x),
        tdy = gpu.tensor([T, outF], 'f32', dy);
      const y = gpu.tensor([T, outF]),
        dx = gpu.tensor([T, inF]);
      gpu.fill(y, POISON);
      gpu.fill(dx, POISON);
      nf4Linear(gpu, tx, w, { out: y });
      nf4LinearBackwardInput(gpu, tdy, w, { dx });
      expect(relError(await gpu.read(y), gemmRef(x, wd, T, outF, inF, { transB: true })), `seed ${seed}`).toBeLessThan(
        1e-5,
      );
      expect(relError(await gpu.read(dx), gemmRef(dy, wd, T, inF, outF)), `seed ${seed}`).toBeLessThan(1e-5);
    });
  }

  it('computes dX of L = Σ (x Wᵀ) ⊙ G through the frozen NF4 weight, by central finite differences', async () => {
    const seed = freshSeed();
    const r = rng(seed);
    const [T, inF, outF] = [6, 19, 11];
    const cpu = quantizeNF4(randn(r, outF * inF), 32);
    const wd = dequantizeNF4(cpu);
    const x = randn(r, T * inF),
      G = randn(r, T * outF);
    const dx = await gpu.read(
      nf4LinearBackwardInput(gpu, gpu.tensor([T, outF], 'f32', G), uploadNF4(gpu, cpu, [outF, inF])),
    );
    const fd = finiteDifferences((v) => linearLoss(v, wd, G, T, inF, outF), x);
    expect(relError(dx, fd), `seed ${seed}`).toBeLessThan(1e-4);
  });

  it('accumulates with alpha on both the GEMV and the tiled path', async () => {
    const seed = freshSeed();
    const r = rng(seed);
    const [inF, outF] = [45, 29];
    const cpu = quantizeNF4(randn(r, outF * inF), 32);
    const wd = dequantizeNF4(cpu);
    const w = uploadNF4(gpu, cpu, [outF, inF]);
    for (const T of [2, 9]) {
      const x = randn(r, T * inF),
        y0 = randn(r, T * outF);
      const y = gpu.tensor([T, outF], 'f32', y0);
      nf4Linear(gpu, gpu.tensor([T, inF], 'f32', x), w, { out: y, accumulate: true, alpha: 0.3 });
      const ref = gemmRef(x, wd, T, outF, inF, { transB: true, alpha: 0.3, c0: y0 });
      expect(relError(await gpu.read(y), ref), `T=${T}, seed ${seed}`).toBeLessThan(1e-5);
    }
  });

  // [T, in, out, r]: the GEMV (T ≤ 4) on whole and part words, the tiled product with K = in + r
  // crossing a tile's depth mid-way
  for (const [T, inF, outF, r] of [
    [1, 64, 37, 16],
    [3, 65, 19, 5],
    [9, 72, 40, 16],
    [70, 77, 131, 3],
  ]) {
    it(`folds LoRA's up-projection in: y += α(x Wᵀ + s · h Bᵀ) at T=${T} in=${inF} out=${outF} r=${r}`, async () => {
      const seed = freshSeed();
      const g = rng(seed);
      const x = randn(g, T * inF),
        h = randn(g, T * r),
        B = randn(g, outF * r),
        y0 = randn(g, T * outF);
      const q = quantizeNF4(randn(g, outF * inF, 0.05), 64);
      const [s, alpha] = [0.7, 1.5];
      const y = gpu.tensor([T, outF], 'f32', y0);
      const lora = { h: gpu.tensor([T, r], 'f32', h), B: gpu.tensor([outF, r], 'f32', B), scale: s };
      nf4Linear(gpu, gpu.tensor([T, inF], 'f32', x), uploadNF4(gpu, q, [outF, inF]), {
        out: y,
        accumulate: true,
        alpha,
        lora,
      });
      const frozen = gemmRef(x, dequantizeNF4(q), T, outF, inF, { transB: true });
      const up = gemmRef(h, B, T, outF, r, { transB: true });
      const ref = frozen.map((v, i) => y0[i] + alpha * (v + s * up[i]));
      expect(relError(await gpu.read(y), ref), `seed ${seed}`).toBeLessThan(1e-5);
    });
  }

  it('matches the weight quantized on the GPU', async () => {
    const seed = freshSeed();
    const r = rng(seed);
    const [T, inF, outF] = [5, 96, 40];
    const wv = randn(r, outF * inF, 0.1),
      x = randn(r, T * inF);
    const w = quantizeNF4Gpu(gpu, gpu.tensor([outF, inF], 'f32', wv), { blocksize: 64 });
    const wd = dequantizeNF4(quantizeNF4(wv, 64));
    const y = nf4Linear(gpu, gpu.tensor([T, inF], 'f32', x), w);
    expect(relError(await gpu.read(y), gemmRef(x, wd, T, outF, inF, { transB: true })), `seed ${seed}`).toBeLessThan(
      1e-5,
    );
  });
});
