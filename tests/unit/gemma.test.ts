// Gemma 2 against float64, through its checkpoint: (1 + w) norms around every block, embeddings
// scaled by √hidden, GeGLU, its own attention scale, soft-capped scores and logits, and a
// sliding window on alternate layers — the reference logits and loss in 16 and 4 bits, LoRA
// gradients by finite differences, KV-cache decoding as the full pass computes, learning, and
// adapter keys as PEFT names them.
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Gpu } from '../../src/gpu/runtime';
import { testGpu } from '../gpu';
import { freshSeed, rng } from '../reference/random';
import { writeTinyCheckpoint } from '../fixtures/tiny-checkpoint';
import { gemmaReference, learnDecodeExport, referenceErrors } from '../model-checks';

let gpu: Gpu;
let root: string;
beforeAll(async () => {
  gpu = await testGpu();
  root = await mkdtemp(join(tmpdir(), 'gemma-'));
});

describe('Gemma 2 against float64', () => {
  it('loads by transformers names; gives the reference logits, loss and LoRA gradients, in 16 and 4 bits', async () => {
    const seed = freshSeed();
    const r = rng(seed);
    const dir = join(root, `gemma-${seed}`);
    await writeTinyCheckpoint(dir, 'gemma2', seed);
    for (const nf4 of [false, true]) {
      const e = await referenceErrors(gpu, dir, nf4, r, (c) => gemmaReference(dir, nf4, c));
      const c = e.config;
      expect(c.gemma).toEqual({ queryPreAttnScalar: 20, attnSoftcap: 1 });
      expect(c).toMatchObject({
        finalSoftcap: 3,
        localWindow: 4,
        localLayers: [true, false],
        embedScale: 8,
        qkNorm: false,
      });
      expect(c.headDim).toBe(24);
      const msg = `${nf4 ? 'NF4' : 'BF16'}, seed ${seed}`;
      expect(e.logits, `logits, ${msg}`).toBeLessThan(1e-4);
      expect(e.loss, `loss, ${msg}`).toBeLessThan(1e-5);
      expect(e.grads, `LoRA gradients, ${msg}`).toBeLessThan(1e-4);
    }
  });

  it('decodes with a KV cache as the full pass computes, learns, and names its adapter as PEFT does', async () => {
    const seed = freshSeed();
    const dir = join(root, `gemma-train-${seed}`);
    const { losses, decode, names } = await learnDecodeExport(gpu, dir, 'gemma2', seed, 'google/gemma-2-2b');
    expect(losses[19], losses.map((l) => l.toFixed(2)).join(' ')).toBeLessThan(losses[0] * 0.7);
    expect(decode, `decode, seed ${seed}`).toBeLessThan(1e-5);
    expect(names).toContain('base_model.model.model.layers.1.mlp.gate_proj.lora_A.weight');
    expect(names.length).toBe(2 * 7 * 2);
  });
});
