import { beforeAll, describe, expect, it } from 'vitest';
import type { Gpu } from '../../src/gpu/runtime';
import { generate } from '../../src/generate/generate';
import { SAMPLING_DEFAULTS } from '../../src/generate/sampling';
import { exportAdapter, importAdapter } from '../../src/model/adapter';
import { parseModelConfig } from '../../src/model/config';
import { attachLora } from '../../src/model/lora-linear';
import { ADAMW_DEFAULTS } from '../../src/ops/optim';
import { Trainer } from '../../src/train/trainer';
import { testGpu } from '../gpu';
import { freshSeed, rng } from '../reference/random';
import { TINY, buildTinyModel, packedBatch } from '../tiny-model';

let gpu: Gpu;
beforeAll(async () => {
  gpu = await testGpu();
});

describe('a trained adapter through PEFT files and back', () => {
  it('reloads into a fresh copy of the base model with the same loss and the same greedy text', async () => {
    const seed = freshSeed();
    const c = parseModelConfig({ ...TINY, model_type: 'qwen2', tie_word_embeddings: false });
    const meta = { base_model_name_or_path: 'tiny/qwen2', revision: null, lora_alpha: 16, lora_dropout: 0, use_rslora: false };
    // train a few steps
    const a = buildTinyModel(gpu, c, rng(seed));
    const setA = attachLora(gpu, a.modules, { r: 4, alpha: 16, dropout: 0, random: rng(seed + 1) });
    const data = packedBatch(gpu, c, rng(seed + 2));
    const micro = [{ batch: data.batch, counted: data.labels.filter((l) => l >= 0).length }];
    const trainer = new Trainer(gpu, a.model, setA, { ...ADAMW_DEFAULTS, learning_rate: 1e-2, lr_scheduler_type: 'constant', warmup_steps: 0, max_steps: 5 });
    for (let i = 0; i < 5; i++) await trainer.trainStep(micro);
    const files = await exportAdapter(gpu, setA, meta);
    expect(JSON.parse(files['adapter_config.json']).target_modules).toEqual(['down_proj', 'gate_proj', 'k_proj', 'o_proj', 'q_proj', 'up_proj', 'v_proj']);

    // the same base model, a freshly initialised adapter, then the files
    const b = buildTinyModel(gpu, c, rng(seed));
    const setB = attachLora(gpu, b.modules, { r: 4, alpha: 16, dropout: 0, random: rng(seed + 99) });
    importAdapter(gpu, setB, { config: files['adapter_config.json'], weights: files['adapter_model.safetensors'] });
    expect(Array.from(await gpu.read(setB.params))).toEqual(Array.from(await gpu.read(setA.params)));
    const lossOf = async (m: typeof a.model) => (await gpu.read(m.forwardBackward(data.batch, 1, 0))).reduce((s, v) => s + v, 0);
    expect(await lossOf(b.model)).toBe(await lossOf(a.model));
    const settings = { ...SAMPLING_DEFAULTS, max_new_tokens: 6, num_return_sequences: 1, seed: 0, eos_token_id: [] };
    expect(await generate(b.model, [1, 2, 3], settings)).toEqual(await generate(a.model, [1, 2, 3], settings));

    // an adapter of another rank is refused, naming the module and both shapes
    const other = buildTinyModel(gpu, c, rng(seed));
    const setC = attachLora(gpu, other.modules, { r: 8, alpha: 16, dropout: 0, random: rng(1) });
    expect(() => importAdapter(gpu, setC, { config: files['adapter_config.json'], weights: files['adapter_model.safetensors'] }))
      .toThrow(/model\.layers\.0\.\w+\.\w+_proj: the adapter's A is \[4, \d+\].*another base model or rank/);
  });
});
