// target_modules as PEFT reads it (peft/tuners/tuners_utils.py check_target_module_exists): a list
// entry matches a module path equal to it or ending in "." + it; a string is re.fullmatch'ed
// against whole module paths, "all-linear" aside. TRL's ModelConfig turns one
// --lora_target_modules value into such a string.
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { Session } from '../../src/engine/session';
import { parseAdapterConfig } from '../../src/formats/peft';
import { readSafetensorsSync } from '../../src/formats/safetensors';
import { localCheckpoint } from '../../src/node/local-files';
import { selectTargets } from '../../src/model/target-modules';
import { writeTinyCheckpoint } from '../fixtures/tiny-checkpoint';
import { testGpu } from '../gpu';

const NAMES = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];
const ATTENTION = new Set(['q_proj', 'k_proj', 'v_proj', 'o_proj']);
const PATHS = [0, 1, 2].flatMap((l) =>
  NAMES.map((n) => `model.layers.${l}.${ATTENTION.has(n) ? 'self_attn' : 'mlp'}.${n}`),
);

describe('selectTargets', () => {
  it('matches list entries by whole path or path suffix', () => {
    expect(selectTargets(['q_proj', 'v_proj'], PATHS, NAMES)).toEqual(
      PATHS.filter((p) => p.endsWith('.q_proj') || p.endsWith('.v_proj')),
    );
    expect(selectTargets(['self_attn.o_proj'], PATHS, NAMES)).toEqual(PATHS.filter((p) => p.endsWith('.o_proj')));
    expect(selectTargets(['model.layers.1.mlp.up_proj'], PATHS, NAMES)).toEqual(['model.layers.1.mlp.up_proj']);
    expect(selectTargets('all-linear', PATHS, NAMES)).toEqual(PATHS);
  });

  it('full-matches a string against whole paths, as re.fullmatch does', () => {
    expect(selectTargets('.*\\.layers\\.(0|2)\\.self_attn\\.(q|v)_proj', PATHS, NAMES)).toEqual([
      'model.layers.0.self_attn.q_proj',
      'model.layers.0.self_attn.v_proj',
      'model.layers.2.self_attn.q_proj',
      'model.layers.2.self_attn.v_proj',
    ]);
    // a partial match is no match: "q_proj" alone is a pattern for a path that is exactly q_proj
    expect(() => selectTargets('q_proj', PATHS, NAMES)).toThrow(
      /target_modules "q_proj" matches no module of this model.*write "\.\*\\\.q_proj", or give two or more names/,
    );
    expect(() => selectTargets('.*mlp', PATHS, NAMES)).toThrow(/matches no module of this model/);
  });

  it('refuses what PEFT could adapt and this trainer cannot: lm_head and the embedding', () => {
    expect(() => selectTargets('.*(q_proj|lm_head)', PATHS, NAMES)).toThrow(
      /matches lm_head: this trainer adapts the decoder layers’ linear layers only/,
    );
    expect(() => selectTargets(['q_proj', 'embed_tokens'], PATHS, NAMES)).toThrow(
      /"embed_tokens" is not a decoder layer's linear layer/,
    );
    expect(() => selectTargets(['q_proj', 'qkv_proj'], PATHS, NAMES)).toThrow(
      /"qkv_proj" is not a linear layer of this model; it has q_proj, k_proj/,
    );
    expect(() => selectTargets('(?P<x>q_proj)', PATHS, NAMES)).toThrow(
      /not a regular expression this trainer can read/,
    );
  });
});

describe('an adapter on the layers a regular expression selects', () => {
  let session: Session;
  beforeAll(async () => {
    const dir = join(await mkdtemp(join(tmpdir(), 'target-modules-')), 'llama');
    await writeTinyCheckpoint(dir, 'llama', 3);
    session = await Session.load(await testGpu(), localCheckpoint(dir), { name: 'tiny', load_in_4bit: true });
  });

  it('adapts those layers only, writes the pattern into adapter_config.json, and loads back', async () => {
    const target_modules = '.*\\.layers\\.0\\.self_attn\\.(q|v)_proj';
    session.attachLora({ r: 2, lora_alpha: 4, lora_dropout: 0, target_modules, use_rslora: false }, 1);
    expect(session.lora!.modules.map((m) => m.path)).toEqual([
      'model.layers.0.self_attn.q_proj',
      'model.layers.0.self_attn.v_proj',
    ]);
    const files = await session.exportAdapter();
    // PEFT keeps a string target_modules as it is
    expect(JSON.parse(files['adapter_config.json']).target_modules).toBe(target_modules);
    expect(parseAdapterConfig(files['adapter_config.json']).target_modules).toBe(target_modules);
    expect(readSafetensorsSync(files['adapter_model.safetensors']).map((t) => t.info.name)).toEqual([
      'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight',
      'base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight',
      'base_model.model.model.layers.0.self_attn.v_proj.lora_A.weight',
      'base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight',
    ]);
    session.releaseLora();
    const config = files['adapter_config.json'];
    session.loadAdapter({ config, weights: files['adapter_model.safetensors'] });
    expect(session.lora!.modules.length).toBe(2);
    // an adapter whose pattern selects nothing here was made for another model
    session.releaseLora();
    const other = config.replace(JSON.stringify(target_modules), JSON.stringify('.*\\.query_key_value'));
    expect(() => session.loadAdapter({ config: other, weights: files['adapter_model.safetensors'] })).toThrow(
      /adapter_config.json: target_modules ".*" matches no module of this model.*was it made for another model\?/,
    );
  });
});
