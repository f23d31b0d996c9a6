import { beforeAll, describe, expect, it } from 'vitest';
import type { Gpu, Tensor } from '../../src/gpu/runtime';
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
      const { lse } = attentionForward(gpu, tq, tk, tv, ts, { out: o });
      const msg = `seed ${seed}`;
      expect(relError(await gpu.read(o), attentionRef(q, k, v, start, T, H, Hkv, d)), msg).toBeLessThan(1e-5);
      const g = attentionBackward(gpu, tq, tk, tv, ts, o, lse, gpu.tensor([T, H, d], 'f32', G));
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
    const ts = gpu.tensor([T], 'u32', start);
    const { out: o, lse } = attentionForward(gpu, tq, tk, tv, ts, opt);
    const msg = `seed ${seed}`;
    const ref = attentionRef(q, k, v, start, T, H, Hkv, d, opt);
    expect(relError(await gpu.read(o), ref), msg).toBeLessThan(1e-5);
    // the cap matters here
    expect(relError(ref, attentionRef(q, k, v, start, T, H, Hkv, d, { scale: opt.scale }))).toBeGreaterThan(1e-2);
    const g = attentionBackward(gpu, tq, tk, tv, ts, o, lse, gpu.tensor([T, H, d], 'f32', G), opt);
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

  it('reads a KV cache: the last Tq of Tk positions, in windows that cross blocks of 16, d = 72', async () => {
    const seed = freshSeed();
    const r = rng(seed);
    const [Tk, Tq, H, Hkv, d, window] = [41, 3, 4, 2, 72, 20];
    const q = randn(r, Tq * H * d),
      k = randn(r, Tk * Hkv * d),
      v = randn(r, Tk * Hkv * d);
    // the reference over all Tk queries (q of the earlier ones are zeros): its last Tq rows are ours
    const qFull = new Float32Array(Tk * H * d);
    qFull.set(q, (Tk - Tq) * H * d);
    const startFull = Uint32Array.from({ length: Tk }, (_, t) => Math.max(0, t - window + 1));
    const o = gpu.tensor([Tq, H, d]);
    gpu.fill(o, POISON);
    const ts = gpu.tensor([Tq], 'u32', startFull.subarray(Tk - Tq));
    const { lse } = attentionForward(
      gpu,
      gpu.tensor([Tq, H, d], 'f32', q),
      gpu.tensor([Tk, Hkv, d], 'f32', k),
      gpu.tensor([Tk, Hkv, d], 'f32', v),
      ts,
      { out: o },
    );
    lse.release();
    const ref = attentionRef(qFull, k, v, startFull, Tk, H, Hkv, d).subarray((Tk - Tq) * H * d);
    expect(relError(await gpu.read(o), ref), `seed ${seed}`).toBeLessThan(1e-5);
  });

  it('trains within sliding windows of packed sequences: forward and sampled gradients at T=50', async () => {
    const seed = freshSeed();
    const r = rng(seed);
    const [T, H, Hkv, d, window] = [50, 2, 1, 12, 7];
    const q = randn(r, T * H * d),
      k = randn(r, T * Hkv * d),
      v = randn(r, T * Hkv * d),
      G = randn(r, T * H * d);
    // two sequences (from 0 and from 23), each token seeing the last 7 of its own
    const start = Uint32Array.from({ length: T }, (_, t) => Math.max(t < 23 ? 0 : 23, t - window + 1));
    const ts = gpu.tensor([T], 'u32', start);
    const tq = gpu.tensor([T, H, d], 'f32', q),
      tk = gpu.tensor([T, Hkv, d], 'f32', k),
      tv = gpu.tensor([T, Hkv, d], 'f32', v);
    const { out: o, lse } = attentionForward(gpu, tq, tk, tv, ts);
    const msg = `seed ${seed}`;
    expect(relError(await gpu.read(o), attentionRef(q, k, v, start, T, H, Hkv, d)), msg).toBeLessThan(1e-5);
    const g = attentionBackward(gpu, tq, tk, tv, ts, o, lse, gpu.tensor([T, H, d], 'f32', G));
    const loss = (qq: ArrayLike<number>, kk: ArrayLike<number>, vv: ArrayLike<number>) =>
      dot(attentionRef(qq, kk, vv, start, T, H, Hkv, d), G);
    const sampled = async (grad: Tensor, x: Float32Array, f: (x: Float64Array) => number, name: string) => {
      const got = await gpu.read(grad);
      for (const i of [0, 101, 307, x.length - 1]) {
        const e = 1e-3,
          xp = Float64Array.from(x),
          xm = Float64Array.from(x);
        xp[i] += e;
        xm[i] -= e;
        expect(Math.abs(got[i] - (f(xp) - f(xm)) / (2 * e)), `${name}[${i}], ${msg}`).toBeLessThan(1e-3);
      }
    };
    await sampled(g.dq, q, (x) => loss(x, k, v), 'dq');
    await sampled(g.dk, k, (x) => loss(q, x, v), 'dk');
    await sampled(g.dv, v, (x) => loss(q, k, x), 'dv');
  });

  it('refuses q, k, v that do not fit together', () => {
    const q = gpu.tensor([4, 3, 8]),
      k = gpu.tensor([4, 2, 8]);
    expect(() => attentionForward(gpu, q, k, k, gpu.tensor([4], 'u32'))).toThrow(
      /3 query heads do not share 2 KV heads evenly/,
    );
  });
});
