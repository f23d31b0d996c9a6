// Gemma 2 against float64, through its checkpoint: (1 + w) norms around every block, embeddings
// scaled by √hidden, GeGLU, its own attention scale, soft-capped scores and logits, and a
// sliding window on alternate layers — the reference logits and loss in 16 and 4 bits, LoRA
// gradients by finite differences, KV-cache decoding as the full pass computes, learning, and
// adapter keys as PEFT names them.
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { readSafetensorsSync } from '../../src/formats/safetensors';
import type { Gpu } from '../../src/gpu/runtime';
import { exportAdapter } from '../../src/model/adapter';
import { ropeInverseFrequencies, type ModelConfig } from '../../src/model/config';
import { buildModel, loadCheckpoint } from '../../src/model/load';
import { attachLora } from '../../src/model/lora-linear';
import { localCheckpoint } from '../../src/node/local-files';
import { testGpu } from '../gpu';
import { gemmaLogitsRef, gemmaLossRef, type RefGemma, type RefGemmaLayer } from '../reference/gemma';
import type { RefLinear } from '../reference/llama';
import { freshSeed, randn, relError, rng } from '../reference/random';
import { writeTinyCheckpoint } from '../fixtures/tiny-checkpoint';
import {
  checkpointValues,
  decodeError,
  randomBatch,
  refLinears,
  sampledLoraGradients,
  tinyWithLora,
  trainLosses,
} from '../model-checks';

let gpu: Gpu;
let root: string;
beforeAll(async () => {
  gpu = await testGpu();
  root = await mkdtemp(join(tmpdir(), 'gemma-'));
});

async function reference(
  dir: string,
  nf4: boolean,
  c: ModelConfig,
): Promise<{ ref: RefGemma; linears: Map<string, RefLinear> }> {
  const values = await checkpointValues(dir);
  const qd = c.heads * c.headDim,
    kvd = c.kvHeads * c.headDim;
  const { linears, lin } = refLinears(values, nf4);
  const layers: RefGemmaLayer[] = Array.from({ length: c.layers }, (_, l) => {
    const p = `model.layers.${l}`;
    const v = (n: string) => values.get(`${p}.${n}.weight`)!;
    return {
      inputNorm: v('input_layernorm'),
      postAttnNorm: v('post_attention_layernorm'),
      preFfNorm: v('pre_feedforward_layernorm'),
      postFfNorm: v('post_feedforward_layernorm'),
      q: lin(`${p}.self_attn.q_proj`, qd, c.hidden),
      k: lin(`${p}.self_attn.k_proj`, kvd, c.hidden),
      v: lin(`${p}.self_attn.v_proj`, kvd, c.hidden),
      o: lin(`${p}.self_attn.o_proj`, c.hidden, qd),
      gate: lin(`${p}.mlp.gate_proj`, c.intermediate, c.hidden),
      up: lin(`${p}.mlp.up_proj`, c.intermediate, c.hidden),
      down: lin(`${p}.mlp.down_proj`, c.hidden, c.intermediate),
    };
  });
  return {
    ref: {
      c,
      embed: values.get('model.embed_tokens.weight')!,
      layers,
      norm: values.get('model.norm.weight')!,
      invFreq: ropeInverseFrequencies(c),
    },
    linears,
  };
}

/** Two packed sequences of 6 and 7 tokens, batched as training batches them. */

describe('Gemma 2 against float64', () => {
  it('loads by transformers names; gives the reference logits, loss and LoRA gradients, in 16 and 4 bits', async () => {
    const seed = freshSeed();
    const r = rng(seed);
    const dir = join(root, `gemma-${seed}`);
    await writeTinyCheckpoint(dir, 'gemma2', seed);
    for (const nf4 of [false, true]) {
      const loaded = await loadCheckpoint(gpu, localCheckpoint(dir), { load_in_4bit: nf4 });
      const c = loaded.config;
      expect(c.gemma).toEqual({ queryPreAttnScalar: 20, attnSoftcap: 1 });
      expect(c).toMatchObject({
        finalSoftcap: 3,
        localWindow: 4,
        localLayers: [true, false],
        embedScale: 8,
        qkNorm: false,
      });
      expect(c.headDim).toBe(24);
      const model = buildModel(gpu, loaded);
      const { ref, linears } = await reference(dir, nf4, c);
      const set = attachLora(gpu, loaded.linears, { r: 4, alpha: 8, dropout: 0, random: r });
      for (const m of loaded.linears) gpu.write(m.lora!.B, randn(r, m.lora!.B.numel, 0.05));
      for (const m of loaded.linears) {
        Object.assign(linears.get(m.path)!, {
          A: Float64Array.from(await gpu.read(m.lora!.A)),
          B: Float64Array.from(await gpu.read(m.lora!.B)),
          r: 4,
          scale: 2,
        });
      }
      const { h, batch } = randomBatch(gpu, r, c, 13, 6);
      const msg = `${nf4 ? 'NF4' : 'BF16'}, seed ${seed}`;
      expect(
        relError(await gpu.read(model.logits(batch)), gemmaLogitsRef(ref, h.ids, h.positions, h.start)),
        `logits, ${msg}`,
      ).toBeLessThan(1e-4);
      const losses = await gpu.read(model.forwardBackward(batch, 1 / h.counted, 0));
      const loss = losses.reduce((s, v) => s + v, 0) / h.counted;
      const refLoss = gemmaLossRef(ref, h.ids, h.labels, h.positions, h.start);
      expect(Math.abs(loss - refLoss) / refLoss, `loss, ${msg}`).toBeLessThan(1e-5);
      const { got, want } = sampledLoraGradients(
        loaded.linears,
        await gpu.read(set.grads),
        (m, which) => linears.get(m.path)![which] as Float64Array,
        () => gemmaLossRef(ref, h.ids, h.labels, h.positions, h.start),
        r,
      );
      expect(relError(got, want), `LoRA gradients, ${msg}`).toBeLessThan(1e-4);
      for (const t of [...model.weightTensors(), set.params, set.grads]) t.release();
    }
  });

  it('decodes with a KV cache as the full pass computes, learns, and names its adapter as PEFT does', async () => {
    const seed = freshSeed();
    const r = rng(seed);
    const dir = join(root, `gemma-train-${seed}`);
    const { c, model, lora } = await tinyWithLora(gpu, dir, 'gemma2', seed, r);
    const T = 12;
    const { ids, h, batch } = randomBatch(gpu, r, c, T, T);
    const losses = await trainLosses(gpu, model, lora, batch, h.counted);
    expect(losses[19], losses.map((l) => l.toFixed(2)).join(' ')).toBeLessThan(losses[0] * 0.7);
    expect(await decodeError(gpu, model, ids, batch), `decode, seed ${seed}`).toBeLessThan(1e-5);
    const files = await exportAdapter(gpu, lora, {
      base_model_name_or_path: 'google/gemma-2-2b',
      revision: null,
      lora_alpha: 16,
      lora_dropout: 0,
      use_rslora: false,
    });
    const names = readSafetensorsSync(files['adapter_model.safetensors']).map((t) => t.info.name);
    expect(names).toContain('base_model.model.model.layers.1.mlp.gate_proj.lora_A.weight');
    expect(names.length).toBe(2 * 7 * 2);
  });
});
