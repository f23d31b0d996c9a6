// Gemma 3 against float64, through its checkpoint: Gemma 2's (1 + w) norms, scaled embeddings and
// GeGLU, with (1 + w) q/k norms per head, no soft caps, and a local/global layer pattern where the
// local layers attend within a window and rotate by their own RoPE base while the global one uses
// rope_theta with linear scaling — the reference logits and loss in 16 and 4 bits, LoRA gradients
// by finite differences, KV-cache decoding, learning, adapter keys as PEFT names them; and the
// same language model read from a multimodal gemma3 checkpoint under its older names.
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { readSafetensorsSync, writeSafetensors } from '../../src/formats/safetensors';
import type { Gpu } from '../../src/gpu/runtime';
import { exportAdapter } from '../../src/model/adapter';
import { buildModel, loadCheckpoint } from '../../src/model/load';
import { attachLora } from '../../src/model/lora-linear';
import { localCheckpoint } from '../../src/node/local-files';
import { testGpu } from '../gpu';
import { freshSeed, relError, rng } from '../reference/random';
import { writeTinyCheckpoint } from '../fixtures/tiny-checkpoint';
import { gemmaReference, learnDecodeExport, randomBatch, referenceErrors } from '../model-checks';

let gpu: Gpu;
let root: string;
beforeAll(async () => {
  gpu = await testGpu();
  root = await mkdtemp(join(tmpdir(), 'gemma3-'));
});

describe('Gemma 3 against float64', () => {
  it('loads by transformers names; gives the reference logits, loss and LoRA gradients, in 16 and 4 bits', async () => {
    const seed = freshSeed();
    const r = rng(seed);
    const dir = join(root, `gemma3-${seed}`);
    await writeTinyCheckpoint(dir, 'gemma3', seed);
    for (const nf4 of [false, true]) {
      const e = await referenceErrors(gpu, dir, nf4, r, (c) => gemmaReference(dir, nf4, c));
      expect(e.config).toMatchObject({
        modelType: 'gemma3_text',
        family: 'gemma',
        layers: 3,
        headDim: 24,
        qkNorm: true,
        localWindow: 4,
        localLayers: [true, true, false],
        finalSoftcap: null,
        embedScale: 8,
        rope: { theta: 1e6, scaling: { type: 'linear', factor: 8 } },
        ropeLocal: { theta: 10000, scaling: null },
      });
      expect(e.config.gemma).toEqual({ queryPreAttnScalar: 20, attnSoftcap: null });
      const msg = `${nf4 ? 'NF4' : 'BF16'}, seed ${seed}`;
      expect(e.logits, `logits, ${msg}`).toBeLessThan(1e-5);
      expect(e.loss, `loss, ${msg}`).toBeLessThan(1e-5);
      expect(e.grads, `LoRA gradients, ${msg}`).toBeLessThan(1e-4);
      // FAMILY_REPORT=1 prints the errors measured
      if (process.env.FAMILY_REPORT) console.log(`gemma3 ${msg}: ${JSON.stringify({ ...e, config: undefined })}`);
    }
  });

  it('decodes with a KV cache as the full pass computes, learns, and names its adapter as PEFT does', async () => {
    const seed = freshSeed();
    const dir = join(root, `gemma3-train-${seed}`);
    const { losses, decode, names } = await learnDecodeExport(gpu, dir, 'gemma3', seed, 'google/gemma-3-270m');
    expect(losses[19], losses.map((l) => l.toFixed(2)).join(' ')).toBeLessThan(losses[0] * 0.7);
    expect(decode, `decode, seed ${seed}`).toBeLessThan(1e-5); // through both RoPEs and both windows
    if (process.env.FAMILY_REPORT) console.log(`gemma3 decode: ${decode.toExponential(2)}`);
    expect(names).toContain('base_model.model.model.layers.2.self_attn.q_proj.lora_A.weight');
    expect(names.some((n) => n.includes('_norm'))).toBe(false);
    expect(names.length).toBe(3 * 7 * 2);
  });

  it('reads the language model of a multimodal gemma3 checkpoint, under its older names, as the text one', async () => {
    const seed = freshSeed();
    const text = join(root, `gemma3-text-${seed}`),
      multi = join(root, `gemma3-multi-${seed}`);
    await writeTinyCheckpoint(text, 'gemma3', seed);
    await writeTinyCheckpoint(multi, 'gemma3', seed);
    // Gemma3ForConditionalGeneration as Google's repositories hold it: language_model.model.…, a vision
    // tower and projector beside it, the text config nested (a default left out) and the end-of-turn
    // token among the top's eos_token_id, as gemma-3-4b-it has them
    const cfg = JSON.parse(await readFile(join(multi, 'config.json'), 'utf8'));
    const { rope_local_base_freq: _, eos_token_id: _eos, ...textConfig } = cfg;
    const top = {
      architectures: ['Gemma3ForConditionalGeneration'],
      model_type: 'gemma3',
      eos_token_id: [1, 106],
      text_config: textConfig,
      vision_config: { model_type: 'siglip_vision_model', hidden_size: 8 },
    };
    await writeFile(join(multi, 'config.json'), JSON.stringify(top));
    const index = JSON.parse(await readFile(join(multi, 'model.safetensors.index.json'), 'utf8'));
    const weightMap: Record<string, string> = {};
    for (const shard of new Set(Object.values(index.weight_map) as string[])) {
      const tensors = readSafetensorsSync(new Uint8Array(await readFile(join(multi, shard)))).map(({ info, data }) => ({
        name: `language_model.${info.name}`,
        dtype: info.dtype,
        shape: info.shape,
        data,
      }));
      tensors.push({
        name: 'vision_tower.vision_model.post_layernorm.weight',
        dtype: 'F32',
        shape: [2],
        data: new Uint8Array(8),
      });
      for (const t of tensors) weightMap[t.name] = shard;
      await writeFile(join(multi, shard), writeSafetensors(tensors, { format: 'pt' }));
    }
    await writeFile(join(multi, 'model.safetensors.index.json'), JSON.stringify({ ...index, weight_map: weightMap }));

    const r = rng(seed);
    const logits = async (dir: string) => {
      const loaded = await loadCheckpoint(gpu, localCheckpoint(dir), { load_in_4bit: true });
      const model = buildModel(gpu, loaded);
      const { batch } = randomBatch(gpu, rng(seed), loaded.config, 11, 5);
      const z = await gpu.read(model.logits(batch));
      const lora = attachLora(gpu, loaded.linears, { r: 2, alpha: 4, dropout: 0, random: r });
      const files = await exportAdapter(gpu, lora, {
        base_model_name_or_path: 'x',
        revision: null,
        lora_alpha: 4,
        lora_dropout: 0,
        use_rslora: false,
      });
      for (const t of [...model.weightTensors(), ...model.ropeTensors(), lora.params, lora.grads]) t.release();
      const names = readSafetensorsSync(files['adapter_model.safetensors']).map((t) => t.info.name);
      return { z, config: loaded.config, names };
    };
    const a = await logits(text),
      b = await logits(multi);
    expect(b.config).toMatchObject({ modelType: 'gemma3', prefix: 'model.language_model.', eosTokenIds: [1, 106] });
    expect(b.config.ropeLocal).toEqual({ theta: 10000, scaling: null }); // Gemma3TextConfig's default
    expect(relError(b.z, a.z), `seed ${seed}`).toBe(0);
    // PEFT names the adapter by the module path of today's Gemma3ForConditionalGeneration
    expect(b.names).toContain('base_model.model.model.language_model.layers.0.self_attn.q_proj.lora_A.weight');
    expect(b.names.length).toBe(a.names.length);
  });
});
