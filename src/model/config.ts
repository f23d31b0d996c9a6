// A Hugging Face config.json, read into one typed description of the network. Every size is
// checked here, before anything is allocated; an unsupported model type or feature is named.
import { showValue } from '../formats/show';
import { halfBitsToFloat, toBF16Bits } from '../quant/half';

export type ModelType = 'llama' | 'mistral' | 'qwen2' | 'qwen3' | 'phi3' | 'gemma2' | 'falcon';

export type RopeScaling =
  | { type: 'linear'; factor: number }
  | { type: 'llama3'; factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPositions: number };

export interface ModelConfig {
  modelType: ModelType;
  hidden: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  layers: number;
  intermediate: number;
  vocab: number;
  norm: { kind: 'rms' | 'layer'; eps: number };
  activation: 'silu' | 'gelu';
  rope: { theta: number; scaling: RopeScaling | null };
  tieEmbeddings: boolean;
  /** Which linear layers carry a bias: Qwen2 has them on q, k, v. */
  bias: { qkv: boolean; o: boolean; mlp: boolean };
  maxPositions: number;
  slidingWindow: number | null;
  bosTokenId: number | null;
  eosTokenIds: number[];
  /** The linear layers LoRA may target, by PEFT's module names; all-linear means all of them. */
  linearModules: string[];
  /** What PEFT targets when target_modules is not given (its per-architecture default). */
  defaultLoraTargets: string[];
  /** A bitsandbytes 4-bit checkpoint (`*-bnb-4bit`): its linear weights come NF4 already. */
  prequantized: { quantType: 'nf4'; doubleQuant: boolean } | null;
  /** Phi-3's fused projections: qkv_proj = [q; k; v], gate_up_proj = [gate; up]. */
  fused: { qkv: boolean; gateUp: boolean };
  /**
   * Qwen3: an RMSNorm over each head's head_dim values of q and of k (q_norm, k_norm, one
   * weight [head_dim] shared by the heads, eps rms_norm_eps), after the projections, before RoPE.
   */
  qkNorm: boolean;
  /** Gemma 2's differences from Llama (null for the others). */
  gemma: GemmaOptions | null;
  /** Falcon's layout: how its fused query_key_value is laid out, and its LayerNorms per layer. */
  falcon: FalconLayout | null;
}

export interface GemmaOptions {
  /** Attention scores are scaled by query_pre_attn_scalar^−½ (not head_dim^−½). */
  queryPreAttnScalar: number;
  attnSoftcap: number | null;
  finalSoftcap: number | null;
  /** Even layers attend within this many tokens; odd layers see the whole sequence. */
  slidingWindow: number | null;
  /** The embeddings' scale, √hidden rounded to BF16 as transformers computes it in a BF16 model. */
  embedScale: number;
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

export class ConfigError extends Error {
  override name = 'ConfigError';
}

export const SUPPORTED_MODEL_TYPES: ModelType[] = ['llama', 'mistral', 'qwen2', 'qwen3', 'phi3', 'gemma2', 'falcon'];
const LLAMA_MODULES = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];
const PHI3_MODULES = ['qkv_proj', 'o_proj', 'gate_up_proj', 'down_proj'];

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
function fieldReaders(c: Record<string, unknown>, fail: (what: string) => ConfigError) {
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

type Fields = ReturnType<typeof fieldReaders>;

/** The attention shape all families share: heads, KV heads and head size, checked together. */
function checkAttention(
  fail: (what: string) => ConfigError, hidden: number, heads: number, kvHeads: number, headDim: number,
): void {
  if (heads % kvHeads !== 0) {
    throw fail(`num_attention_heads (${heads}) is not a multiple of num_key_value_heads (${kvHeads})`);
  }
  if (headDim % 2 !== 0) throw fail(`head_dim (${headDim}) must be even for rotary embeddings`);
  if (heads * headDim > 2 * CONFIG_LIMITS.hidden) {
    throw fail(`num_attention_heads × head_dim is ${heads * headDim}, ` +
      `over the ${2 * CONFIG_LIMITS.hidden} this tool admits (hidden_size ${hidden})`);
  }
}

/** The RoPE tables are sized from max_position_embeddings: bound them before they are allocated. */
function checkRopeTable(fail: (what: string) => ConfigError, positions: number, headDim: number): void {
  if (positions * (headDim / 2) > CONFIG_LIMITS.ropeTableValues) {
    throw fail(
      `max_position_embeddings ${positions} × head_dim/2 ${headDim / 2} needs a RoPE table of ` +
        `${positions * (headDim / 2)} values, ` +
        `over the ${CONFIG_LIMITS.ropeTableValues} this tool allocates; lower max_position_embeddings in config.json`,
    );
  }
}

export function parseModelConfig(json: unknown, source = 'config.json'): ModelConfig {
  const fail = (what: string) => new ConfigError(`${source}: ${what}`);
  if (typeof json !== 'object' || json === null) throw fail(`is not a JSON object (got ${showValue(json)})`);
  const c = json as Record<string, unknown>;
  const type = c.model_type;
  if (typeof type !== 'string') throw fail('has no model_type');
  if (!SUPPORTED_MODEL_TYPES.includes(type as ModelType)) {
    throw fail(`model_type ${showValue(type)} is not supported yet; supported: ${SUPPORTED_MODEL_TYPES.join(', ')}`);
  }
  const f = fieldReaders(c, fail);
  const L = CONFIG_LIMITS;

  if (type === 'falcon') return parseFalcon(c, fail, f);
  const hidden = f.int('hidden_size', L.hidden);
  const heads = f.int('num_attention_heads', L.heads);
  const kvHeads = f.int('num_key_value_heads', heads, heads);
  if (heads % kvHeads !== 0) {
    throw fail(`num_attention_heads (${heads}) is not a multiple of num_key_value_heads (${kvHeads})`);
  }
  // Qwen3Config's head_dim defaults to 128, not hidden / heads (its checkpoints all write it out)
  const defaultHeadDim = type === 'qwen3' ? 128 : hidden / heads;
  if (c.head_dim == null && !Number.isInteger(defaultHeadDim)) {
    throw fail(`hidden_size (${hidden}) is not a multiple of num_attention_heads (${heads})`);
  }
  const headDim = f.int('head_dim', L.headDim, defaultHeadDim);
  checkAttention(fail, hidden, heads, kvHeads, headDim);
  const maxPositions = f.int('max_position_embeddings', L.positions, 2048);
  checkRopeTable(fail, maxPositions, headDim);

  const gemma = type === 'gemma2';
  const act = gemma ? (c.hidden_activation ?? c.hidden_act ?? 'gelu_pytorch_tanh') : (c.hidden_act ?? 'silu');
  const expectedAct = gemma ? 'gelu_pytorch_tanh' : 'silu';
  if (act !== expectedAct) {
    throw fail(`hidden_act ${showValue(act)} is not supported for ${type}; expected ${expectedAct}`);
  }
  if (c.partial_rotary_factor != null && c.partial_rotary_factor !== 1) throw fail('partial_rotary_factor other than 1 is not supported');

  const phi3 = type === 'phi3';
  // Qwen3 is Qwen2 without q/k/v biases (unless attention_bias), with q/k norms and its own head_dim
  const qwen = type === 'qwen2' || type === 'qwen3';
  // a window of at least one token, or none (null); Qwen2 and 3 use theirs only with use_sliding_window
  const slidingWindow =
    type === 'mistral' || phi3 ? f.optionalInt('sliding_window', L.positions)
    : gemma ? null // per layer: GemmaOptions
    : qwen && f.bool('use_sliding_window', false) ? f.int('sliding_window', L.positions) : null;
  const attentionBias = f.bool('attention_bias', false);
  return {
    modelType: type as ModelType,
    hidden,
    heads,
    kvHeads,
    headDim,
    layers: f.int('num_hidden_layers', L.layers),
    intermediate: f.int('intermediate_size', L.intermediate),
    vocab: f.int('vocab_size', L.vocab),
    norm: { kind: 'rms', eps: f.real('rms_norm_eps', 1e-6, 1, false) },
    activation: gemma ? 'gelu' : 'silu',
    rope: { theta: f.real('rope_theta', 10000), scaling: parseRopeScaling(c.rope_scaling, fail) },
    tieEmbeddings: f.bool('tie_word_embeddings', gemma),
    bias: {
      qkv: type === 'qwen2' || attentionBias,
      o: attentionBias,
      mlp: f.bool('mlp_bias', false),
    },
    maxPositions,
    slidingWindow,
    bosTokenId: f.tokenId('bos_token_id'),
    eosTokenIds: f.tokenIds('eos_token_id'),
    linearModules: phi3 ? PHI3_MODULES : LLAMA_MODULES,
    // PEFT's defaults: q_proj, v_proj for llama, mistral and qwen2; qkv_proj for phi3
    defaultLoraTargets: phi3 ? ['qkv_proj'] : ['q_proj', 'v_proj'],
    prequantized: parseQuantization(c.quantization_config, fail),
    fused: { qkv: phi3, gateUp: phi3 },
    qkNorm: type === 'qwen3',
    gemma: gemma ? {
      queryPreAttnScalar: f.real('query_pre_attn_scalar', headDim),
      attnSoftcap: f.optionalReal('attn_logit_softcapping'),
      finalSoftcap: f.optionalReal('final_logit_softcapping'),
      slidingWindow: f.optionalInt('sliding_window', L.positions),
      embedScale: halfBitsToFloat(toBF16Bits(Math.sqrt(hidden)), 'BF16'),
    } : null,
    falcon: null,
  };
}

const FALCON_MODULES = ['query_key_value', 'dense', 'dense_h_to_4h', 'dense_4h_to_h'];

// Falcon (transformers' FalconConfig, with its aliases n_head, n_layer, n_embed): parallel
// attention and MLP, LayerNorm with bias, exact GELU, rotary, a fused query_key_value.
function parseFalcon(c: Record<string, unknown>, fail: (what: string) => ConfigError, f: Fields): ModelConfig {
  const L = CONFIG_LIMITS;
  const hidden = f.int(['hidden_size', 'n_embed'], L.hidden);
  const heads = f.int(['num_attention_heads', 'n_head'], L.heads);
  const layers = f.int(['num_hidden_layers', 'n_layer'], L.layers);
  if (f.bool('alibi', false)) throw fail('alibi is true; only rotary Falcon models are supported');
  if (!f.bool('parallel_attn', true)) {
    throw fail('parallel_attn is false; only parallel-attention Falcon models (7B, 40B, 180B) are supported');
  }
  const newArch = f.bool('new_decoder_architecture', false);
  if (!newArch && !f.bool('multi_query', true)) {
    throw fail('multi_query is false without new_decoder_architecture; that Falcon layout is not supported');
  }
  const kvHeads = newArch ? f.int('num_kv_heads', heads, heads) : 1;
  if (heads % kvHeads !== 0) throw fail(`num_attention_heads (${heads}) is not a multiple of num_kv_heads (${kvHeads})`);
  if (hidden % heads !== 0) throw fail(`hidden_size (${hidden}) is not a multiple of num_attention_heads (${heads})`);
  const headDim = hidden / heads;
  if (headDim % 2 !== 0) throw fail(`the head size (${headDim}) must be even for rotary embeddings`);
  checkAttention(fail, hidden, heads, kvHeads, headDim);
  const maxPositions = f.int('max_position_embeddings', L.positions, 2048);
  checkRopeTable(fail, maxPositions, headDim);
  const act = c.activation ?? 'gelu';
  if (act !== 'gelu') throw fail(`activation ${showValue(act)} is not supported for falcon; expected gelu`);
  const bias = f.bool('bias', false);
  // Falcon-40B/180B have two LayerNorms per layer (the default), Falcon2-11B one
  const lnCount = newArch ? f.int('num_ln_in_parallel_attn', 2, 2) : 1;
  return {
    modelType: 'falcon', hidden, heads, kvHeads, headDim, layers,
    intermediate: f.int('ffn_hidden_size', L.intermediate, 4 * hidden),
    vocab: f.int('vocab_size', L.vocab),
    norm: { kind: 'layer', eps: f.real('layer_norm_epsilon', 1e-5, 1, false) },
    activation: 'gelu',
    rope: { theta: f.real('rope_theta', 10000), scaling: parseRopeScaling(c.rope_scaling, fail) },
    tieEmbeddings: f.bool('tie_word_embeddings', true), // FalconConfig ties by default
    bias: { qkv: bias, o: bias, mlp: bias },
    maxPositions,
    slidingWindow: null,
    bosTokenId: f.tokenId('bos_token_id'),
    eosTokenIds: f.tokenIds('eos_token_id'),
    linearModules: FALCON_MODULES,
    defaultLoraTargets: ['query_key_value'], // PEFT's default for falcon
    prequantized: parseQuantization(c.quantization_config, fail),
    fused: { qkv: true, gateUp: false },
    qkNorm: false,
    gemma: null,
    falcon: { qkv: newArch ? 'grouped' : 'multi-query', twoNorms: newArch && lnCount === 2 },
  };
}

function parseQuantization(q: unknown, fail: (what: string) => ConfigError): ModelConfig['prequantized'] {
  if (q == null) return null;
  if (typeof q !== 'object' || Array.isArray(q)) {
    throw fail(`quantization_config must be an object, got ${showValue(q)}`);
  }
  const r = q as Record<string, unknown>;
  if (r.quant_method !== 'bitsandbytes') {
    throw fail(`quantization_config.quant_method ${showValue(r.quant_method)} is not supported; ` +
      `only bitsandbytes 4-bit NF4 checkpoints load pre-quantized`);
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
  return { quantType: 'nf4', doubleQuant: r.bnb_4bit_use_double_quant === true };
}

function parseRopeScaling(s: unknown, fail: (what: string) => ConfigError): RopeScaling | null {
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
      throw fail(`rope_scaling.original_max_position_embeddings must be an integer up to ` +
        `${CONFIG_LIMITS.positions}, got ${showValue(original)}`);
    }
    return {
      type: 'llama3', factor: get('factor'),
      lowFreqFactor: get('low_freq_factor'), highFreqFactor: get('high_freq_factor'),
      originalMaxPositions: original,
    };
  }
  throw fail(`rope_scaling type ${showValue(kind)} is not supported; supported: linear, llama3`);
}

/** RoPE inverse frequencies for the pairs (i, i + d/2), i < d/2, with the config's scaling. */
export function ropeInverseFrequencies(c: ModelConfig): Float64Array {
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
