import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { Session } from '../../src/engine/session';
import { readAdapterSafetensors, writeAdapterSafetensors } from '../../src/formats/peft';
import { localCheckpoint } from '../../src/node/local-files';
import { writeTinyCheckpoint } from '../fixtures/tiny-checkpoint';
import type { Gpu } from '../../src/gpu/runtime';
import { generate } from '../../src/generate/generate';
import { SAMPLING_DEFAULTS } from '../../src/generate/sampling';
import { exportAdapter, importAdapter } from '../../src/model/adapter';
import { parseModelConfig } from '../../src/model/registry';
import { attachLora } from '../../src/model/lora-linear';
import { ADAMW_DEFAULTS } from '../../src/ops/optim';
import { Trainer } from '../../src/train/trainer';
import { testGpu } from '../gpu';
import { freshSeed, randn, rng } from '../reference/random';
import { TINY, buildTinyModel, packedBatch } from '../tiny-model';

let gpu: Gpu;
beforeAll(async () => {
  gpu = await testGpu();
});

describe('a trained adapter through PEFT files and back', () => {
  it('reloads into a fresh copy of the base model with the same loss and the same greedy text', async () => {
    const seed = freshSeed();
    const c = parseModelConfig({ ...TINY, model_type: 'qwen2', tie_word_embeddings: false });
    const meta = {
      base_model_name_or_path: 'tiny/qwen2',
      revision: null,
      lora_alpha: 16,
      lora_dropout: 0,
      use_rslora: false,
    };
    // train a few steps
    const a = buildTinyModel(gpu, c, rng(seed));
    const setA = attachLora(gpu, a.modules, { r: 4, alpha: 16, dropout: 0, random: rng(seed + 1) });
    const data = packedBatch(gpu, c, rng(seed + 2));
    const micro = [{ batch: data.batch, counted: data.labels.filter((l) => l >= 0).length }];
    const trainer = new Trainer(gpu, a.model, setA, {
      ...ADAMW_DEFAULTS,
      learning_rate: 1e-2,
      lr_scheduler_type: 'constant',
      warmup_steps: 0,
      max_steps: 5,
    });
    for (let i = 0; i < 5; i++) await trainer.trainStep(micro);
    const files = await exportAdapter(gpu, setA, meta);
    expect(JSON.parse(files['adapter_config.json']).target_modules).toEqual([
      'down_proj',
      'gate_proj',
      'k_proj',
      'o_proj',
      'q_proj',
      'up_proj',
      'v_proj',
    ]);

    // the same base model, a freshly initialised adapter, then the files
    const b = buildTinyModel(gpu, c, rng(seed));
    const setB = attachLora(gpu, b.modules, { r: 4, alpha: 16, dropout: 0, random: rng(seed + 99) });
    importAdapter(gpu, setB, { config: files['adapter_config.json'], weights: files['adapter_model.safetensors'] });
    expect(Array.from(await gpu.read(setB.params))).toEqual(Array.from(await gpu.read(setA.params)));
    const lossOf = async (m: typeof a.model) =>
      (await gpu.read(m.forwardBackward(data.batch, 1, 0))).reduce((s, v) => s + v, 0);
    expect(await lossOf(b.model)).toBe(await lossOf(a.model));
    const settings = { ...SAMPLING_DEFAULTS, max_new_tokens: 6, num_return_sequences: 1, seed: 0, eos_token_id: [] };
    expect(await generate(b.model, [1, 2, 3], settings)).toEqual(await generate(a.model, [1, 2, 3], settings));

    // an adapter of another rank is refused, naming the module and both shapes
    const other = buildTinyModel(gpu, c, rng(seed));
    const setC = attachLora(gpu, other.modules, { r: 8, alpha: 16, dropout: 0, random: rng(1) });
    expect(() =>
      importAdapter(gpu, setC, { config: files['adapter_config.json'], weights: files['adapter_model.safetensors'] }),
    ).toThrow(/adapter_config.json: r is 4, the model's adapter has rank 8: it was trained on another base model/);
  });
});

describe('replacing a session adapter', () => {
  it('keeps the current adapter when the new files do not fit, and takes them when they do', async () => {
    const seed = freshSeed();
    const r = rng(seed);
    const dir = await mkdtemp(join(tmpdir(), 'replace-'));
    await writeTinyCheckpoint(dir, 'llama', 3);
    const session = await Session.load(gpu, localCheckpoint(dir), { name: 'tiny', load_in_4bit: true });
    // the loader's f32 staging went back to the device: nothing is held but live tensors
    expect(gpu.memory.allocated).toBe(gpu.memory.inUse);
    session.attachLora(
      { r: 4, lora_alpha: 8, lora_dropout: 0, target_modules: ['q_proj', 'v_proj'], use_rslora: false },
      seed,
    );
    for (const m of session.lora!.modules) gpu.write(m.lora!.B, randn(r, m.lora!.B.numel, 0.05));
    const before = await session.exportAdapter();
    // an adapter for a wider model: every lora_A has 96 inputs where q_proj and v_proj have 64
    const wide = readAdapterSafetensors(before['adapter_model.safetensors'], 4).map((l) => ({
      ...l,
      inFeatures: 96,
      A: new Float32Array(4 * 96),
    }));
    expect(() =>
      session.loadAdapter(
        { config: before['adapter_config.json'], weights: writeAdapterSafetensors(wide) },
        { replace: true },
      ),
    ).toThrow(/another base model or rank/);
    const after = await session.exportAdapter();
    expect(
      Buffer.from(after['adapter_model.safetensors']).equals(Buffer.from(before['adapter_model.safetensors'])),
      `seed ${seed}`,
    ).toBe(true);
    // a fitting one (all-linear, rank 2) replaces it
    const other = await Session.load(gpu, localCheckpoint(dir), { name: 'tiny', load_in_4bit: true });
    other.attachLora(
      { r: 2, lora_alpha: 4, lora_dropout: 0, target_modules: 'all-linear', use_rslora: false },
      seed + 1,
    );
    const files = await other.exportAdapter();
    session.loadAdapter(
      { config: files['adapter_config.json'], weights: files['adapter_model.safetensors'] },
      { replace: true },
    );
    expect(session.lora!.modules.length).toBe(2 * 7);
    expect(
      Buffer.from((await session.exportAdapter())['adapter_model.safetensors']).equals(
        Buffer.from(files['adapter_model.safetensors']),
      ),
    ).toBe(true);
    session.release();
    other.release();
  });
});
