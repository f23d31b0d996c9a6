import { beforeAll, describe, expect, it } from 'vitest';
import type { Gpu } from '../../src/gpu/runtime';
import { geluBackward, geluForward, swigluBackward, swigluForward } from '../../src/ops/mlp';
import { ropeBackward, ropeForward, ropeTables } from '../../src/ops/rope';
import { ropeInverseFrequencies } from '../../src/model/config';
import { parseModelConfig } from '../../src/model/registry';
import { testGpu } from '../gpu';
import { erfRef, geluRef, ropeRef, swigluRef } from '../reference/elementwise';
import { dot, finiteDifferences } from '../reference/linalg';
import { POISON, freshSeed, randn, relError, rng } from '../reference/random';

let gpu: Gpu;
beforeAll(async () => {
  gpu = await testGpu();
});

describe('SwiGLU and GeGLU against float64', () => {
  for (const act of ['silu', 'gelu_tanh'] as const) {
    for (const [T, I] of [
      [7, 65],
      [4, 128],
      [1, 3],
    ]) {
      it(`${act === 'silu' ? 'SwiGLU' : 'GeGLU (gelu_tanh)'} forward and backward at T=${T} I=${I}`, async () => {
        const seed = freshSeed();
        const r = rng(seed);
        const g = randn(r, T * I, 2),
          u = randn(r, T * I),
          dh = randn(r, T * I);
        const tg = gpu.tensor([T, I], 'f32', g),
          tu = gpu.tensor([T, I], 'f32', u);
        const h = gpu.tensor([T, I]),
          dg = gpu.tensor([T, I]),
          du = gpu.tensor([T, I]);
        for (const t of [h, dg, du]) gpu.fill(t, POISON);
        swigluForward(gpu, tg, tu, { out: h, activation: act });
        swigluBackward(gpu, tg, tu, gpu.tensor([T, I], 'f32', dh), { dg, du, activation: act });
        const ref = (gv: ArrayLike<number>, uv: ArrayLike<number>) =>
          act === 'silu' ? swigluRef(gv, uv) : geluRef(gv, 'tanh').map((a, i) => a * uv[i]);
        expect(relError(await gpu.read(h), ref(g, u)), `seed ${seed}`).toBeLessThan(1e-5);
        const fdG = finiteDifferences((v) => dot(ref(v, u), dh), g);
        const fdU = finiteDifferences((v) => dot(ref(g, v), dh), u);
        expect(relError(await gpu.read(dg), fdG), `seed ${seed}`).toBeLessThan(1e-4);
        expect(relError(await gpu.read(du), fdU), `seed ${seed}`).toBeLessThan(1e-4);
      });
    }
  }
});

describe('GELU against float64', () => {
  it('has a float64 erf to compare with', () => {
    // erf(0.5), erf(1), erf(2), erf(3.5) to 15 digits (Abramowitz & Stegun, table 7.1)
    expect(erfRef(0.5)).toBeCloseTo(0.520499877813047, 14);
    expect(erfRef(1)).toBeCloseTo(0.842700792949715, 14);
    expect(erfRef(-2)).toBeCloseTo(-0.995322265018953, 14);
    expect(erfRef(3.5)).toBeCloseTo(0.999999256901628, 14);
  });

  for (const approximate of ['none', 'tanh'] as const) {
    for (const [T, I] of [
      [5, 67],
      [3, 256],
      [1, 1],
    ]) {
      it(`${approximate === 'none' ? 'exact' : 'tanh'} GELU forward and backward at T=${T} I=${I}`, async () => {
        const seed = freshSeed();
        const r = rng(seed);
        // the tails too: erf's fit must hold far from 0 (where GELU is below 1e-15, f32's exp
        // keeps about 1e-5 of relative accuracy: the fixed tail points are checked absolutely)
        const a = randn(r, T * I, 2),
          dh = randn(r, T * I);
        if (a.length > 4) a.set([-9.5, -4.2, 0, 7.7]);
        const ta = gpu.tensor([T, I], 'f32', a);
        const h = gpu.tensor([T, I]),
          da = gpu.tensor([T, I]);
        for (const t of [h, da]) gpu.fill(t, POISON);
        geluForward(gpu, ta, { approximate, out: h });
        geluBackward(gpu, ta, gpu.tensor([T, I], 'f32', dh), { approximate, da });
        const ref = geluRef(a, approximate);
        const out = await gpu.read(h);
        expect(relError(out, ref), `seed ${seed}`).toBeLessThan(1e-5);
        for (let i = 0; i < a.length; i++)
          expect(Math.abs(out[i] - ref[i]), `a=${a[i]} seed ${seed}`).toBeLessThan(
            1e-6 * Math.max(1, Math.abs(ref[i])),
          );
        const fd = finiteDifferences((v) => dot(geluRef(v, approximate), dh), a);
        expect(relError(await gpu.read(da), fd), `seed ${seed}`).toBeLessThan(1e-4);
      });
    }
  }
});

describe('RoPE against float64', () => {
  const config = parseModelConfig({
    model_type: 'llama',
    hidden_size: 96,
    num_attention_heads: 3,
    num_key_value_heads: 1,
    num_hidden_layers: 1,
    intermediate_size: 8,
    vocab_size: 8,
    rope_theta: 500000,
    rope_scaling: {
      rope_type: 'llama3',
      factor: 8,
      low_freq_factor: 1,
      high_freq_factor: 4,
      original_max_position_embeddings: 64,
    },
  });
  it('rotates q in place, with positions restarting per packed sequence, and its backward inverts it', async () => {
    const seed = freshSeed();
    const r = rng(seed);
    const inv = ropeInverseFrequencies(config);
    const [T, heads, d] = [11, config.heads, config.headDim];
    const pos = Uint32Array.of(0, 1, 2, 3, 4, 5, 0, 1, 2, 300, 511); // two sequences, then far positions
    const tables = ropeTables(gpu, inv, 512);
    const tpos = gpu.tensor([T], 'u32', pos);
    const x = randn(r, T * heads * d),
      G = randn(r, T * heads * d);
    const tx = gpu.tensor([T, heads, d], 'f32', x);
    ropeForward(gpu, tx, tpos, tables);
    expect(relError(await gpu.read(tx), ropeRef(x, pos, inv, T, heads)), `seed ${seed}`).toBeLessThan(1e-5);
    const tg = gpu.tensor([T, heads, d], 'f32', G);
    ropeBackward(gpu, tg, tpos, tables);
    const fd = finiteDifferences((v) => dot(ropeRef(v, pos, inv, T, heads), G), x);
    expect(relError(await gpu.read(tg), fd), `seed ${seed}`).toBeLessThan(1e-4);
  });

  it('refuses a tensor whose last dimension is not the head size', () => {
    const t = ropeTables(gpu, [1, 0.5], 4);
    expect(() => ropeForward(gpu, gpu.tensor([2, 1, 6]), gpu.tensor([2], 'u32'), t)).toThrow(
      /x must be \[T, heads, 4\]/,
    );
  });
});
