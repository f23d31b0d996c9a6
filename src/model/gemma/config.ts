// The Gemma family's config.json: Gemma 2 (gemma2) and Gemma 3 (gemma3_text; and gemma3, the
// multimodal checkpoint, whose language model is read from its text_config).
import { showValue } from '../../formats/show';
import { halfBitsToFloat, toBF16Bits } from '../../quant/half';
import {
  fieldReaders,
  parseRopeScaling,
  readDecoder,
  CONFIG_LIMITS,
  type Fail,
  type Fields,
  type ModelConfig,
  type Rope,
  type RawConfig,
} from '../config';

/**
 * Gemma3TextConfig's defaults, for the fields a multimodal gemma3 config.json's text_config leaves
 * out (gemma-3-4b-it writes only a few of them).
 */
const GEMMA3_TEXT_DEFAULTS: RawConfig = {
  vocab_size: 262208,
  hidden_size: 2304,
  intermediate_size: 9216,
  num_hidden_layers: 26,
  num_attention_heads: 8,
  num_key_value_heads: 4,
  head_dim: 256,
  hidden_activation: 'gelu_pytorch_tanh',
  max_position_embeddings: 131072,
  rms_norm_eps: 1e-6,
  bos_token_id: 2,
  eos_token_id: 1,
  tie_word_embeddings: true,
  rope_theta: 1_000_000,
  query_pre_attn_scalar: 256,
  sliding_window: 4096,
  rope_local_base_freq: 10_000,
  sliding_window_pattern: 6,
};

export function parseGemmaConfig(c: RawConfig, f: Fields, fail: Fail, modelType: string): ModelConfig {
  if (modelType === 'gemma3') return parseGemma3Multimodal(c, fail);
  const gemma3 = modelType === 'gemma3_text';
  const d = readDecoder(c, f, fail);
  const act = c.hidden_activation ?? c.hidden_act ?? 'gelu_pytorch_tanh';
  if (act !== 'gelu_pytorch_tanh') {
    throw fail(`hidden_activation ${showValue(act)} is not supported for ${modelType}; expected gelu_pytorch_tanh`);
  }
  if (f.bool('use_bidirectional_attention', false)) {
    throw fail('use_bidirectional_attention is true: that is an embedding model, not a causal language model');
  }
  const attentionBias = f.bool('attention_bias', false);
  const localWindow = f.optionalInt('sliding_window', CONFIG_LIMITS.positions);
  const localLayers = gemmaLocalLayers(c, f, fail, d.layers, gemma3);
  const rope = parseGemmaRopes(c, f, fail, gemma3);
  return {
    modelType,
    family: 'gemma',
    ...d,
    activation: 'gelu',
    rope: rope.global,
    ropeLocal: rope.local,
    noRope: Array(d.layers).fill(false),
    tieEmbeddings: f.bool('tie_word_embeddings', true),
    bias: { qkv: attentionBias, o: attentionBias, mlp: false },
    slidingWindow: null, // per layer: localWindow
    localWindow,
    localLayers: localWindow === null ? localLayers.map(() => false) : localLayers,
    // √hidden, rounded to BF16 as transformers computes it in a BF16 model
    embedScale: halfBitsToFloat(toBF16Bits(Math.sqrt(d.hidden)), 'BF16'),
    finalSoftcap: f.optionalReal('final_logit_softcapping'),
    linearModules: [], // filled by the registry from the family's linears
    defaultLoraTargets: ['q_proj', 'v_proj'], // PEFT's default for gemma2 and gemma3
    fused: { qkv: false, gateUp: false },
    qkNorm: gemma3,
    prefix: 'model.',
    gemma: {
      queryPreAttnScalar: f.real('query_pre_attn_scalar', d.headDim),
      attnSoftcap: f.optionalReal('attn_logit_softcapping'),
    },
    falcon: null,
  };
}

/**
 * Which layers attend within the sliding window. layer_types names each ('sliding_attention' or
 * 'full_attention'); without it Gemma 2 alternates (even layers local) and Gemma 3 makes every
 * sliding_window_pattern-th layer (6th) global.
 */
function gemmaLocalLayers(c: RawConfig, f: Fields, fail: Fail, layers: number, gemma3: boolean): boolean[] {
  const types = c.layer_types;
  if (types != null) {
    const kinds = ['sliding_attention', 'full_attention'];
    if (!Array.isArray(types) || types.length !== layers || !types.every((t) => kinds.includes(t as string))) {
      throw fail(
        `layer_types must name sliding_attention or full_attention for each of the ${layers} layers, ` +
          `got ${showValue(types)}`,
      );
    }
    return types.map((t) => t === 'sliding_attention');
  }
  if (!gemma3) return Array.from({ length: layers }, (_, l) => l % 2 === 0);
  const key = c.sliding_window_pattern != null ? 'sliding_window_pattern' : '_sliding_window_pattern';
  const pattern = f.int(key, CONFIG_LIMITS.layers, 6);
  return Array.from({ length: layers }, (_, l) => (l + 1) % pattern !== 0);
}

/**
 * Gemma 3's two RoPEs: global layers rotate by rope_theta (with rope_scaling), local ones by
 * rope_local_base_freq unscaled. Newer configs give both in rope_parameters, keyed by layer type.
 */
function parseGemmaRopes(c: RawConfig, f: Fields, fail: Fail, gemma3: boolean): { global: Rope; local: Rope | null } {
  const params = c.rope_parameters;
  if (gemma3 && params != null && typeof params === 'object' && 'full_attention' in params) {
    const p = params as Record<string, unknown>;
    const one = (key: string): Rope => {
      const r = p[key];
      if (typeof r !== 'object' || r === null)
        throw fail(`rope_parameters.${key} must be an object, got ${showValue(r)}`);
      const g = fieldReaders(r as RawConfig, (what) => fail(`rope_parameters.${key}: ${what}`));
      return { theta: g.real('rope_theta', null), scaling: parseRopeScaling(r, fail) };
    };
    return { global: one('full_attention'), local: one('sliding_attention') };
  }
  const global = { theta: f.real('rope_theta', 10000), scaling: parseRopeScaling(c.rope_scaling, fail) };
  return { global, local: gemma3 ? { theta: f.real('rope_local_base_freq', 10000), scaling: null } : null };
}

/**
 * A multimodal Gemma 3 checkpoint (Gemma3ForConditionalGeneration): its language model, read from
 * text_config over Gemma3TextConfig's defaults; the vision tower is not loaded.
 */
function parseGemma3Multimodal(c: RawConfig, fail: Fail): ModelConfig {
  const text = c.text_config;
  if (typeof text !== 'object' || text === null || Array.isArray(text)) {
    throw fail(`a gemma3 config.json needs a text_config object for its language model, got ${showValue(text)}`);
  }
  const merged: RawConfig = { ...GEMMA3_TEXT_DEFAULTS, ...(text as RawConfig) };
  // bitsandbytes writes its quantization_config at the top of the multimodal config, and the
  // instruct checkpoints their end-of-turn token among the top's eos_token_id
  for (const key of ['quantization_config', 'eos_token_id', 'bos_token_id']) {
    if (c[key] != null && (text as RawConfig)[key] == null) merged[key] = c[key];
  }
  const inner = (what: string) => fail(`text_config: ${what}`);
  const parsed = parseGemmaConfig(merged, fieldReaders(merged, inner), inner, 'gemma3_text');
  return { ...parsed, modelType: 'gemma3', prefix: 'model.language_model.' };
}
