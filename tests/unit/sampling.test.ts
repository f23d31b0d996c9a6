import { describe, expect, it } from 'vitest';
import { SAMPLING_DEFAULTS, checkSampling, nextToken, processLogits, softmax } from '../../src/generate/sampling';
import { rng } from '../reference/random';

const sample = { ...SAMPLING_DEFAULTS, do_sample: true, top_k: 0 };

describe('next-token choice, as transformers generate() makes it', () => {
  it('is argmax without sampling, first index on ties', () => {
    expect(nextToken([1, 3, 3, 2], [], SAMPLING_DEFAULTS, Math.random)).toBe(1);
  });

  it('applies the repetition penalty to every seen token once, dividing positives and multiplying negatives', () => {
    const z = processLogits([2, -2, 1, 4], [0, 1, 1], { ...SAMPLING_DEFAULTS, repetition_penalty: 2 });
    expect(Array.from(z)).toEqual([1, -4, 1, 4]);
  });

  it('divides by temperature, then keeps the top k (ties at the boundary kept), then the top-p nucleus', () => {
    expect(Array.from(processLogits([2, 4, 6], [], { ...sample, temperature: 2 }))).toEqual([1, 2, 3]);
    expect(Array.from(processLogits([1, 5, 3, 3, 0], [], { ...sample, top_k: 2 }))).toEqual([
      -Infinity,
      5,
      3,
      3,
      -Infinity,
    ]);
    // probabilities 0.1, 0.2, 0.3, 0.4, ascending cumulative 0.1, 0.3, 0.6, 1: a token goes while its
    // cumulative is ≤ 1 − top_p (0.25: only the first; 0.7: all but the top one)
    const z = Math.log;
    const kept = processLogits([z(0.1), z(0.2), z(0.3), z(0.4)], [], { ...sample, top_p: 0.75 });
    expect(Array.from(kept, Number.isFinite)).toEqual([false, true, true, true]);
    const tight = processLogits([z(0.1), z(0.2), z(0.3), z(0.4)], [], { ...sample, top_p: 0.3 });
    expect(Array.from(tight, Number.isFinite)).toEqual([false, false, false, true]);
  });

  it('draws with the processed probabilities, reproducibly for a seed', () => {
    const logits = [Math.log(0.5), Math.log(0.3), Math.log(0.2)];
    const draw = (seed: number) => {
      const r = rng(seed);
      return Array.from({ length: 4000 }, () => nextToken(logits, [], sample, r));
    };
    const a = draw(3);
    expect(draw(3)).toEqual(a);
    const freq = [0, 1, 2].map((i) => a.filter((t) => t === i).length / a.length);
    for (const [i, p] of softmax(logits).entries()) expect(Math.abs(freq[i] - p)).toBeLessThan(0.03);
  });

  it('refuses settings that mean nothing', () => {
    expect(() => checkSampling({ ...sample, temperature: 0 })).toThrow(/temperature must be > 0/);
    expect(() => checkSampling({ ...sample, top_p: 0 })).toThrow(/top_p must be in \(0, 1\]/);
    expect(() => checkSampling({ ...sample, top_k: 1.5 })).toThrow(/top_k must be a whole number/);
  });
});
