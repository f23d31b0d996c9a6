import { beforeAll, describe, expect, it } from 'vitest';
import type { Gpu } from '../../src/gpu/runtime';
import { addBias, embed } from '../../src/ops/rows';
import { packHalf } from '../../src/quant/half';
import { testGpu } from '../gpu';
import { POISON, freshSeed, randn, rng } from '../reference/random';

let gpu: Gpu;
beforeAll(async () => {
  gpu = await testGpu();
});

describe('16-bit embedding and bias', () => {
  for (const dtype of ['BF16', 'F16'] as const) {
    it(`looks up rows and adds a bias exactly, ${dtype}`, async () => {
      const seed = freshSeed();
      const r = rng(seed);
      const [V, H, T] = [37, 13, 9];
      const e = packHalf(randn(r, V * H), dtype);
      const table = { words: gpu.tensor([e.words.length], 'u32', e.words), length: V * H, dtype, shape: [V, H] as [number, number] };
      const ids = Uint32Array.from({ length: T }, () => Math.floor(r() * V));
      ids[0] = V - 1;
      const x = gpu.tensor([T, H]);
      gpu.fill(x, POISON);
      embed(gpu, table, gpu.tensor([T], 'u32', ids), x);
      const want = Float32Array.from({ length: T * H }, (_, i) => e.rounded[ids[Math.floor(i / H)] * H + (i % H)]);
      expect(Array.from(await gpu.read(x)), `seed ${seed}`).toEqual(Array.from(want)); // a copy: exact
      const b = packHalf(randn(r, H), dtype);
      addBias(gpu, x, { words: gpu.tensor([b.words.length], 'u32', b.words), length: H, dtype });
      const withBias = want.map((v, i) => Math.fround(v + b.rounded[i % H]));
      expect(Array.from(await gpu.read(x)), `seed ${seed}`).toEqual(Array.from(withBias));
    });
  }
});
