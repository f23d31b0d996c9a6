// The page's presets against the real checkpoints: each preset's config reads as the model's own
// config.json does (the facts below, from their Hub repositories and model cards), and the size
// and memory estimates the page shows before download are the ones these facts give.
import { describe, expect, it } from 'vitest';
import { PRESETS } from '../../src/model/presets';
import { parseModelConfig } from '../../src/model/registry';
import {
  estimateStoreBytes,
  estimateTrainingMemory,
  lossChunkRows,
  moduleShapes,
  parameterCount,
} from '../../src/model/estimate';

// google/gemma-3-270m's config.json (the -it one is the same network)
const GEMMA3_270M = {
  architectures: ['Gemma3ForCausalLM'],
  model_type: 'gemma3_text',
  hidden_size: 640,
  intermediate_size: 2048,
  num_hidden_layers: 18,
  num_attention_heads: 4,
  num_key_value_heads: 1,
  head_dim: 256,
  vocab_size: 262144,
  max_position_embeddings: 32768,
  rms_norm_eps: 1e-6,
  query_pre_attn_scalar: 256,
  sliding_window: 512,
  rope_theta: 1000000.0,
  rope_local_base_freq: 10000.0,
  rope_scaling: null,
  hidden_activation: 'gelu_pytorch_tanh',
  attn_logit_softcapping: null,
  final_logit_softcapping: null,
  attention_bias: false,
  _sliding_window_pattern: 6,
  layer_types: [
    'sliding_attention',
    'sliding_attention',
    'sliding_attention',
    'sliding_attention',
    'sliding_attention',
    'full_attention',
    'sliding_attention',
    'sliding_attention',
    'sliding_attention',
    'sliding_attention',
    'sliding_attention',
    'full_attention',
    'sliding_attention',
    'sliding_attention',
    'sliding_attention',
    'sliding_attention',
    'sliding_attention',
    'full_attention',
  ],
  use_bidirectional_attention: false,
  bos_token_id: 2,
  eos_token_id: 1,
  pad_token_id: 0,
  torch_dtype: 'bfloat16',
};
// HuggingFaceTB/SmolLM3-3B's config.json
const SMOLLM3_3B = {
  architectures: ['SmolLM3ForCausalLM'],
  model_type: 'smollm3',
  hidden_size: 2048,
  intermediate_size: 11008,
  num_hidden_layers: 36,
  num_attention_heads: 16,
  num_key_value_heads: 4,
  vocab_size: 128256,
  max_position_embeddings: 65536,
  rope_theta: 5000000.0,
  rms_norm_eps: 1e-6,
  hidden_act: 'silu',
  attention_bias: false,
  mlp_bias: false,
  use_sliding_window: false,
  sliding_window: null,
  max_window_layers: 28,
  no_rope_layer_interval: 4,
  no_rope_layers: [
    1, 1, 1, 0, 1, 1, 1, 0, 1, 1, 1, 0, 1, 1, 1, 0, 1, 1, 1, 0, 1, 1, 1, 0, 1, 1, 1, 0, 1, 1, 1, 0, 1, 1, 1, 0,
  ],
  rope_scaling: null,
  bos_token_id: null,
  eos_token_id: 128012,
  pad_token_id: 128004,
  tie_word_embeddings: true,
};
const QWEN3_06B = {
  model_type: 'qwen3',
  hidden_size: 1024,
  num_attention_heads: 16,
  num_key_value_heads: 8,
  head_dim: 128,
  num_hidden_layers: 28,
  intermediate_size: 3072,
  vocab_size: 151936,
  max_position_embeddings: 40960,
  rope_theta: 1000000,
  rms_norm_eps: 1e-6,
  tie_word_embeddings: true,
  hidden_act: 'silu',
  attention_bias: false,
  use_sliding_window: false,
  sliding_window: null,
  bos_token_id: 151643,
  eos_token_id: 151645,
};
const LLAMA32_1B = {
  model_type: 'llama',
  hidden_size: 2048,
  num_attention_heads: 32,
  num_key_value_heads: 8,
  head_dim: 64,
  num_hidden_layers: 16,
  intermediate_size: 8192,
  vocab_size: 128256,
  rms_norm_eps: 1e-5,
  rope_theta: 500000.0,
  tie_word_embeddings: true,
  hidden_act: 'silu',
  max_position_embeddings: 131072,
  bos_token_id: 128000,
  eos_token_id: [128001, 128008, 128009],
  rope_scaling: {
    rope_type: 'llama3',
    factor: 32.0,
    low_freq_factor: 1.0,
    high_freq_factor: 4.0,
    original_max_position_embeddings: 8192,
  },
};

const preset = (id: string) => PRESETS.find((p) => p.id === id)!;
const at512r16 = (c: ReturnType<typeof parseModelConfig>) =>
  estimateTrainingMemory(c, { max_length: 512, batch: 1, r: 16, targets: c.linearModules, load_in_4bit: true });

describe('presets', () => {
  it('read as the real config.json files do', () => {
    const pairs: [string, object][] = [
      ['Qwen/Qwen3-0.6B', QWEN3_06B],
      ['google/gemma-3-270m-it', GEMMA3_270M],
      ['HuggingFaceTB/SmolLM3-3B', SMOLLM3_3B],
      ['meta-llama/Llama-3.2-1B-Instruct', LLAMA32_1B],
    ];
    for (const [id, facts] of pairs) expect(parseModelConfig(preset(id).config), id).toEqual(parseModelConfig(facts));
    for (const p of PRESETS) expect(() => parseModelConfig(p.config), p.id).not.toThrow();
    expect(preset('google/gemma-3-270m-it').gated).toBe(true);
    expect(preset('meta-llama/Llama-3.2-1B-Instruct').gated).toBe(true);
  });

  it('gemma-3-270m: 268M parameters, 170M of them the embedding, five local layers to a global one', () => {
    const c = parseModelConfig(GEMMA3_270M);
    expect(c).toMatchObject({
      family: 'gemma',
      qkNorm: true,
      localWindow: 512,
      finalSoftcap: null,
      tieEmbeddings: true,
    });
    expect(c.localLayers.map((l) => (l ? 'L' : 'G')).join('')).toBe('LLLLLGLLLLLGLLLLLG');
    expect(c.rope).toEqual({ theta: 1e6, scaling: null });
    expect(c.ropeLocal).toEqual({ theta: 10000, scaling: null });
    // the model card's 268M: 167.8M embedding, 100.3M in the layers (q/k norms of 256 included)
    expect(parameterCount(c)).toBe(262144 * 640 + 18 * (5_570_560 + 4 * 640 + 2 * 256) + 640);
    expect(parameterCount(c)).toBe(268_098_176);
    expect(estimateStoreBytes(c)).toBe(392_058_112); // the BF16 embedding is most of it
    // the 262k vocabulary: 128 rows of logits at once under WebGPU's default 128 MiB binding
    expect(lossChunkRows(c.vocab, 2 ** 27)).toBe(128);
    const m = at512r16(c);
    expect(m).toMatchObject({
      weights: 392_058_112,
      adapter: 60_751_872,
      total: m.weights + m.adapter + m.activations,
    });
    expect(m.largestBuffer).toBe(64 * 262144 * 4);
    expect(m.total).toBe(664_884_480);
  });

  it('SmolLM3-3B: 3.08B parameters, RoPE skipped in every 4th layer', () => {
    const c = parseModelConfig(SMOLLM3_3B);
    expect(c.noRope.filter(Boolean).length).toBe(9);
    expect(c.noRope.slice(0, 8)).toEqual([false, false, false, true, false, false, false, true]);
    // without the list, SmolLM3Config derives the same from no_rope_layer_interval
    const { no_rope_layers: _, ...derived } = SMOLLM3_3B;
    expect(parseModelConfig(derived).noRope).toEqual(c.noRope);
    expect(parameterCount(c)).toBe(3_075_098_624);
    expect(moduleShapes(c)).toMatchObject({ k_proj: [512, 2048], gate_proj: [11008, 2048] });
    expect(at512r16(c).total).toBe(3_101_069_312);
  });

  it('Qwen3-0.6B and Llama-3.2-1B: their model cards’ sizes, and what training takes', () => {
    const q = parseModelConfig(QWEN3_06B),
      l = parseModelConfig(LLAMA32_1B);
    expect(parameterCount(q)).toBe(596_049_920);
    expect(parameterCount(l)).toBe(1_235_814_400);
    expect(at512r16(q).total).toBe(1_007_058_944); // 192 rows of its 152k-token logits at once
    expect(at512r16(l).total).toBe(1_678_118_912);
  });
});
