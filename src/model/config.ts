// A Hugging Face config.json, read into one typed description of the network. Every size is
// checked here, before anything is allocated; an unsupported model type or feature is named.
// What is common to all families lives here: the description, the bounds, the field readers and
// the RoPE frequencies. Each family reads its own model types (./llama, ./gemma, ./falcon), and
// ./registry.ts picks the family for a config.json's model_type.
import { showValue } from '../formats/show';

export type RopeScaling =
  | { type: 'linear'; factor: number }
  | { type: 'llama3'; factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPositions: number };

/** One RoPE: its base and scaling. */
export interface Rope {
  theta: number;
  scaling: RopeScaling | null;
}

export type FamilyName = 'llama' | 'gemma' | 'falcon';

export interface ModelConfig {
  /** config.json's model_type (one the registry knows) and the family whose layer runs it. */
  modelType: string;
  family: FamilyName;
  hidden: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  layers: number;
  intermediate: number;
  vocab: number;
  norm: { kind: 'rms' | 'layer'; eps: number };
  activation: 'silu' | 'gelu';
  rope: Rope;
  /** Gemma 3: the RoPE of its local (sliding-window) layers, rope_local_base_freq; null elsewhere. */
  ropeLocal: Rope | null;
  /** Layers that apply no RoPE at all (SmolLM3's no_rope_layers); all false for the others. */
  noRope: boolean[];
  tieEmbeddings: boolean;
  /** Which linear layers carry a bias: Qwen2 has them on q, k, v. */
  bias: { qkv: boolean; o: boolean; mlp: boolean };
  maxPositions: number;
  /** A window every layer attends within (Mistral, Phi-3), or null. */
  slidingWindow: number | null;
  /** The window of the local layers (Gemma 2's even layers, Gemma 3's sliding ones), or null. */
  localWindow: number | null;
  /** Which layers are local: they attend within localWindow (and rotate by ropeLocal where set). */
  localLayers: boolean[];
  /** The scale of the embeddings (Gemma: √hidden as a BF16 model computes it), 1 for the others. */
  embedScale: number;
  /** Gemma 2's soft cap on the final logits, or null. */
  finalSoftcap: number | null;
  bosTokenId: number | null;
  eosTokenIds: number[];
  /** The linear layers LoRA may target, by PEFT's module names; all-linear means all of them. */
  linearModules: string[];
  /**
   * What PEFT targets when target_modules is not given (TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING);
   * null where PEFT has no default for the model_type and raises instead (phi3, smollm3).
   */
  defaultLoraTargets: string[] | null;
  /** A bitsandbytes 4-bit checkpoint (`*-bnb-4bit`): its linear weights come NF4 already. */
  /**
   * A bitsandbytes 4-bit checkpoint: `skipModules` (llm_int8_skip_modules) were left 16-bit when it
   * was quantized, and stay so, as transformers keeps them.
   */
  prequantized: { quantType: 'nf4'; doubleQuant: boolean; skipModules: string[] } | null;
  /** Phi-3's fused projections: qkv_proj = [q; k; v], gate_up_proj = [gate; up]. */
  fused: { qkv: boolean; gateUp: boolean };
  /**
   * Qwen3 and Gemma 3: an RMSNorm over each head's head_dim values of q and of k (q_norm, k_norm,
   * one weight [head_dim] shared by the heads), after the projections, before RoPE.
   */
  qkNorm: boolean;
  /**
   * Where the language model's tensors sit in the checkpoint: 'model.' (model.layers.N…), or
   * 'model.language_model.' inside a Gemma 3 multimodal checkpoint.
   */
  prefix: string;
  /** Gemma's attention (null for the others). */
  gemma: GemmaOptions | null;
  /** Falcon's layout: how its fused query_key_value is laid out, and its LayerNorms per layer. */
  falcon: FalconLayout | null;
}

export interface GemmaOptions {
  /** Attention scores are scaled by query_pre_attn_scalar^−½ (not head_dim^−½). */
  queryPreAttnScalar: number;
  /** Gemma 2's soft cap on the attention scores, or null. */
  attnSoftcap: number | null;
}

export interface FalconLayout {
  /**
   * 'multi-query': [q0 … q(H−1), k, v] (Falcon-7B); 'grouped': [q … q, k, v] per KV group
   * (new_decoder_architecture, Falcon-40B/180B).
   */
  qkv: 'multi-query' | 'grouped';
  /** new_decoder_architecture with num_ln_in_parallel_attn 2: ln_attn and ln_mlp. */
  twoNorms: boolean;
}

/** The family-neutral defaults a family's parser starts from (no local layers, no NoPE layers). */
export function plainLayers(layers: number): Pick<ModelConfig, 'noRope' | 'localLayers' | 'localWindow' | 'ropeLocal'> {
  return {
    noRope: Array(layers).fill(false),
    localLayers: Array(layers).fill(false),
    localWindow: null,
    ropeLocal: null,
  };
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

export type RawConfig = Record<string, unknown>;
export type Fail = (what: string) => ConfigError;

/**
 * Bounds on what a config.json may declare, checked before anything is sized from it. Each admits
 * every real model of the supported families with room to spare: Llama 3.1 405B (126 layers,
 * hidden 16384, 128 heads, intermediate 53248, vocab 128256, 131072 positions), Gemma 2 (vocab
 * 256000, head_dim 256), Falcon-180B (80 layers, hidden 14848, 232 heads), Qwen2.5-1M (1010000
 * positions), Phi-3-128k (sliding_window 262144). Beyond them a config is corrupt or hostile: a
 * layer count of 1e9 would loop for ever, a position count of 1e9 allocate gigabytes of RoPE table.
 */
export const CONFIG_LIMITS = {
  layers: 512,
  hidden: 65536,
  heads: 1024,
  headDim: 1024,
  intermediate: 262144,
  vocab: 2 ** 21,
  positions: 2 ** 21,
  /** RoPE tables hold positions × head_dim/2 f32 values each: at most 1 GiB per table. */
  ropeTableValues: 2 ** 28,
  tokenId: 2 ** 31 - 1,
} as const;

/** Readers of one config.json's fields, each checking type, range and finiteness. */
export function fieldReaders(c: Record<string, unknown>, fail: Fail) {
  /** The first of `keys` present (transformers' aliases, e.g. n_head for num_attention_heads). */
  const get = (keys: string | string[]) => {
    for (const k of [keys].flat()) if (c[k] != null) return { key: k, v: c[k] };
    return { key: [keys].flat()[0], v: undefined };
  };
  return {
    /** An integer in [min, max]; `fallback` when absent or null. */
    int(keys: string | string[], max: number, fallback?: number, min = 1): number {
      const { key, v: got } = get(keys);
      const v = got ?? fallback;
      if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
        const what = min === 1 ? 'a positive integer' : `an integer from ${min}`;
        throw fail(`${key} must be ${what} up to ${max}, got ${showValue(got)}`);
      }
      return v;
    },
    /** A finite number in (0, max) (or (0, max] with `closed`); `fallback` when absent or null. */
    real(key: string, fallback: number | null, max = Number.MAX_VALUE, closed = true): number {
      const v = c[key] ?? fallback;
      if (typeof v !== 'number' || !Number.isFinite(v) || !(v > 0) || (closed ? v > max : v >= max)) {
        const range = max === Number.MAX_VALUE ? 'a finite number > 0' : `a number in (0, ${max}${closed ? ']' : ')'}`;
        throw fail(`${key} must be ${range}, got ${showValue(c[key])}`);
      }
      return v;
    },
    /** A finite number > 0, or null when absent or null. */
    optionalReal(key: string): number | null {
      const v = c[key];
      if (v == null) return null;
      if (typeof v !== 'number' || !Number.isFinite(v) || !(v > 0)) {
        throw fail(`${key} must be a finite number > 0 or null, got ${showValue(v)}`);
      }
      return v;
    },
    /** An integer in [1, max], or null when absent or null. */
    optionalInt(key: string, max: number): number | null {
      const v = c[key];
      if (v == null) return null;
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > max) {
        throw fail(`${key} must be a positive integer up to ${max} or null, got ${showValue(v)}`);
      }
      return v;
    },
    bool(key: string, fallback: boolean): boolean {
      const v = c[key];
      if (v == null) return fallback;
      if (typeof v !== 'boolean') throw fail(`${key} must be true or false, got ${showValue(v)}`);
      return v;
    },
    /** bos_token_id: a token id or null. */
    tokenId(key: string): number | null {
      const v = c[key];
      if (v == null) return null;
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > CONFIG_LIMITS.tokenId) {
        throw fail(`${key} must be a token id (an integer ≥ 0) or null, got ${showValue(v)}`);
      }
      return v;
    },
    /** eos_token_id: a token id, a list of them, or null. */
    tokenIds(key: string): number[] {
      const v = c[key];
      if (v == null) return [];
      const ids = Array.isArray(v) ? v : [v];
      const isId = (x: unknown) => typeof x === 'number' && Number.isInteger(x) && x >= 0 && x <= CONFIG_LIMITS.tokenId;
      if (ids.length > 1024 || !ids.every(isId)) {
        throw fail(`${key} must be a token id, a list of token ids (integers ≥ 0) or null, got ${showValue(v)}`);
      }
      return ids as number[];
    },
  };
}

export type Fields = ReturnType<typeof fieldReaders>;

/** The attention shape all families share: heads, KV heads and head size, checked together. */
export function checkAttention(fail: Fail, hidden: number, heads: number, kvHeads: number, headDim: number): void {
  if (heads % kvHeads !== 0) {
    throw fail(`num_attention_heads (${heads}) is not a multiple of num_key_value_heads (${kvHeads})`);
  }
  if (headDim % 2 !== 0) throw fail(`head_dim (${headDim}) must be even for rotary embeddings`);
  if (heads * headDim > 2 * CONFIG_LIMITS.hidden) {
    throw fail(
      `num_attention_heads × head_dim is ${heads * headDim}, ` +
        `over the ${2 * CONFIG_LIMITS.hidden} this tool admits (hidden_size ${hidden})`,
    );
  }
}

/** The RoPE tables are sized from max_position_embeddings: bound them before they are allocated. */
export function checkRopeTable(fail: Fail, positions: number, headDim: number): void {
  if (positions * (headDim / 2) > CONFIG_LIMITS.ropeTableValues) {
    throw fail(
      `max_position_embeddings ${positions} × head_dim/2 ${headDim / 2} needs a RoPE table of ` +
        `${positions * (headDim / 2)} values, ` +
        `over the ${CONFIG_LIMITS.ropeTableValues} this tool allocates; lower max_position_embeddings in config.json`,
    );
  }
}

export function parseQuantization(q: unknown, fail: Fail): ModelConfig['prequantized'] {
  if (q == null) return null;
  if (typeof q !== 'object' || Array.isArray(q)) {
    throw fail(`quantization_config must be an object, got ${showValue(q)}`);
  }
  const r = q as Record<string, unknown>;
  if (r.quant_method !== 'bitsandbytes') {
    throw fail(
      `quantization_config.quant_method ${showValue(r.quant_method)} is not supported; ` +
        `only bitsandbytes 4-bit NF4 checkpoints load pre-quantized`,
    );
  }
  if (r.load_in_4bit !== true) {
    throw fail(
      'the checkpoint is bitsandbytes 8-bit (load_in_4bit is not true); only 4-bit NF4 checkpoints load ' +
        'pre-quantized (or use the 16-bit original)',
    );
  }
  if ((r.bnb_4bit_quant_type ?? 'fp4') !== 'nf4') {
    throw fail(`bnb_4bit_quant_type is ${showValue(r.bnb_4bit_quant_type ?? 'fp4')}; only nf4 is supported`);
  }
  const skip = r.llm_int8_skip_modules ?? [];
  if (!Array.isArray(skip) || !skip.every((k) => typeof k === 'string' && k.length > 0 && k.length <= 300))
    throw fail(`quantization_config.llm_int8_skip_modules must be a list of module names, got ${showValue(skip)}`);
  return { quantType: 'nf4', doubleQuant: r.bnb_4bit_use_double_quant === true, skipModules: skip as string[] };
}

export function parseRopeScaling(s: unknown, fail: Fail): RopeScaling | null {
  if (s == null) return null;
  if (typeof s !== 'object' || Array.isArray(s)) {
    throw fail(`rope_scaling must be an object or null, got ${showValue(s)}`);
  }
  const r = s as Record<string, unknown>;
  const kind = r.rope_type ?? r.type;
  if (kind === 'default') return null;
  const get = (k: string) => {
    const v = r[k];
    if (typeof v !== 'number' || !Number.isFinite(v) || !(v > 0)) {
      throw fail(`rope_scaling.${k} must be a finite number > 0, got ${showValue(v)}`);
    }
    return v;
  };
  if (kind === 'linear') return { type: 'linear', factor: get('factor') };
  if (kind === 'llama3') {
    const original = get('original_max_position_embeddings');
    if (!Number.isInteger(original) || original > CONFIG_LIMITS.positions) {
      throw fail(
        `rope_scaling.original_max_position_embeddings must be an integer up to ` +
          `${CONFIG_LIMITS.positions}, got ${showValue(original)}`,
      );
    }
    return {
      type: 'llama3',
      factor: get('factor'),
      lowFreqFactor: get('low_freq_factor'),
      highFreqFactor: get('high_freq_factor'),
      originalMaxPositions: original,
    };
  }
  throw fail(`rope_scaling type ${showValue(kind)} is not supported; supported: linear, llama3`);
}

/** RoPE inverse frequencies for the pairs (i, i + d/2), i < d/2, with the config's scaling. */
export function ropeInverseFrequencies(c: Pick<ModelConfig, 'headDim' | 'rope'>): Float64Array {
  const d = c.headDim;
  const inv = Float64Array.from({ length: d / 2 }, (_, i) => 1 / c.rope.theta ** ((2 * i) / d));
  const s = c.rope.scaling;
  if (!s) return inv;
  if (s.type === 'linear') return inv.map((f) => f / s.factor);
  // llama3: long wavelengths slowed by `factor`, short ones kept, the band between blended.
  const lowWavelen = s.originalMaxPositions / s.lowFreqFactor;
  const highWavelen = s.originalMaxPositions / s.highFreqFactor;
  return inv.map((f) => {
    const wavelen = (2 * Math.PI) / f;
    if (wavelen < highWavelen) return f;
    if (wavelen > lowWavelen) return f / s.factor;
    const smooth = (s.originalMaxPositions / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
    return (1 - smooth) * (f / s.factor) + smooth * f;
  });
}

/** The sizes every Llama-like decoder reads the same way, checked together. */
export function readDecoder(c: RawConfig, f: Fields, fail: Fail, defaultHeadDim?: number) {
  const L = CONFIG_LIMITS;
  const hidden = f.int('hidden_size', L.hidden);
  const heads = f.int('num_attention_heads', L.heads);
  const kvHeads = f.int('num_key_value_heads', heads, heads);
  if (heads % kvHeads !== 0) {
    throw fail(`num_attention_heads (${heads}) is not a multiple of num_key_value_heads (${kvHeads})`);
  }
  const fallback = defaultHeadDim ?? hidden / heads;
  if (c.head_dim == null && !Number.isInteger(fallback)) {
    throw fail(`hidden_size (${hidden}) is not a multiple of num_attention_heads (${heads})`);
  }
  const headDim = f.int('head_dim', L.headDim, fallback);
  checkAttention(fail, hidden, heads, kvHeads, headDim);
  const maxPositions = f.int('max_position_embeddings', L.positions, 2048);
  checkRopeTable(fail, maxPositions, headDim);
  if (c.partial_rotary_factor != null && c.partial_rotary_factor !== 1) {
    throw fail('partial_rotary_factor other than 1 is not supported');
  }
  return {
    hidden,
    heads,
    kvHeads,
    headDim,
    maxPositions,
    layers: f.int('num_hidden_layers', L.layers),
    intermediate: f.int('intermediate_size', L.intermediate),
    vocab: f.int('vocab_size', L.vocab),
    norm: { kind: 'rms' as const, eps: f.real('rms_norm_eps', 1e-6, 1, false) },
    bosTokenId: f.tokenId('bos_token_id'),
    eosTokenIds: f.tokenIds('eos_token_id'),
    prequantized: parseQuantization(c.quantization_config, fail),
  };
}

/** A per-layer list of 0/1 or booleans (SmolLM3's no_rope_layers), checked against the layer count. */
export function readLayerFlags(c: RawConfig, key: string, layers: number, fail: Fail): boolean[] | null {
  const v = c[key];
  if (v == null) return null;
  const ok = Array.isArray(v) && v.length === layers && v.every((x) => x === 0 || x === 1 || typeof x === 'boolean');
  if (!ok) throw fail(`${key} must list 0 or 1 for each of the ${layers} layers, got ${showValue(v)}`);
  return (v as (number | boolean)[]).map((x) => x === 1 || x === true);
}
