// The models the page offers first, with the config.json fields the size and memory estimates read
// (copied from each repository's config.json), so each shows what it takes before anything is
// fetched. "Check size" then reads the real config.json from the Hub.
import type { RawConfig } from './config';

export interface Preset {
  id: string;
  /** What the card says the model is. */
  note: string;
  /** Gated on the Hub: its license must be accepted there, and the download needs a token. */
  gated: boolean;
  config: RawConfig;
}

const LLAMA32_1B: RawConfig = {
  model_type: 'llama', hidden_size: 2048, num_attention_heads: 32, num_key_value_heads: 8, head_dim: 64,
  num_hidden_layers: 16, intermediate_size: 8192, vocab_size: 128256, rms_norm_eps: 1e-5, rope_theta: 500000,
  tie_word_embeddings: true, hidden_act: 'silu', max_position_embeddings: 131072, bos_token_id: 128000,
  eos_token_id: [128001, 128008, 128009],
  rope_scaling: {
    rope_type: 'llama3', factor: 32, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192,
  },
};

export const PRESETS: Preset[] = [
  {
    id: 'Qwen/Qwen3-0.6B', note: 'Qwen3, 0.6B: chat and reasoning (thinking on or off)', gated: false,
    config: {
      model_type: 'qwen3', hidden_size: 1024, num_attention_heads: 16, num_key_value_heads: 8, head_dim: 128,
      num_hidden_layers: 28, intermediate_size: 3072, vocab_size: 151936, max_position_embeddings: 40960,
      rope_theta: 1000000, rms_norm_eps: 1e-6, tie_word_embeddings: true, hidden_act: 'silu', attention_bias: false,
      use_sliding_window: false, bos_token_id: 151643, eos_token_id: 151645,
    },
  },
  {
    id: 'google/gemma-3-270m-it', note: 'Gemma 3, 270M instruct: a 262k vocabulary, local and global layers',
    gated: true,
    config: {
      model_type: 'gemma3_text', hidden_size: 640, num_attention_heads: 4, num_key_value_heads: 1, head_dim: 256,
      num_hidden_layers: 18, intermediate_size: 2048, vocab_size: 262144, max_position_embeddings: 32768,
      rms_norm_eps: 1e-6, query_pre_attn_scalar: 256, sliding_window: 512, rope_theta: 1000000,
      rope_local_base_freq: 10000, rope_scaling: null, hidden_activation: 'gelu_pytorch_tanh',
      attn_logit_softcapping: null, final_logit_softcapping: null, _sliding_window_pattern: 6,
      layer_types: Array.from({ length: 18 }, (_, l) => ((l + 1) % 6 ? 'sliding_attention' : 'full_attention')),
      bos_token_id: 2, eos_token_id: 1, pad_token_id: 0,
    },
  },
  {
    id: 'HuggingFaceTB/SmolLM3-3B', note: 'SmolLM3, 3B: reasoning, long context, every 4th layer without RoPE',
    gated: false,
    config: {
      model_type: 'smollm3', hidden_size: 2048, num_attention_heads: 16, num_key_value_heads: 4,
      num_hidden_layers: 36, intermediate_size: 11008, vocab_size: 128256, max_position_embeddings: 65536,
      rope_theta: 5000000, rms_norm_eps: 1e-6, hidden_act: 'silu', attention_bias: false, mlp_bias: false,
      use_sliding_window: false, no_rope_layer_interval: 4,
      no_rope_layers: Array.from({ length: 36 }, (_, l) => ((l + 1) % 4 ? 1 : 0)),
      tie_word_embeddings: true, eos_token_id: 128012, pad_token_id: 128004,
    },
  },
  {
    id: 'meta-llama/Llama-3.2-1B-Instruct', note: 'Llama 3.2, 1B instruct', gated: true, config: LLAMA32_1B,
  },
  {
    id: 'unsloth/Llama-3.2-1B-Instruct-bnb-4bit', note: 'Llama 3.2, 1B instruct, already NF4 (not gated)',
    gated: false,
    config: {
      ...LLAMA32_1B,
      quantization_config: {
        quant_method: 'bitsandbytes', load_in_4bit: true, bnb_4bit_quant_type: 'nf4', bnb_4bit_use_double_quant: true,
      },
    },
  },
  {
    id: 'HuggingFaceTB/SmolLM2-135M-Instruct', note: 'SmolLM2, 135M instruct: the quickest to try', gated: false,
    config: {
      model_type: 'llama', hidden_size: 576, num_attention_heads: 9, num_key_value_heads: 3, num_hidden_layers: 30,
      intermediate_size: 1536, vocab_size: 49152, rms_norm_eps: 1e-5, rope_theta: 100000, tie_word_embeddings: true,
      hidden_act: 'silu', max_position_embeddings: 8192, bos_token_id: 1, eos_token_id: 2,
    },
  },
  {
    id: 'Qwen/Qwen2.5-0.5B-Instruct', note: 'Qwen2.5, 0.5B instruct', gated: false,
    config: {
      model_type: 'qwen2', hidden_size: 896, num_attention_heads: 14, num_key_value_heads: 2, num_hidden_layers: 24,
      intermediate_size: 4864, vocab_size: 151936, rms_norm_eps: 1e-6, rope_theta: 1000000, tie_word_embeddings: true,
      hidden_act: 'silu', max_position_embeddings: 32768, use_sliding_window: false, eos_token_id: 151645,
    },
  },
  {
    id: 'tiiuae/falcon-7b', note: 'Falcon, 7B: the worked example (needs a large GPU)', gated: false,
    config: {
      model_type: 'falcon', hidden_size: 4544, n_head: 71, n_layer: 32, vocab_size: 65024, layer_norm_epsilon: 1e-5,
      multi_query: true, parallel_attn: true, bias: false, alibi: false, new_decoder_architecture: false,
      bos_token_id: 11, eos_token_id: 11,
    },
  },
];
