// A Hugging Face config.json, read into one typed description of the network. Every size is
// checked here, before anything is allocated; an unsupported model type or feature is named.
import { halfBitsToFloat, toBF16Bits } from '../quant/half';

export type ModelType = 'llama' | 'mistral' | 'qwen2' | 'phi3' | 'gemma2' | 'falcon';

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

export const SUPPORTED_MODEL_TYPES: ModelType[] = ['llama', 'mistral', 'qwen2', 'phi3', 'gemma2', 'falcon'];
const LLAMA_MODULES = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];
const PHI3_MODULES = ['qkv_proj', 'o_proj', 'gate_up_proj', 'down_proj'];

export function parseModelConfig(json: unknown, source = 'config.json'): ModelConfig {
  const fail = (what: string) => new ConfigError(`${source}: ${what}`);
  if (typeof json !== 'object' || json === null) throw fail('is not a JSON object');
  const c = json as Record<string, unknown>;
  const type = c.model_type;
  if (typeof type !== 'string') throw fail('has no model_type');
  if (!SUPPORTED_MODEL_TYPES.includes(type as ModelType)) {
    throw fail(`model_type "${type}" is not supported yet; supported: ${SUPPORTED_MODEL_TYPES.join(', ')}`);
  }
  const int = (key: string, fallback?: number): number => {
    const v = c[key] ?? fallback;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw fail(`${key} must be a positive integer, got ${JSON.stringify(v)}`);
    return v;
  };
  const num = (key: string, fallback: number): number => {
    const v = c[key] ?? fallback;
    if (typeof v !== 'number' || !(v > 0)) throw fail(`${key} must be a positive number, got ${JSON.stringify(v)}`);
    return v;
  };

  if (type === 'falcon') return parseFalcon(c, fail, int, num);
  const hidden = int('hidden_size');
  const heads = int('num_attention_heads');
  const kvHeads = int('num_key_value_heads', heads);
  if (heads % kvHeads !== 0) throw fail(`num_attention_heads (${heads}) is not a multiple of num_key_value_heads (${kvHeads})`);
  if (c.head_dim == null && hidden % heads !== 0) throw fail(`hidden_size (${hidden}) is not a multiple of num_attention_heads (${heads})`);
  const headDim = int('head_dim', hidden / heads);
  if (headDim % 2 !== 0) throw fail(`head_dim (${headDim}) must be even for rotary embeddings`);

  const gemma = type === 'gemma2';
  const act = gemma ? (c.hidden_activation ?? c.hidden_act ?? 'gelu_pytorch_tanh') : (c.hidden_act ?? 'silu');
  const expectedAct = gemma ? 'gelu_pytorch_tanh' : 'silu';
  if (act !== expectedAct) throw fail(`hidden_act "${String(act)}" is not supported for ${type}; expected ${expectedAct}`);
  if (c.partial_rotary_factor != null && c.partial_rotary_factor !== 1) throw fail('partial_rotary_factor other than 1 is not supported');

  const phi3 = type === 'phi3';
  const slidingWindow =
    type === 'mistral' || phi3 ? (typeof c.sliding_window === 'number' ? c.sliding_window : null)
    : gemma ? null // per layer: GemmaOptions
    : type === 'qwen2' && c.use_sliding_window ? int('sliding_window') : null;
  const eos = c.eos_token_id;
  return {
    modelType: type as ModelType,
    hidden,
    heads,
    kvHeads,
    headDim,
    layers: int('num_hidden_layers'),
    intermediate: int('intermediate_size'),
    vocab: int('vocab_size'),
    norm: { kind: 'rms', eps: num('rms_norm_eps', 1e-6) },
    activation: gemma ? 'gelu' : 'silu',
    rope: { theta: num('rope_theta', 10000), scaling: parseRopeScaling(c.rope_scaling, fail) },
    tieEmbeddings: gemma ? c.tie_word_embeddings !== false : c.tie_word_embeddings === true,
    bias: {
      qkv: type === 'qwen2' || c.attention_bias === true,
      o: c.attention_bias === true,
      mlp: c.mlp_bias === true,
    },
    maxPositions: int('max_position_embeddings', 2048),
    slidingWindow,
    bosTokenId: typeof c.bos_token_id === 'number' ? c.bos_token_id : null,
    eosTokenIds: typeof eos === 'number' ? [eos] : Array.isArray(eos) ? eos.filter((e): e is number => typeof e === 'number') : [],
    linearModules: phi3 ? PHI3_MODULES : LLAMA_MODULES,
    // PEFT's defaults: q_proj, v_proj for llama, mistral and qwen2; qkv_proj for phi3
    defaultLoraTargets: phi3 ? ['qkv_proj'] : ['q_proj', 'v_proj'],
    prequantized: parseQuantization(c.quantization_config, fail),
    fused: { qkv: phi3, gateUp: phi3 },
    gemma: gemma ? {
      queryPreAttnScalar: num('query_pre_attn_scalar', headDim),
      attnSoftcap: typeof c.attn_logit_softcapping === 'number' ? c.attn_logit_softcapping : null,
      finalSoftcap: typeof c.final_logit_softcapping === 'number' ? c.final_logit_softcapping : null,
      slidingWindow: typeof c.sliding_window === 'number' ? c.sliding_window : null,
      embedScale: halfBitsToFloat(toBF16Bits(Math.sqrt(hidden)), 'BF16'),
    } : null,
    falcon: null,
  };
}

const FALCON_MODULES = ['query_key_value', 'dense', 'dense_h_to_4h', 'dense_4h_to_h'];

// Falcon (transformers' FalconConfig, with its aliases n_head, n_layer, n_embed): parallel
// attention and MLP, LayerNorm with bias, exact GELU, rotary, a fused query_key_value.
function parseFalcon(
  c: Record<string, unknown>, fail: (what: string) => ConfigError, int: (k: string, d?: number) => number, num: (k: string, d: number) => number,
): ModelConfig {
  const alias = (k: string, a: string) => (c[k] ?? c[a]);
  const hidden = typeof alias('hidden_size', 'n_embed') === 'number' ? (alias('hidden_size', 'n_embed') as number) : int('hidden_size');
  const heads = (alias('num_attention_heads', 'n_head') as number) ?? int('num_attention_heads');
  const layers = (alias('num_hidden_layers', 'n_layer') as number) ?? int('num_hidden_layers');
  for (const [k, v] of [['hidden_size', hidden], ['num_attention_heads', heads], ['num_hidden_layers', layers]] as const) {
    if (!Number.isInteger(v) || v < 1) throw fail(`${k} must be a positive integer, got ${JSON.stringify(v)}`);
  }
  if (c.alibi) throw fail('alibi is true; only rotary Falcon models are supported');
  if (c.parallel_attn === false) throw fail('parallel_attn is false; only parallel-attention Falcon models (7B, 40B, 180B) are supported');
  const newArch = c.new_decoder_architecture === true;
  if (!newArch && c.multi_query === false) throw fail('multi_query is false without new_decoder_architecture; that Falcon layout is not supported');
  const kvHeads = newArch ? int('num_kv_heads', heads) : 1;
  if (heads % kvHeads !== 0) throw fail(`num_attention_heads (${heads}) is not a multiple of num_kv_heads (${kvHeads})`);
  if (hidden % heads !== 0) throw fail(`hidden_size (${hidden}) is not a multiple of num_attention_heads (${heads})`);
  const headDim = hidden / heads;
  if (headDim % 2 !== 0) throw fail(`the head size (${headDim}) must be even for rotary embeddings`);
  const act = c.activation ?? 'gelu';
  if (act !== 'gelu') throw fail(`activation "${String(act)}" is not supported for falcon; expected gelu`);
  const bias = c.bias === true;
  const eos = c.eos_token_id;
  return {
    modelType: 'falcon', hidden, heads, kvHeads, headDim, layers,
    intermediate: int('ffn_hidden_size', 4 * hidden),
    vocab: int('vocab_size'),
    norm: { kind: 'layer', eps: num('layer_norm_epsilon', 1e-5) },
    activation: 'gelu',
    rope: { theta: num('rope_theta', 10000), scaling: parseRopeScaling(c.rope_scaling, fail) },
    tieEmbeddings: c.tie_word_embeddings !== false, // FalconConfig ties by default
    bias: { qkv: bias, o: bias, mlp: bias },
    maxPositions: int('max_position_embeddings', 2048),
    slidingWindow: null,
    bosTokenId: typeof c.bos_token_id === 'number' ? c.bos_token_id : null,
    eosTokenIds: typeof eos === 'number' ? [eos] : Array.isArray(eos) ? eos.filter((e): e is number => typeof e === 'number') : [],
    linearModules: FALCON_MODULES,
    defaultLoraTargets: ['query_key_value'], // PEFT's default for falcon
    prequantized: parseQuantization(c.quantization_config, fail),
    fused: { qkv: true, gateUp: false },
    gemma: null,
    falcon: { qkv: newArch ? 'grouped' : 'multi-query', twoNorms: newArch && (c.num_ln_in_parallel_attn ?? 2) === 2 },
  };
}

function parseQuantization(q: unknown, fail: (what: string) => ConfigError): ModelConfig['prequantized'] {
  if (q == null) return null;
  const r = q as Record<string, unknown>;
  if (r.quant_method !== 'bitsandbytes') throw fail(`quantization_config.quant_method "${String(r.quant_method)}" is not supported; only bitsandbytes 4-bit NF4 checkpoints load pre-quantized`);
  if (!r.load_in_4bit) throw fail('the checkpoint is bitsandbytes 8-bit; only 4-bit NF4 checkpoints load pre-quantized (or use the 16-bit original)');
  if ((r.bnb_4bit_quant_type ?? 'fp4') !== 'nf4') throw fail(`bnb_4bit_quant_type is "${String(r.bnb_4bit_quant_type ?? 'fp4')}"; only nf4 is supported`);
  return { quantType: 'nf4', doubleQuant: r.bnb_4bit_use_double_quant === true };
}

function parseRopeScaling(s: unknown, fail: (what: string) => ConfigError): RopeScaling | null {
  if (s == null) return null;
  if (typeof s !== 'object') throw fail('rope_scaling is not an object');
  const r = s as Record<string, unknown>;
  const kind = r.rope_type ?? r.type;
  const factor = r.factor;
  if (kind === 'default') return null;
  if (typeof factor !== 'number' || !(factor > 0)) throw fail(`rope_scaling.factor must be a positive number, got ${JSON.stringify(factor)}`);
  if (kind === 'linear') return { type: 'linear', factor };
  if (kind === 'llama3') {
    const get = (k: string) => {
      const v = r[k];
      if (typeof v !== 'number' || !(v > 0)) throw fail(`rope_scaling.${k} must be a positive number, got ${JSON.stringify(v)}`);
      return v;
    };
    return {
      type: 'llama3', factor, lowFreqFactor: get('low_freq_factor'), highFreqFactor: get('high_freq_factor'),
      originalMaxPositions: get('original_max_position_embeddings'),
    };
  }
  throw fail(`rope_scaling type ${JSON.stringify(kind)} is not supported; supported: linear, llama3`);
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
