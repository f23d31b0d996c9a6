import { beforeAll, describe, expect, it } from 'vitest';
import type { Gpu } from '../../src/gpu/runtime';
import { dropoutForward, loraBackward, loraForward, loraScale } from '../../src/ops/lora';
import { testGpu } from '../gpu';
import { finiteDifference, keepMask, loraBackwardRef, loraForwardRef, type LoraRefInput } from '../reference/lora';
import { POISON, freshSeed, randn, relError, rng } from '../reference/random';

let gpu: Gpu;
beforeAll(async () => {
  gpu = await testGpu();
});

// [T, in, r, out, dropout]
const CASES: [number, number, number, number, number][] = [
  [7, 65, 8, 33, 0],
  [7, 65, 8, 33, 0.1],
  [13, 31, 3, 70, 0.5],
  [64, 64, 16, 64, 0.05],
];

function setup(T: number, inF: number, r: number, outF: number, p: number, seed: number) {
  const rand = rng(seed);
  const dropSeed = Math.floor(rand() * 2 ** 32);
  const input: LoraRefInput = {
    x: randn(rand, T * inF),
    A: randn(rand, r * inF, 1 / Math.sqrt(inF)),
    B: randn(rand, outF * r, 0.5),
    T,
    inF,
    r,
    outF,
    scale: loraScale(16, r),
    mask: keepMask(T * inF, p, dropSeed),
  };
  const G = randn(rand, T * outF); // dL/dy for L = Σ y ⊙ G
  return { input, G, dropSeed };
}

describe('LoRA branch against float64', () => {
  for (const [T, inF, r, outF, p] of CASES) {
    it(`forward and backward at T=${T} in=${inF} r=${r} out=${outF} dropout=${p}`, async () => {
      const seed = freshSeed();
      const { input, G, dropSeed } = setup(T, inF, r, outF, p, seed);
      const x = gpu.tensor([T, inF], 'f32', Float32Array.from(input.x));
      const adapter = {
        A: gpu.tensor([r, inF], 'f32', Float32Array.from(input.A)),
        B: gpu.tensor([outF, r], 'f32', Float32Array.from(input.B)),
        scale: input.scale,
        dropout: p,
      };
      const y0 = randn(rng(seed + 1), T * outF);
      const y = gpu.tensor([T, outF], 'f32', y0); // the frozen path's output, added to
      const saved = loraForward(gpu, x, adapter, y, { seed: dropSeed });
      const grads = { dA: gpu.tensor([r, inF]), dB: gpu.tensor([outF, r]) };
      gpu.fill(grads.dA, POISON);
      gpu.fill(grads.dB, POISON);
      const dx0 = randn(rng(seed + 2), T * inF);
      const dx = gpu.tensor([T, inF], 'f32', dx0);
      loraBackward(gpu, gpu.tensor([T, outF], 'f32', G), adapter, saved, grads, { dx, seed: dropSeed });

      const msg = `seed ${seed}`;
      const yRef = loraForwardRef(input).map((v, k) => v + y0[k]);
      expect(relError(await gpu.read(y), yRef), msg).toBeLessThan(1e-5);
      const ref = loraBackwardRef(input, G);
      const dA = await gpu.read(grads.dA),
        dB = await gpu.read(grads.dB);
      const dxOut = (await gpu.read(dx)).map((v, k) => v - dx0[k]);
      expect(relError(dA, ref.dA), msg).toBeLessThan(1e-4);
      expect(relError(dB, ref.dB), msg).toBeLessThan(1e-4);
      expect(relError(dxOut, ref.dx), msg).toBeLessThan(1e-4);
      // ... and the analytic reference is itself the derivative of the loss
      if (T * inF <= 1000) {
        for (const [which, got] of [
          ['A', dA],
          ['B', dB],
          ['x', dxOut],
        ] as const) {
          expect(relError(got, finiteDifference(input, G, which)), `${which}, ${msg}`).toBeLessThan(1e-4);
        }
      }
    });
  }

  it('accumulates gradients over micro-batches', async () => {
    const seed = freshSeed();
    const [T, inF, r, outF] = [5, 24, 4, 18];
    const a = setup(T, inF, r, outF, 0, seed),
      b = setup(T, inF, r, outF, 0, seed + 7);
    b.input.A = a.input.A;
    b.input.B = a.input.B;
    const adapter = {
      A: gpu.tensor([r, inF], 'f32', Float32Array.from(a.input.A)),
      B: gpu.tensor([outF, r], 'f32', Float32Array.from(a.input.B)),
      scale: a.input.scale,
      dropout: 0,
    };
    const grads = { dA: gpu.tensor([r, inF]), dB: gpu.tensor([outF, r]) };
    for (const [k, mb] of [a, b].entries()) {
      const x = gpu.tensor([T, inF], 'f32', Float32Array.from(mb.input.x));
      const saved = loraForward(gpu, x, adapter, gpu.tensor([T, outF]));
      loraBackward(gpu, gpu.tensor([T, outF], 'f32', Float32Array.from(mb.G)), adapter, saved, grads, {
        accumulate: k > 0,
      });
    }
    const ra = loraBackwardRef(a.input, a.G),
      rb = loraBackwardRef(b.input, b.G);
    expect(
      relError(
        await gpu.read(grads.dA),
        ra.dA.map((v, k) => v + rb.dA[k]),
      ),
      `seed ${seed}`,
    ).toBeLessThan(1e-4);
    expect(
      relError(
        await gpu.read(grads.dB),
        ra.dB.map((v, k) => v + rb.dB[k]),
      ),
      `seed ${seed}`,
    ).toBeLessThan(1e-4);
  });
});

describe('LoRA dropout', () => {
  it('keeps the fraction 1 - p, scales kept values by 1 / (1 - p), and repeats for a seed', async () => {
    const n = 100_003,
      p = 0.3;
    const x = gpu.tensor([n], 'f32', new Float32Array(n).fill(1));
    const a = await gpu.read(dropoutForward(gpu, x, { p, seed: 1234 }));
    const b = await gpu.read(dropoutForward(gpu, x, { p, seed: 1234 }));
    const c = await gpu.read(dropoutForward(gpu, x, { p, seed: 1235 }));
    expect(Array.from(a)).toEqual(Array.from(b));
    expect(Array.from(a)).not.toEqual(Array.from(c));
    expect(Array.from(a)).toEqual(Array.from(keepMask(n, p, 1234), Math.fround));
    const kept = a.filter((v) => v !== 0).length / n;
    expect(Math.abs(kept - (1 - p))).toBeLessThan(0.01);
    expect(a.find((v) => v !== 0)).toBe(Math.fround(1 / (1 - p)));
  });

  it('refuses a probability outside [0, 1)', () => {
    const x = gpu.tensor([4]);
    expect(() => dropoutForward(gpu, x, { p: 1 })).toThrow(/lora_dropout must be in \[0, 1\)/);
  });
});
