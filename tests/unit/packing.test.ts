// Packing on the GPU: bfd puts several examples in one block with positions restarting and
// attention bounded per sequence, so every example's per-token losses must be what it gets
// trained alone. Wrapped packing lets the sequences of a block see each other: there the
// losses differ, which shows the comparison can fail.
import { beforeAll, describe, expect, it } from 'vitest';
import { hostBatch, releaseBatch, uploadBatch } from '../../src/data/batches';
import { packBfd, packWrapped, sequenceLengths, type Block, type Example } from '../../src/data/sft';
import type { Gpu } from '../../src/gpu/runtime';
import { parseModelConfig } from '../../src/model/registry';
import type { CausalLM } from '../../src/model/causal-lm';
import { testGpu } from '../gpu';
import { freshSeed, relError, rng } from '../reference/random';
import { TINY, buildTinyModel } from '../tiny-model';

let gpu: Gpu;
beforeAll(async () => {
  gpu = await testGpu();
});

/** Per-token losses of one block (labels shifted inside each sequence), as the trainer computes them. */
async function losses(model: CausalLM, b: Block): Promise<Float32Array> {
  const batch = uploadBatch(gpu, hostBatch([b], model.config.slidingWindow));
  const t = model.tokenLosses(batch);
  const out = await gpu.read(t);
  t.release();
  releaseBatch(batch);
  return out;
}

describe('packed examples against each alone', () => {
  it('bfd: every example gets the per-token losses it gets alone; wrapped does not', async () => {
    const seed = freshSeed();
    const r = rng(seed);
    const c = parseModelConfig({ ...TINY, model_type: 'llama', tie_word_embeddings: false });
    const { model } = buildTinyModel(gpu, c, r);
    const examples: Example[] = [9, 4, 7, 3, 5].map((n) => ({
      input_ids: Array.from({ length: n }, () => Math.floor(r() * c.vocab)),
      mask: Array.from({ length: n }, (_, t) => (t < 2 ? 0 : 1)), // a prompt of two tokens
    }));
    const alone = await Promise.all(examples.map((e) => losses(model, packBfd([e], 16)[0])));
    const bins = packBfd(examples, 16);
    expect(bins.map(sequenceLengths)).toEqual([
      [9, 7],
      [5, 4, 3],
    ]);
    // which example each sequence of each bin is: by its ids
    for (const bin of bins) {
      const got = await losses(model, bin);
      let at = 0;
      for (const n of sequenceLengths(bin)) {
        const i = examples.findIndex((e) => e.input_ids.join() === bin.input_ids.slice(at, at + n).join());
        expect(relError(got.subarray(at, at + n), alone[i]), `example ${i}, seed ${seed}`).toBeLessThan(1e-5);
        at += n;
      }
    }
    const [wrapped] = packWrapped(examples.slice(0, 2), 16);
    const seen = await losses(model, wrapped);
    expect(relError(seen.subarray(9, 13), alone[1]), `seed ${seed}`).toBeGreaterThan(1e-3);
  });
});
