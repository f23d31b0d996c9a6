// Qwen3 against float64, through its checkpoint: Qwen2's layout without q/k/v biases, a per-head
// RMSNorm of q and k before RoPE (q_norm, k_norm), a head_dim (24) that is not hidden / heads (16),
// a tied head — the reference logits and loss in 16 and 4 bits, LoRA gradients by finite
// differences, KV-cache decoding as the full pass computes, learning, and adapter keys as PEFT
// names them.
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
  root = await mkdtemp(join(tmpdir(), 'qwen3-'));
});

describe('Qwen3 against float64', () => {
  it('loads by transformers names; gives the reference logits, loss and LoRA gradients, in 16 and 4 bits', async () => {
    const seed = freshSeed();
    const r = rng(seed);
    const dir = join(root, `qwen3-${seed}`);
    await writeTinyCheckpoint(dir, 'qwen3', seed);
    for (const nf4 of [false, true]) {
      const e = await referenceErrors(gpu, dir, nf4, r, (c) => llamaReference(dir, nf4, c));
      expect(e.config).toMatchObject({ modelType: 'qwen3', hidden: 64, heads: 4, headDim: 24, qkNorm: true });
      expect(e.config.tieEmbeddings).toBe(true);
      expect(e.config.bias).toEqual({ qkv: false, o: false, mlp: false });
      const msg = `${nf4 ? 'NF4' : 'BF16'}, seed ${seed}`;
      expect(e.logits, `logits, ${msg}`).toBeLessThan(1e-5);
      expect(e.loss, `loss, ${msg}`).toBeLessThan(1e-5);
      expect(e.grads, `LoRA gradients, ${msg}`).toBeLessThan(1e-4);
      // FAMILY_REPORT=1 prints the errors measured
      if (process.env.FAMILY_REPORT) console.log(`qwen3 ${msg}: ${JSON.stringify({ ...e, config: undefined })}`);
    }
  });

  it('decodes with a KV cache as the full pass computes, learns, and names its adapter as PEFT does', async () => {
    const seed = freshSeed();
    const dir = join(root, `qwen3-train-${seed}`);
    const { losses, decode, names, adapterConfig } = await learnDecodeExport(
      gpu,
      dir,
      'qwen3',
      seed,
      'Qwen/Qwen3-0.6B',
    );
    expect(losses[19], losses.map((l) => l.toFixed(2)).join(' ')).toBeLessThan(losses[0] * 0.7);
    expect(decode, `decode, seed ${seed}`).toBeLessThan(1e-5); // through the normed q and k too
    if (process.env.FAMILY_REPORT) console.log(`qwen3 decode: ${decode.toExponential(2)}`);
    expect(names).toContain('base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight');
    expect(names).toContain('base_model.model.model.layers.0.self_attn.k_proj.lora_B.weight');
    expect(names.some((n) => n.includes('_norm'))).toBe(false); // the norms are frozen: no adapter of theirs
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
