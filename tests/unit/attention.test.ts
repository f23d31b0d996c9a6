import { beforeAll, describe, expect, it } from 'vitest';
import type { Gpu } from '../../src/gpu/runtime';
import { attentionBackward, attentionForward } from '../../src/ops/attention';
import { testGpu } from '../gpu';
import { attentionRef } from '../reference/attention';
import { dot, finiteDifferences } from '../reference/linalg';
import { POISON, freshSeed, randn, relError, rng } from '../reference/random';

let gpu: Gpu;
beforeAll(async () => {
  gpu = await testGpu();
});

// [T, H, Hkv, d, packed]: multi-head, grouped-query, multi-query (Falcon), packed sequences
const CASES: [number, number, number, number, boolean][] = [
  [7, 4, 2, 8, false],
  [9, 3, 1, 6, true],
  [5, 2, 2, 5, false],
  [70, 4, 1, 16, true],
];

describe('causal grouped-query attention against float64', () => {
  for (const [T, H, Hkv, d, packed] of CASES) {
    it(`forward and backward at T=${T} heads=${H} kv=${Hkv} d=${d}${packed ? ', packed sequences' : ''}`, async () => {
      const seed = freshSeed();
      const r = rng(seed);
      const q = randn(r, T * H * d),
        k = randn(r, T * Hkv * d),
        v = randn(r, T * Hkv * d),
        G = randn(r, T * H * d);
      // packed: sequences of lengths 3, 4, rest; each token sees only its own sequence
      const start = Uint32Array.from({ length: T }, (_, t) => (!packed ? 0 : t < 3 ? 0 : t < 7 ? 3 : 7));
      const tq = gpu.tensor([T, H, d], 'f32', q),
        tk = gpu.tensor([T, Hkv, d], 'f32', k),
        tv = gpu.tensor([T, Hkv, d], 'f32', v);
      const ts = gpu.tensor([T], 'u32', start);
      const o = gpu.tensor([T, H, d]);
      gpu.fill(o, POISON);
      const { P } = attentionForward(gpu, tq, tk, tv, ts, { out: o });
      const msg = `seed ${seed}`;
      expect(relError(await gpu.read(o), attentionRef(q, k, v, start, T, H, Hkv, d)), msg).toBeLessThan(1e-5);
      const g = attentionBackward(gpu, tq, tk, tv, P, gpu.tensor([T, H, d], 'f32', G));
      const loss = (qq: ArrayLike<number>, kk: ArrayLike<number>, vv: ArrayLike<number>) =>
        dot(attentionRef(qq, kk, vv, start, T, H, Hkv, d), G);
      if (T <= 10) {
        expect(
          relError(
            await gpu.read(g.dq),
            finiteDifferences((x) => loss(x, k, v), q),
          ),
          `dq, ${msg}`,
        ).toBeLessThan(1e-4);
        expect(
          relError(
            await gpu.read(g.dk),
            finiteDifferences((x) => loss(q, x, v), k),
          ),
          `dk, ${msg}`,
        ).toBeLessThan(1e-4);
        expect(
          relError(
            await gpu.read(g.dv),
            finiteDifferences((x) => loss(q, k, x), v),
          ),
          `dv, ${msg}`,
        ).toBeLessThan(1e-4);
      } else {
        // larger: against a few sampled finite differences of dv and dq
        const dv = await gpu.read(g.dv);
        for (const i of [0, 17, T * Hkv * d - 1]) {
          const e = 1e-3,
            vp = Float64Array.from(v),
            vm = Float64Array.from(v);
          vp[i] += e;
          vm[i] -= e;
          expect(Math.abs(dv[i] - (loss(q, k, vp) - loss(q, k, vm)) / (2 * e)), `dv[${i}], ${msg}`).toBeLessThan(1e-3);
        }
      }
    });
  }

  it("takes Gemma 2's scale and soft-capped scores, forward and backward", async () => {
    const seed = freshSeed();
    const r = rng(seed);
    const [T, H, Hkv, d] = [6, 4, 2, 8];
    const opt = { scale: 1 / Math.sqrt(12), softcap: 1.5 }; // a small cap, so that it bites
    const q = randn(r, T * H * d, 2),
      k = randn(r, T * Hkv * d, 2),
      v = randn(r, T * Hkv * d),
      G = randn(r, T * H * d);
    const start = new Uint32Array(T);
    const tq = gpu.tensor([T, H, d], 'f32', q),
      tk = gpu.tensor([T, Hkv, d], 'f32', k),
      tv = gpu.tensor([T, Hkv, d], 'f32', v);
    const { out: o, P } = attentionForward(gpu, tq, tk, tv, gpu.tensor([T], 'u32', start), opt);
    const msg = `seed ${seed}`;
    const ref = attentionRef(q, k, v, start, T, H, Hkv, d, opt);
    expect(relError(await gpu.read(o), ref), msg).toBeLessThan(1e-5);
    // the cap matters here
    expect(relError(ref, attentionRef(q, k, v, start, T, H, Hkv, d, { scale: opt.scale }))).toBeGreaterThan(1e-2);
    const g = attentionBackward(gpu, tq, tk, tv, P, gpu.tensor([T, H, d], 'f32', G), opt);
    const loss = (qq: ArrayLike<number>, kk: ArrayLike<number>, vv: ArrayLike<number>) =>
      dot(attentionRef(qq, kk, vv, start, T, H, Hkv, d, opt), G);
    expect(
      relError(
        await gpu.read(g.dq),
        finiteDifferences((x) => loss(x, k, v), q),
      ),
      `dq, ${msg}`,
    ).toBeLessThan(1e-4);
    expect(
      relError(
        await gpu.read(g.dk),
        finiteDifferences((x) => loss(q, x, v), k),
      ),
      `dk, ${msg}`,
    ).toBeLessThan(1e-4);
    expect(
      relError(
        await gpu.read(g.dv),
        finiteDifferences((x) => loss(q, k, x), v),
      ),
      `dv, ${msg}`,
    ).toBeLessThan(1e-4);
  });

  it('refuses q, k, v that do not fit together', () => {
    const q = gpu.tensor([4, 3, 8]),
      k = gpu.tensor([4, 2, 8]);
    expect(() => attentionForward(gpu, q, k, k, gpu.tensor([4], 'u32'))).toThrow(
      /3 query heads do not share 2 KV heads evenly/,
    );
  });
});
