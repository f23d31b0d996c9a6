import { beforeAll, describe, expect, it } from 'vitest';
import type { Gpu } from '../../src/gpu/runtime';
import { ADAMW_DEFAULTS, adamwState, adamwStep, gradNormSq } from '../../src/ops/optim';
import { testGpu } from '../gpu';
import { adamwRef } from '../reference/optim';
import { POISON, freshSeed, randn, relError, rng } from '../reference/random';

let gpu: Gpu;
beforeAll(async () => {
  gpu = await testGpu();
});

describe('gradient norm and AdamW against float64', () => {
  for (const n of [1, 777, 2048, 100_003]) {
    it(`‖g‖² over ${n} elements`, async () => {
      const seed = freshSeed();
      const g = randn(rng(seed), n);
      const out = gpu.tensor([1]);
      gpu.fill(out, POISON);
      gradNormSq(gpu, gpu.tensor([n], 'f32', g), { out });
      let ref = 0;
      for (const x of g) ref += x * x;
      expect(relError(await gpu.read(out), [ref]), `seed ${seed}`).toBeLessThan(1e-4);
    });
  }

  for (const [name, hp] of [
    ['clipped, with weight decay', { ...ADAMW_DEFAULTS, learning_rate: 2e-3, weight_decay: 0.01, max_grad_norm: 0.5 }],
    ['unclipped (norm under max_grad_norm)', { ...ADAMW_DEFAULTS, learning_rate: 1e-3, max_grad_norm: 1e6 }],
    [
      'clipping off, QLoRA paper betas',
      { ...ADAMW_DEFAULTS, learning_rate: 2e-4, adam_beta2: 0.999, max_grad_norm: 0 },
    ],
  ] as const) {
    it(`three steps, ${name}`, async () => {
      const seed = freshSeed();
      const r = rng(seed);
      const n = 5003;
      const p0 = randn(r, n, 0.1);
      const state = adamwState(gpu, gpu.tensor([n], 'f32', p0));
      const p = Float64Array.from(p0),
        m = new Float64Array(n),
        v = new Float64Array(n);
      for (let t = 1; t <= 3; t++) {
        const g = randn(r, n, 0.02 * t);
        const normSq = adamwStep(gpu, state, gpu.tensor([n], 'f32', g), { settings: hp });
        const { norm } = adamwRef(p, m, v, g, hp, t);
        expect(relError(await gpu.read(normSq), [norm * norm]), `step ${t}, seed ${seed}`).toBeLessThan(1e-4);
        expect(relError(await gpu.read(state.params), p), `params, step ${t}, seed ${seed}`).toBeLessThan(1e-5);
        expect(relError(await gpu.read(state.m), m), `m, step ${t}, seed ${seed}`).toBeLessThan(1e-5);
        expect(relError(await gpu.read(state.v), v), `v, step ${t}, seed ${seed}`).toBeLessThan(1e-5);
      }
      expect(state.step).toBe(3);
    });
  }
});
