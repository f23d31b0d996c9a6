// The Llama family's config.json: Llama (and TinyLlama, SmolLM2), Mistral, Qwen2, Qwen3, Phi-3 and
// SmolLM3 share one layer and differ in a few flags, read here per model_type.
import { showValue } from '../../formats/show';
import {
  parseRopeScaling,
  plainLayers,
  readDecoder,
  readLayerFlags,
  CONFIG_LIMITS,
  type Fail,
  type Fields,
  type ModelConfig,
  type RawConfig,
} from '../config';

/** One Llama-family config.json; `modelType` picks the variant's flags. */
export function parseLlamaConfig(c: RawConfig, f: Fields, fail: Fail, modelType: string): ModelConfig {
  const qwen3 = modelType === 'qwen3',
    phi3 = modelType === 'phi3',
    smollm3 = modelType === 'smollm3';
  // Qwen3Config's head_dim defaults to 128, not hidden / heads (its checkpoints all write it out)
  const d = readDecoder(c, f, fail, qwen3 ? 128 : undefined);
  const act = c.hidden_act ?? 'silu';
  if (act !== 'silu') throw fail(`hidden_act ${showValue(act)} is not supported for ${modelType}; expected silu`);
  // a window of at least one token, or none (null); Qwen2, Qwen3 and SmolLM3 use theirs only with use_sliding_window
  const optionalWindow = modelType === 'mistral' || phi3;
  const slidingWindow = optionalWindow
    ? f.optionalInt('sliding_window', CONFIG_LIMITS.positions)
    : f.bool('use_sliding_window', false)
      ? f.int('sliding_window', CONFIG_LIMITS.positions)
      : null;
  const attentionBias = f.bool('attention_bias', false);
  return {
    modelType,
    family: 'llama',
    ...d,
    ...plainLayers(d.layers),
    noRope: smollm3 ? smolLM3NoRope(c, f, fail, d.layers) : Array(d.layers).fill(false),
    activation: 'silu',
    rope: { theta: f.real('rope_theta', 10000), scaling: parseRopeScaling(c.rope_scaling, fail) },
    // SmolLM3Config and Qwen3's small checkpoints tie; Llama 3.2 says so in its config.json
    tieEmbeddings: f.bool('tie_word_embeddings', smollm3),
    // Qwen2 has biases on q, k and v; Qwen3 is Qwen2 without them (unless attention_bias)
    bias: { qkv: modelType === 'qwen2' || attentionBias, o: attentionBias, mlp: f.bool('mlp_bias', false) },
    slidingWindow,
    embedScale: 1,
    finalSoftcap: null,
    linearModules: [], // filled by the registry from the family's linears
    // PEFT's defaults: q_proj, v_proj for llama, mistral, qwen2 and qwen3; none for phi3 and smollm3
    defaultLoraTargets: phi3 || smollm3 ? null : ['q_proj', 'v_proj'],
    fused: { qkv: phi3, gateUp: phi3 },
    qkNorm: qwen3,
    prefix: 'model.',
    gemma: null,
    falcon: null,
  };
}

/**
 * SmolLM3 skips RoPE in some layers ("NoPE"): no_rope_layers holds 1 where a layer uses RoPE, 0
 * where it does not; without the list, every no_rope_layer_interval-th layer (4th) goes without.
 */
function smolLM3NoRope(c: RawConfig, f: Fields, fail: Fail, layers: number): boolean[] {
  const uses = readLayerFlags(c, 'no_rope_layers', layers, fail);
  if (uses) return uses.map((u) => !u);
  const interval = f.int('no_rope_layer_interval', CONFIG_LIMITS.layers, 4);
  return Array.from({ length: layers }, (_, l) => (l + 1) % interval === 0);
}
