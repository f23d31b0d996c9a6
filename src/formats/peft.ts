// PEFT's LoRA adapter files, written and read exactly as `model.save_pretrained(dir)` and
// `PeftModel.from_pretrained(model, dir)` do (REFERENCE.md):
//   adapter_config.json          the LoraConfig
//   adapter_model.safetensors    base_model.model.<module>.lora_A.weight [r, in]
//                                base_model.model.<module>.lora_B.weight [out, r]
import { showValue } from './show';
import { regex, type TargetModules } from '../model/target-modules';
import {
  nameOf,
  parseHeader,
  toFloat32,
  writeSafetensors,
  type SafetensorsHeader,
  type TensorToWrite,
} from './safetensors';

export interface LoraConfig {
  base_model_name_or_path: string;
  revision: string | null;
  r: number;
  lora_alpha: number;
  lora_dropout: number;
  /**
   * Module names as PEFT matches them (a path's last components), resolved from all-linear; or a
   * regular expression PEFT full-matches against module paths (src/model/target-modules.ts).
   */
  target_modules: TargetModules;
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
    target_modules: Array.isArray(c.target_modules) ? [...c.target_modules].sort() : c.target_modules,
    task_type: 'CAUSAL_LM',
    use_dora: false,
    use_rslora: c.use_rslora,
  };
  return JSON.stringify(json, null, 2) + '\n';
}

/** The largest LoRA rank accepted: PEFT's own examples stop at 256; more is a corrupt or hostile file. */
export const MAX_LORA_RANK = 1024;

export function parseAdapterConfig(text: string, file = 'adapter_config.json'): LoraConfig {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new AdapterError(`${file} is not valid JSON (${(e as Error).message})`);
  }
  const fail = (what: string) => new AdapterError(`${file}: ${what}`);
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw fail(`must be a JSON object (PEFT's LoraConfig), got ${showValue(parsed)}`);
  }
  const j = parsed as Record<string, unknown>;
  if (j.peft_type !== 'LORA') throw fail(`peft_type is ${showValue(j.peft_type)}; only LORA adapters load here`);
  if (j.use_dora != null && typeof j.use_dora !== 'boolean') {
    throw fail(`use_dora must be true or false, got ${showValue(j.use_dora)}`);
  }
  if (j.use_dora) throw fail('use_dora is true; DoRA adapters are not supported');
  for (const k of ['rank_pattern', 'alpha_pattern'] as const) {
    const v = j[k];
    if (v == null) continue;
    if (typeof v !== 'object' || Array.isArray(v)) throw fail(`${k} must be an object, got ${showValue(v)}`);
    if (Object.keys(v).length) throw fail(`${k} is set; per-module ranks and alphas are not supported`);
  }
  const save = j.modules_to_save;
  if (save != null && !(Array.isArray(save) && save.length === 0)) {
    throw fail(`modules_to_save is ${showValue(save)}; only LoRA weights load here`);
  }
  if (j.bias != null && j.bias !== 'none') throw fail(`bias is ${showValue(j.bias)}; only "none" is supported`);
  if (j.fan_in_fan_out != null && j.fan_in_fan_out !== false) {
    throw fail(`fan_in_fan_out is ${showValue(j.fan_in_fan_out)}; only [out, in] linear weights (false) are supported`);
  }
  if (j.use_rslora != null && typeof j.use_rslora !== 'boolean') {
    throw fail(`use_rslora must be true or false, got ${showValue(j.use_rslora)}`);
  }
  const r = j.r;
  if (typeof r !== 'number' || !Number.isInteger(r) || r < 1 || r > MAX_LORA_RANK) {
    throw fail(`r must be a positive integer up to ${MAX_LORA_RANK}, got ${showValue(r)}`);
  }
  const alpha = j.lora_alpha ?? 8;
  if (typeof alpha !== 'number' || !Number.isFinite(alpha) || !(alpha > 0)) {
    throw fail(`lora_alpha must be a finite number > 0, got ${showValue(alpha)}`);
  }
  const dropout = j.lora_dropout ?? 0;
  if (typeof dropout !== 'number' || !(dropout >= 0 && dropout < 1)) {
    throw fail(`lora_dropout must be in [0, 1), got ${showValue(dropout)}`);
  }
  // a list of module names, or one string: a regular expression over module paths, as PEFT reads it
  const tm = j.target_modules;
  const moduleName = (t: unknown) => typeof t === 'string' && /^[\w.-]{1,100}$/.test(t);
  const isRegex = typeof tm === 'string' && tm.length > 0 && tm.length <= 1000;
  if (!isRegex && (!Array.isArray(tm) || tm.length === 0 || tm.length > 64 || !tm.every(moduleName))) {
    throw fail(
      `target_modules must be a list of module names (q_proj, …) or a regular expression, got ${showValue(tm)}`,
    );
  }
  if (isRegex) {
    try {
      regex(tm);
    } catch (e) {
      throw fail((e as Error).message);
    }
  }
  const base = j.base_model_name_or_path;
  if (base != null && typeof base !== 'string') {
    throw fail(`base_model_name_or_path must be a string, got ${showValue(base)}`);
  }
  return {
    base_model_name_or_path: base ?? '',
    revision: typeof j.revision === 'string' ? j.revision : null,
    r,
    lora_alpha: alpha,
    lora_dropout: dropout,
    target_modules: tm as TargetModules,
    use_rslora: j.use_rslora === true,
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

/** The name PEFT's file gives a module's A or B: base_model.model.<module>.lora_A.weight. */
export const adapterTensorName = (module: string, which: 'A' | 'B') => `${PREFIX}${module}.lora_${which}.weight`;

export function writeAdapterSafetensors(layers: AdapterTensors[]): Uint8Array {
  const tensors: TensorToWrite[] = [];
  for (const l of layers) {
    if (l.A.length !== l.r * l.inFeatures || l.B.length !== l.outFeatures * l.r) {
      throw new AdapterError(
        `${l.module}: A must hold r·in = ${l.r * l.inFeatures} values and B out·r = ${l.outFeatures * l.r}`,
      );
    }
    const bytes = (a: Float32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
    tensors.push({
      name: adapterTensorName(l.module, 'A'),
      dtype: 'F32',
      shape: [l.r, l.inFeatures],
      data: bytes(l.A),
    });
    tensors.push({
      name: adapterTensorName(l.module, 'B'),
      dtype: 'F32',
      shape: [l.outFeatures, l.r],
      data: bytes(l.B),
    });
  }
  return writeSafetensors(tensors, { format: 'pt' });
}

/** An adapted layer's sizes in the base model, by module path. */
export type AdapterModules = Map<string, { inFeatures: number; outFeatures: number }>;

/**
 * An adapter's header against its config's rank and, given `modules`, the model's layers: every
 * tensor a LoRA weight of a known module with the right shape and a float dtype, A and B in pairs,
 * every module present. Runs before any weight is converted or any GPU buffer made.
 */
export function checkAdapterHeader(
  h: SafetensorsHeader,
  r: number,
  modules?: AdapterModules,
  file = 'adapter_model.safetensors',
): string[] {
  const fail = (what: string) => new AdapterError(`${file}: ${what}`);
  const parts = new Map<string, { A?: number[]; B?: number[] }>();
  for (const info of h.tensors) {
    const m = KEY.exec(info.name);
    if (!m) throw fail(`holds ${nameOf(info.name)}, not a LoRA weight (base_model.model.<module>.lora_A/B.weight)`);
    if (info.dtype !== 'F32' && info.dtype !== 'F16' && info.dtype !== 'BF16') {
      throw fail(`${nameOf(info.name)} is ${info.dtype}; LoRA weights are F32, F16 or BF16`);
    }
    if (info.shape.length !== 2) throw fail(`${nameOf(info.name)} has shape [${info.shape}], expected 2-D`);
    const entry = parts.get(m[1]) ?? {};
    entry[m[2] as 'A' | 'B'] = info.shape;
    parts.set(m[1], entry);
  }
  for (const [module, { A, B }] of parts) {
    const name = nameOf(module);
    if (!A || !B) throw fail(`${name} has lora_${A ? 'A' : 'B'} but no lora_${A ? 'B' : 'A'}`);
    if (A[0] !== r || B[1] !== r) {
      throw fail(`${name}: lora_A is [${A}] and lora_B is [${B}], but adapter_config.json says r = ${r}`);
    }
    if (!modules) continue;
    const want = modules.get(module);
    if (!want) {
      throw fail(`holds ${name}, which this model's adapter does not target (target_modules in adapter_config.json)`);
    }
    if (A[1] !== want.inFeatures || B[0] !== want.outFeatures) {
      throw fail(
        `${name}: the adapter's A is [${A.join(', ')}] and B [${B.join(', ')}], the model needs [${r}, ` +
          `${want.inFeatures}] and ` +
          `[${want.outFeatures}, ${r}]: it was trained on another base model or rank`,
      );
    }
  }
  if (modules && parts.size !== modules.size) {
    const lacking = [...modules.keys()].filter((m) => !parts.has(m));
    throw fail(`lacks ${lacking.length} module(s) its config targets in this model: ${lacking.slice(0, 3).join(', ')}`);
  }
  return [...parts.keys()];
}

/**
 * Read PEFT's adapter weights; every module must have both A [r, in] and B [out, r] with one r
 * (and, given `modules`, the model's sizes). Everything is checked before anything is converted.
 */
export function readAdapterSafetensors(
  file: Uint8Array,
  r: number,
  modules?: AdapterModules,
  name = 'adapter_model.safetensors',
): AdapterTensors[] {
  const h = parseHeader(file, file.length, name);
  checkAdapterHeader(h, r, modules, name);
  const parts = new Map<string, { A?: [number[], Float32Array]; B?: [number[], Float32Array] }>();
  for (const info of h.tensors) {
    const m = KEY.exec(info.name)!;
    const entry = parts.get(m[1]) ?? {};
    const bytes = file.subarray(h.dataOffset + info.begin, h.dataOffset + info.end);
    entry[m[2] as 'A' | 'B'] = [info.shape, toFloat32(info.dtype, bytes)];
    parts.set(m[1], entry);
  }
  const out: AdapterTensors[] = [];
  for (const [module, { A, B }] of parts) {
    out.push({ module, A: A![1], B: B![1], r, inFeatures: A![0][1], outFeatures: B![0][0] });
  }
  return out.sort((a, b) => (a.module < b.module ? -1 : 1));
}
