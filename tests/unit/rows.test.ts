import { beforeAll, describe, expect, it } from 'vitest';
import type { Gpu } from '../../src/gpu/runtime';
import { addBias, embed } from '../../src/ops/rows';
import { uploadHalf } from '../../src/ops/half-matrix';
import { packHalf } from '../../src/quant/half';
import { gatherHeads, scatterHeads } from '../../src/ops/heads';
import { testGpu } from '../gpu';
import { POISON, freshSeed, randn, rng } from '../reference/random';

let gpu: Gpu;
beforeAll(async () => {
  gpu = await testGpu();
});

describe('16-bit embedding and bias', () => {
  // blockRows: the table in row blocks of this many rows (one larger than a binding is split)
  for (const [dtype, blockRows] of [
    ['BF16', 0],
    ['F16', 0],
    ['BF16', 8],
    ['F16', 6],
  ] as const) {
    const inBlocks = blockRows ? `, table in blocks of ${blockRows} rows` : '';
    it(`looks up rows and adds a bias exactly, ${dtype}${inBlocks}`, async () => {
      const seed = freshSeed();
      const r = rng(seed);
      const [V, H, T] = [37, 13, 9];
      const e = packHalf(randn(r, V * H), dtype);
      const table = uploadHalf(gpu, [V, H], dtype, e.words, blockRows ? blockRows * H * 2 : undefined);
      expect(table.blocks.length).toBe(blockRows ? Math.ceil(V / blockRows) : 1);
      const ids = Uint32Array.from({ length: T }, () => Math.floor(r() * V));
      ids[0] = V - 1;
      ids[1] = 0;
      const x = gpu.tensor([T, H]);
      gpu.fill(x, POISON);
      embed(gpu, table, gpu.tensor([T], 'u32', ids), { out: x });
      const want = Float32Array.from({ length: T * H }, (_, i) => e.rounded[ids[Math.floor(i / H)] * H + (i % H)]);
      expect(Array.from(await gpu.read(x)), `seed ${seed}`).toEqual(Array.from(want)); // a copy: exact
      const b = packHalf(randn(r, H), dtype);
      addBias(gpu, x, { words: gpu.tensor([b.words.length], 'u32', b.words), length: H, dtype });
      const withBias = want.map((v, i) => Math.fround(v + b.rounded[i % H]));
      expect(Array.from(await gpu.read(x)), `seed ${seed}`).toEqual(Array.from(withBias));
      // Gemma scales the embeddings by √H
      const scaled = embed(gpu, table, gpu.tensor([T], 'u32', ids), { scale: 8 });
      expect(Array.from(await gpu.read(scaled)), `seed ${seed}`).toEqual(Array.from(want, (v) => Math.fround(v * 8)));
    });
  }
});

describe('heads out of a fused projection and back', () => {
  // Falcon-7B's layout [q0 … q(H−1), k, v], and the grouped one of new_decoder_architecture
  // ([q, q, k, v] per KV group), on odd sizes
  for (const [name, maps] of [
    ['multi-query', { q: [0, 1, 2, 3, 4], k: [5], v: [6] }],
    ['grouped', { q: [0, 1, 4, 5, 8, 9], k: [2, 6, 10], v: [3, 7, 11] }],
  ] as [string, Record<'q' | 'k' | 'v', number[]>][]) {
    it(`gathers q, k, v exactly and scatters their gradients back (${name})`, async () => {
      const seed = freshSeed();
      const r = rng(seed);
      const [T, d] = [5, 3];
      const Ns = maps.q.length + maps.k.length + maps.v.length;
      const fused = randn(r, T * Ns * d);
      const src = gpu.tensor([T, Ns, d], 'f32', fused);
      const back = gpu.tensor([T, Ns, d]);
      gpu.fill(back, POISON);
      for (const part of ['q', 'k', 'v'] as const) {
        const map = gpu.tensor([maps[part].length], 'u32', Uint32Array.from(maps[part]));
        const piece = gpu.tensor([T, maps[part].length, d]);
        gpu.fill(piece, POISON);
        gatherHeads(gpu, src, map, piece);
        const got = await gpu.read(piece);
        const want = Float32Array.from({ length: T * maps[part].length * d }, (_, i) => {
          const e = i % d,
            j = Math.floor(i / d) % maps[part].length,
            t = Math.floor(i / (d * maps[part].length));
          return fused[(t * Ns + maps[part][j]) * d + e];
        });
        expect(Array.from(got), `${part} seed ${seed}`).toEqual(Array.from(want));
        scatterHeads(gpu, piece, map, back);
      }
      expect(Array.from(await gpu.read(back)), `seed ${seed}`).toEqual(Array.from(Float32Array.from(fused)));
    });
  }
});
