// SmolLM3 against float64, through its checkpoint: Llama's layout with a tied head and layers that
// skip RoPE (no_rope_layers: here the second) — the reference logits and loss in 16 and 4 bits, LoRA
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
import { learnDecodeExport, llamaReference, referenceErrors } from '../model-checks';

let gpu: Gpu;
let root: string;
beforeAll(async () => {
  gpu = await testGpu();
  root = await mkdtemp(join(tmpdir(), 'smollm3-'));
});

describe('SmolLM3 against float64', () => {
  it('loads by transformers names; gives the reference logits, loss and LoRA gradients, in 16 and 4 bits', async () => {
    const seed = freshSeed();
    const r = rng(seed);
    const dir = join(root, `smollm3-${seed}`);
    await writeTinyCheckpoint(dir, 'smollm3', seed);
    for (const nf4 of [false, true]) {
      const e = await referenceErrors(gpu, dir, nf4, r, (c) => llamaReference(dir, nf4, c));
      expect(e.config).toMatchObject({ modelType: 'smollm3', family: 'llama', headDim: 16, noRope: [false, true] });
      expect(e.config.tieEmbeddings).toBe(true);
      expect(e.config.rope).toEqual({ theta: 5e6, scaling: null });
      const msg = `${nf4 ? 'NF4' : 'BF16'}, seed ${seed}`;
      expect(e.logits, `logits, ${msg}`).toBeLessThan(1e-5);
      expect(e.loss, `loss, ${msg}`).toBeLessThan(1e-5);
      expect(e.grads, `LoRA gradients, ${msg}`).toBeLessThan(1e-4);
      // FAMILY_REPORT=1 prints the errors measured
      if (process.env.FAMILY_REPORT) console.log(`smollm3 ${msg}: ${JSON.stringify({ ...e, config: undefined })}`);
    }
  });

  it('decodes with a KV cache as the full pass computes, learns, and names its adapter as PEFT does', async () => {
    const seed = freshSeed();
    const dir = join(root, `smollm3-train-${seed}`);
    const { losses, decode, names, adapterConfig } = await learnDecodeExport(
      gpu,
      dir,
      'smollm3',
      seed,
      'HuggingFaceTB/SmolLM3-3B',
    );
    expect(losses[19], losses.map((l) => l.toFixed(2)).join(' ')).toBeLessThan(losses[0] * 0.7);
    expect(decode, `decode, seed ${seed}`).toBeLessThan(1e-5); // through the layer without RoPE too
    if (process.env.FAMILY_REPORT) console.log(`smollm3 decode: ${decode.toExponential(2)}`);
    expect(names).toContain('base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight');
    expect(names).toContain('base_model.model.model.layers.0.self_attn.k_proj.lora_B.weight');
    expect(names.length).toBe(2 * 7 * 2);
    expect(adapterConfig.target_modules).toEqual([
      'down_proj',
      'gate_proj',
      'k_proj',
      'o_proj',
      'q_proj',
      'up_proj',
      'v_proj',
    ]);
  });
});
