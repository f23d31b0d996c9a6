import { describe, expect, it } from 'vitest';
import { adapterConfigJson, parseAdapterConfig, readAdapterSafetensors, writeAdapterSafetensors, type LoraConfig } from '../../src/formats/peft';
import { parseHeader, writeSafetensors } from '../../src/formats/safetensors';
import { freshSeed, randn, rng } from '../reference/random';

const config: LoraConfig = {
  base_model_name_or_path: 'HuggingFaceTB/SmolLM2-135M-Instruct', revision: 'main', r: 4, lora_alpha: 16,
  lora_dropout: 0.05, target_modules: ['v_proj', 'q_proj'], use_rslora: false, bias: 'none',
};

describe('PEFT adapter files', () => {
  it('writes adapter_config.json with the fields PEFT reads, and reads it back', () => {
    const json = JSON.parse(adapterConfigJson(config));
    expect(json).toMatchObject({
      peft_type: 'LORA', task_type: 'CAUSAL_LM', r: 4, lora_alpha: 16, lora_dropout: 0.05, bias: 'none',
      target_modules: ['q_proj', 'v_proj'], use_rslora: false, use_dora: false, fan_in_fan_out: false,
      inference_mode: true, init_lora_weights: true, modules_to_save: null, rank_pattern: {}, alpha_pattern: {},
      base_model_name_or_path: 'HuggingFaceTB/SmolLM2-135M-Instruct', revision: 'main',
    });
    expect(parseAdapterConfig(adapterConfigJson(config))).toEqual({ ...config, target_modules: ['q_proj', 'v_proj'] });
  });

  it('names weights base_model.model.<module>.lora_A/B.weight and round-trips them', () => {
    const seed = freshSeed();
    const r = rng(seed);
    const layers = [0, 1].flatMap((i) => [
      { module: `model.layers.${i}.self_attn.q_proj`, r: 4, inFeatures: 64, outFeatures: 64 },
      { module: `model.layers.${i}.self_attn.v_proj`, r: 4, inFeatures: 64, outFeatures: 16 },
    ]).map((l) => ({ ...l, A: randn(r, l.r * l.inFeatures), B: randn(r, l.outFeatures * l.r) }));
    const file = writeAdapterSafetensors(layers);
    const h = parseHeader(file);
    expect(h.metadata).toEqual({ format: 'pt' });
    const a = h.tensors.find((t) => t.name === 'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight')!;
    const b = h.tensors.find((t) => t.name === 'base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight')!;
    expect([a.dtype, a.shape]).toEqual(['F32', [4, 64]]);
    expect(b.shape).toEqual([16, 4]);
    const back = readAdapterSafetensors(file, 4);
    expect(back.map((l) => l.module)).toEqual(layers.map((l) => l.module).sort());
    for (const l of layers) {
      const got = back.find((x) => x.module === l.module)!;
      expect(Array.from(got.A), `seed ${seed}`).toEqual(Array.from(l.A));
      expect(Array.from(got.B), `seed ${seed}`).toEqual(Array.from(l.B));
    }
  });

  it('refuses adapters that do not fit, saying why', () => {
    const A = { name: 'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight', dtype: 'F32' as const, shape: [4, 8], data: new Uint8Array(128) };
    const B = { name: 'base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight', dtype: 'F32' as const, shape: [8, 4], data: new Uint8Array(128) };
    expect(() => readAdapterSafetensors(writeSafetensors([A]), 4)).toThrow(/has lora_A but no lora_B/);
    expect(() => readAdapterSafetensors(writeSafetensors([A, B]), 8)).toThrow(/config says r = 8/);
    expect(() => readAdapterSafetensors(writeSafetensors([{ ...A, name: 'model.embed_tokens.weight' }]), 4)).toThrow(/not a LoRA weight/);
    expect(() => parseAdapterConfig(JSON.stringify({ peft_type: 'IA3' }))).toThrow(/only LORA adapters/);
    expect(() => parseAdapterConfig(adapterConfigJson(config).replace('"use_dora": false', '"use_dora": true'))).toThrow(/DoRA/);
    expect(() => parseAdapterConfig(JSON.stringify({ peft_type: 'LORA', r: 0, target_modules: ['q_proj'] }))).toThrow(/r must be a positive integer/);
  });
});
