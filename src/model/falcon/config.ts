// Falcon's config.json (transformers' FalconConfig, with its aliases n_head, n_layer, n_embed):
// parallel attention and MLP, LayerNorm with bias, exact GELU, rotary, a fused query_key_value.
import { showValue } from '../../formats/show';
import {
  checkAttention,
  checkRopeTable,
  parseQuantization,
  parseRopeScaling,
  plainLayers,
  CONFIG_LIMITS,
  type Fail,
  type Fields,
  type ModelConfig,
  type RawConfig,
} from '../config';

export function parseFalconConfig(c: RawConfig, f: Fields, fail: Fail): ModelConfig {
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
  if (heads % kvHeads !== 0) {
    throw fail(`num_attention_heads (${heads}) is not a multiple of num_kv_heads (${kvHeads})`);
  }
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
    modelType: 'falcon',
    family: 'falcon',
    hidden,
    heads,
    kvHeads,
    headDim,
    layers,
    ...plainLayers(layers),
    intermediate: f.int('ffn_hidden_size', L.intermediate, 4 * hidden),
    vocab: f.int('vocab_size', L.vocab),
    norm: { kind: 'layer', eps: f.real('layer_norm_epsilon', 1e-5, 1, false) },
    activation: 'gelu',
    rope: { theta: f.real('rope_theta', 10000), scaling: parseRopeScaling(c.rope_scaling, fail) },
    tieEmbeddings: f.bool('tie_word_embeddings', true), // FalconConfig ties by default
    bias: { qkv: bias, o: bias, mlp: bias },
    maxPositions,
    slidingWindow: null,
    embedScale: 1,
    finalSoftcap: null,
    bosTokenId: f.tokenId('bos_token_id'),
    eosTokenIds: f.tokenIds('eos_token_id'),
    linearModules: [], // filled by the registry from the family's linears
    defaultLoraTargets: ['query_key_value'], // PEFT's default for falcon
    prequantized: parseQuantization(c.quantization_config, fail),
    fused: { qkv: true, gateUp: false },
    qkNorm: false,
    prefix: 'transformer.',
    gemma: null,
    falcon: { qkv: newArch ? 'grouped' : 'multi-query', twoNorms: newArch && lnCount === 2 },
  };
}
