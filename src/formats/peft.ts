// PEFT's LoRA adapter files, written and read exactly as `model.save_pretrained(dir)` and
// `PeftModel.from_pretrained(model, dir)` do (REFERENCE.md):
//   adapter_config.json          the LoraConfig
//   adapter_model.safetensors    base_model.model.<module>.lora_A.weight [r, in]
//                                base_model.model.<module>.lora_B.weight [out, r]
import { readSafetensorsSync, toFloat32, writeSafetensors, type TensorToWrite } from './safetensors';

export interface LoraConfig {
  base_model_name_or_path: string;
  revision: string | null;
  r: number;
  lora_alpha: number;
  lora_dropout: number;
  /** Module names as PEFT matches them (the last path component), resolved from all-linear. */
  target_modules: string[];
  use_rslora: boolean;
  bias: 'none';
}

export class AdapterError extends Error {
  override name = 'AdapterError';
}

/** adapter_config.json as PEFT writes it for a LoRA adapter on a causal LM. */
export function adapterConfigJson(c: LoraConfig): string {
  const json = {
    alpha_pattern: {},
    base_model_name_or_path: c.base_model_name_or_path,
    bias: c.bias,
    fan_in_fan_out: false,
    inference_mode: true,
    init_lora_weights: true,
    lora_alpha: c.lora_alpha,
    lora_dropout: c.lora_dropout,
    modules_to_save: null,
    peft_type: 'LORA',
    r: c.r,
    rank_pattern: {},
    revision: c.revision,
    target_modules: [...c.target_modules].sort(),
    task_type: 'CAUSAL_LM',
    use_dora: false,
    use_rslora: c.use_rslora,
  };
  return JSON.stringify(json, null, 2) + '\n';
}

export function parseAdapterConfig(text: string): LoraConfig {
  let j: Record<string, unknown>;
  try {
    j = JSON.parse(text);
  } catch (e) {
    throw new AdapterError(`adapter_config.json is not valid JSON (${(e as Error).message})`);
  }
  const fail = (what: string) => new AdapterError(`adapter_config.json: ${what}`);
  if (j.peft_type !== 'LORA') throw fail(`peft_type is ${JSON.stringify(j.peft_type)}; only LORA adapters load here`);
  if (j.use_dora) throw fail('use_dora is true; DoRA adapters are not supported');
  for (const k of ['rank_pattern', 'alpha_pattern'] as const) {
    if (j[k] && Object.keys(j[k] as object).length) throw fail(`${k} is set; per-module ranks and alphas are not supported`);
  }
  if (j.modules_to_save && (j.modules_to_save as unknown[]).length) throw fail('modules_to_save is set; only LoRA weights load here');
  if (j.bias !== undefined && j.bias !== 'none') throw fail(`bias is ${JSON.stringify(j.bias)}; only "none" is supported`);
  if (j.fan_in_fan_out) throw fail('fan_in_fan_out is true; only [out, in] linear weights are supported');
  const r = j.r;
  if (typeof r !== 'number' || !Number.isInteger(r) || r < 1) throw fail(`r must be a positive integer, got ${JSON.stringify(r)}`);
  const alpha = j.lora_alpha ?? 8;
  if (typeof alpha !== 'number' || !(alpha > 0)) throw fail(`lora_alpha must be a positive number, got ${JSON.stringify(alpha)}`);
  const dropout = j.lora_dropout ?? 0;
  if (typeof dropout !== 'number' || !(dropout >= 0 && dropout < 1)) throw fail(`lora_dropout must be in [0, 1), got ${JSON.stringify(dropout)}`);
  const tm = j.target_modules;
  const target = typeof tm === 'string' ? [tm] : tm;
  if (!Array.isArray(target) || !target.every((t) => typeof t === 'string')) throw fail('target_modules must be a list of module names');
  return {
    base_model_name_or_path: String(j.base_model_name_or_path ?? ''),
    revision: typeof j.revision === 'string' ? j.revision : null,
    r,
    lora_alpha: alpha,
    lora_dropout: dropout,
    target_modules: target as string[],
    use_rslora: !!j.use_rslora,
    bias: 'none',
  };
}

/** One adapted linear layer: `module` is its path in the base model, e.g. model.layers.0.self_attn.q_proj. */
export interface AdapterTensors {
  module: string;
  A: Float32Array; // [r, in]
  B: Float32Array; // [out, r]
  r: number;
  inFeatures: number;
  outFeatures: number;
}

const PREFIX = 'base_model.model.';
const KEY = /^base_model\.model\.(.+)\.lora_([AB])\.weight$/;

export function writeAdapterSafetensors(layers: AdapterTensors[]): Uint8Array {
  const tensors: TensorToWrite[] = [];
  for (const l of layers) {
    if (l.A.length !== l.r * l.inFeatures || l.B.length !== l.outFeatures * l.r) {
      throw new AdapterError(`${l.module}: A must hold r·in = ${l.r * l.inFeatures} values and B out·r = ${l.outFeatures * l.r}`);
    }
    const bytes = (a: Float32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
    tensors.push({ name: `${PREFIX}${l.module}.lora_A.weight`, dtype: 'F32', shape: [l.r, l.inFeatures], data: bytes(l.A) });
    tensors.push({ name: `${PREFIX}${l.module}.lora_B.weight`, dtype: 'F32', shape: [l.outFeatures, l.r], data: bytes(l.B) });
  }
  return writeSafetensors(tensors, { format: 'pt' });
}

/** Read PEFT's adapter weights; every module must have both A [r, in] and B [out, r] with one r. */
export function readAdapterSafetensors(file: Uint8Array, r: number): AdapterTensors[] {
  const parts = new Map<string, { A?: [number[], Float32Array]; B?: [number[], Float32Array] }>();
  for (const { info, data } of readSafetensorsSync(file, 'adapter_model.safetensors')) {
    const m = KEY.exec(info.name);
    if (!m) throw new AdapterError(`adapter_model.safetensors has ${info.name}, not a LoRA weight (base_model.model.<module>.lora_A/B.weight)`);
    if (info.shape.length !== 2) throw new AdapterError(`${info.name} has shape [${info.shape}], expected 2-D`);
    const entry = parts.get(m[1]) ?? {};
    entry[m[2] as 'A' | 'B'] = [info.shape, toFloat32(info.dtype, data)];
    parts.set(m[1], entry);
  }
  const out: AdapterTensors[] = [];
  for (const [module, { A, B }] of parts) {
    if (!A || !B) throw new AdapterError(`${module} has lora_${A ? 'A' : 'B'} but no lora_${A ? 'B' : 'A'}`);
    if (A[0][0] !== r || B[0][1] !== r) {
      throw new AdapterError(`${module}: lora_A is [${A[0]}] and lora_B is [${B[0]}], but the config says r = ${r}`);
    }
    out.push({ module, A: A[1], B: B[1], r, inFeatures: A[0][1], outFeatures: B[0][0] });
  }
  return out.sort((a, b) => (a.module < b.module ? -1 : 1));
}
