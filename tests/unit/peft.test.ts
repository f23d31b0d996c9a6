import { describe, expect, it } from 'vitest';
import {
  adapterConfigJson,
  parseAdapterConfig,
  readAdapterSafetensors,
  writeAdapterSafetensors,
  type LoraConfig,
} from '../../src/formats/peft';
import { parseHeader, writeSafetensors } from '../../src/formats/safetensors';
import { readAdapterZip } from '../../src/formats/adapter-zip';
import { zipSync } from 'fflate';

const CONFIG = 'adapter_config.json';
const WEIGHTS = 'adapter_model.safetensors';
import { freshSeed, randn, rng } from '../reference/random';

const config: LoraConfig = {
  base_model_name_or_path: 'HuggingFaceTB/SmolLM2-135M-Instruct',
  revision: 'main',
  r: 4,
  lora_alpha: 16,
  lora_dropout: 0.05,
  target_modules: ['v_proj', 'q_proj'],
  use_rslora: false,
  bias: 'none',
};

describe('PEFT adapter files', () => {
  it('writes adapter_config.json with the fields PEFT reads, and reads it back', () => {
    const json = JSON.parse(adapterConfigJson(config));
    expect(json).toMatchObject({
      peft_type: 'LORA',
      task_type: 'CAUSAL_LM',
      r: 4,
      lora_alpha: 16,
      lora_dropout: 0.05,
      bias: 'none',
      target_modules: ['q_proj', 'v_proj'],
      use_rslora: false,
      use_dora: false,
      fan_in_fan_out: false,
      inference_mode: true,
      init_lora_weights: true,
      modules_to_save: null,
      rank_pattern: {},
      alpha_pattern: {},
      base_model_name_or_path: 'HuggingFaceTB/SmolLM2-135M-Instruct',
      revision: 'main',
    });
    expect(parseAdapterConfig(adapterConfigJson(config))).toEqual({ ...config, target_modules: ['q_proj', 'v_proj'] });
  });

  it('names weights base_model.model.<module>.lora_A/B.weight and round-trips them', () => {
    const seed = freshSeed();
    const r = rng(seed);
    const layers = [0, 1]
      .flatMap((i) => [
        { module: `model.layers.${i}.self_attn.q_proj`, r: 4, inFeatures: 64, outFeatures: 64 },
        { module: `model.layers.${i}.self_attn.v_proj`, r: 4, inFeatures: 64, outFeatures: 16 },
      ])
      .map((l) => ({ ...l, A: randn(r, l.r * l.inFeatures), B: randn(r, l.outFeatures * l.r) }));
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
    const A = {
      name: 'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight',
      dtype: 'F32' as const,
      shape: [4, 8],
      data: new Uint8Array(128),
    };
    const B = {
      name: 'base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight',
      dtype: 'F32' as const,
      shape: [8, 4],
      data: new Uint8Array(128),
    };
    expect(() => readAdapterSafetensors(writeSafetensors([A]), 4)).toThrow(/has lora_A but no lora_B/);
    expect(() => readAdapterSafetensors(writeSafetensors([A, B]), 8)).toThrow(/adapter_config.json says r = 8/);
    expect(() => readAdapterSafetensors(writeSafetensors([{ ...A, name: 'model.embed_tokens.weight' }]), 4)).toThrow(
      /not a LoRA weight/,
    );
    expect(() => parseAdapterConfig(JSON.stringify({ peft_type: 'IA3' }))).toThrow(/only LORA adapters/);
    expect(() =>
      parseAdapterConfig(adapterConfigJson(config).replace('"use_dora": false', '"use_dora": true')),
    ).toThrow(/DoRA/);
    expect(() => parseAdapterConfig(JSON.stringify({ peft_type: 'LORA', r: 0, target_modules: ['q_proj'] }))).toThrow(
      /r must be a positive integer/,
    );
  });

  it('refuses adapter configs of the wrong kind by field, never with a raw JavaScript error', () => {
    const base = JSON.parse(adapterConfigJson(config));
    const cases: [string, RegExp][] = [
      ['null', /adapter_config.json: must be a JSON object \(PEFT's LoraConfig\), got null/],
      ['"LORA"', /must be a JSON object/],
      [JSON.stringify({ ...base, r: 1025 }), /r must be a positive integer up to 1024, got 1025/],
      [JSON.stringify({ ...base, r: 2.5 }), /r must be a positive integer up to 1024, got 2.5/],
      [JSON.stringify({ ...base, lora_alpha: 'x' }), /lora_alpha must be a finite number > 0, got "x"/],
      [
        JSON.stringify({ ...base, lora_alpha: 0 }).replace('"lora_alpha":0', '"lora_alpha":1e999'),
        /lora_alpha must be a finite number > 0, got Infinity/,
      ],
      [JSON.stringify({ ...base, target_modules: [null] }), /target_modules must be a list of module names/],
      [JSON.stringify({ ...base, rank_pattern: 7 }), /rank_pattern must be an object, got 7/],
    ];
    for (const [text, message] of cases) expect(() => parseAdapterConfig(text), text).toThrow(message);
  });

  it('checks every adapter tensor against the rank and the model before converting any', () => {
    const q = 'model.layers.0.self_attn.q_proj';
    const layer = { module: q, r: 2, inFeatures: 8, outFeatures: 6, A: new Float32Array(16), B: new Float32Array(12) };
    const w = writeAdapterSafetensors([layer]);
    const modules = new Map([[q, { inFeatures: 8, outFeatures: 6 }]]);
    expect(readAdapterSafetensors(w, 2, modules)).toHaveLength(1);
    expect(() => readAdapterSafetensors(w, 2, new Map([[q, { inFeatures: 9, outFeatures: 6 }]]))).toThrow(
      /adapter_model.safetensors: model.layers.0.self_attn.q_proj: the adapter's A is \[2, 8\] and B \[6, 2\]/,
    );
    const more = new Map([...modules, ['model.layers.1.self_attn.q_proj', { inFeatures: 8, outFeatures: 6 }]]);
    expect(() => readAdapterSafetensors(w, 2, more)).toThrow(
      /lacks 1 module\(s\) its config targets in this model: model.layers.1.self_attn.q_proj/,
    );
  });
});

describe('adapter zips', () => {
  const files = () => {
    const l = {
      module: 'model.layers.0.self_attn.q_proj',
      r: 4,
      inFeatures: 8,
      outFeatures: 8,
      A: new Float32Array(32),
      B: new Float32Array(32),
    };
    return { [CONFIG]: new TextEncoder().encode(adapterConfigJson(config)), [WEIGHTS]: writeAdapterSafetensors([l]) };
  };
  /** The zip with the entry's declared inflated size in the central directory overwritten. */
  const declare = (zip: Uint8Array, name: string, size: number) => {
    const out = zip.slice();
    const view = new DataView(out.buffer);
    for (let at = 0; at + 46 <= out.length; at++) {
      const len = view.getUint16(at + 28, true);
      const named = new TextDecoder().decode(out.subarray(at + 46, at + 46 + len)) === name;
      if (view.getUint32(at, true) === 0x02014b50 && named) view.setUint32(at + 24, size, true);
    }
    return out;
  };

  it('reads the two files from a zip, in a folder or not, ignoring other entries', () => {
    const f = files();
    const zip = zipSync({
      [`my-adapter/${CONFIG}`]: f[CONFIG],
      [`my-adapter/${WEIGHTS}`]: f[WEIGHTS],
      'README.md': new Uint8Array(3),
    });
    const got = readAdapterZip(zip, 'a.zip');
    expect(parseAdapterConfig(got.config).r).toBe(4);
    expect(Buffer.from(got.weights).equals(Buffer.from(f[WEIGHTS]))).toBe(true);
  });

  it('refuses a zip bomb and forged sizes before inflating, naming the zip and the entry', () => {
    const f = files();
    // 64 MiB of zeros at level 9: about 64 KB on disk, refused by the budget the model gives
    const bomb = zipSync({ [CONFIG]: f[CONFIG], [WEIGHTS]: new Uint8Array(64 * 2 ** 20) }, { level: 9 });
    expect(bomb.length).toBeLessThan(2 ** 20);
    expect(() => readAdapterZip(bomb, 'bomb.zip', { weightsBudget: (c) => c.r * 1e4 })).toThrow(
      /bomb.zip: adapter_model.safetensors declares 67108864 bytes inflated, over the 40000 bytes/,
    );
    const good = zipSync(f);
    // a size no entry of this zip could inflate to: refused before fflate allocates it
    expect(() => readAdapterZip(declare(good, WEIGHTS, 2 ** 32 - 1), 'forged.zip')).toThrow(
      /forged.zip: adapter_model.safetensors declares 4294967295 bytes from \d+ compressed in a \d+-byte zip/,
    );
    expect(() => readAdapterZip(declare(good, CONFIG, 2 ** 21), 'big.zip')).toThrow(/declares 2097152 bytes/);
    // an entry that inflates to less than it declares
    expect(() => readAdapterZip(declare(good, WEIGHTS, f[WEIGHTS].length + 1), 'short.zip')).toThrow(
      /short.zip: adapter_model.safetensors inflated to \d+ bytes, its directory declares/,
    );
    expect(() => readAdapterZip(zipSync({ [CONFIG]: f[CONFIG] }), 'half.zip')).toThrow(
      /half.zip holds no adapter_model.safetensors/,
    );
    expect(() => readAdapterZip(new Uint8Array(10), 'x.zip')).toThrow(/x.zip is not a readable zip/);
  });
});
