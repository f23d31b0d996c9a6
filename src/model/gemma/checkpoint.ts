// The Gemma family's checkpoint: every tensor's name and shape (Gemma2ForCausalLM,
// Gemma3ForCausalLM, and the language model of Gemma3ForConditionalGeneration), and their assembly.
import type { ModelConfig } from '../config';
import { layerPrefix, type LinearModule, type Parts } from '../family';
import type { LoraLinear } from '../lora-linear';
import type { GemmaLayerWeights, GemmaWeights } from './layer';

type Module = 'q' | 'k' | 'v' | 'o' | 'gate' | 'up' | 'down';

export function gemmaLinears(c: ModelConfig): Record<string, LinearModule & { key: Module }> {
  const qd = c.heads * c.headDim,
    kvd = c.kvHeads * c.headDim,
    H = c.hidden,
    I = c.intermediate;
  return {
    q_proj: { path: 'self_attn.q_proj', shape: [qd, H], key: 'q' },
    k_proj: { path: 'self_attn.k_proj', shape: [kvd, H], key: 'k' },
    v_proj: { path: 'self_attn.v_proj', shape: [kvd, H], key: 'v' },
    o_proj: { path: 'self_attn.o_proj', shape: [H, qd], key: 'o' },
    gate_proj: { path: 'mlp.gate_proj', shape: [I, H], key: 'gate' },
    up_proj: { path: 'mlp.up_proj', shape: [I, H], key: 'up' },
    down_proj: { path: 'mlp.down_proj', shape: [H, I], key: 'down' },
  };
}

const NORMS = [
  'input_layernorm',
  'post_attention_layernorm',
  'pre_feedforward_layernorm',
  'post_feedforward_layernorm',
];

export function gemmaTensors(c: ModelConfig): Map<string, number[]> {
  const m = new Map<string, number[]>();
  m.set(`${c.prefix}embed_tokens.weight`, [c.vocab, c.hidden]);
  m.set(`${c.prefix}norm.weight`, [c.hidden]);
  if (!c.tieEmbeddings) m.set('lm_head.weight', [c.vocab, c.hidden]);
  for (let l = 0; l < c.layers; l++) {
    const p = layerPrefix(c, l);
    for (const n of NORMS) m.set(`${p}.${n}.weight`, [c.hidden]);
    if (c.qkNorm) for (const x of ['q', 'k']) m.set(`${p}.self_attn.${x}_norm.weight`, [c.headDim]); // Gemma 3
    for (const { path, shape } of Object.values(gemmaLinears(c))) {
      m.set(`${p}.${path}.weight`, shape);
      if (c.bias.qkv && path.startsWith('self_attn.')) m.set(`${p}.${path}.bias`, [shape[0]]);
    }
  }
  return m;
}

/**
 * A multimodal Gemma 3 checkpoint's names: transformers ≥ 4.52 writes model.language_model.…,
 * Google's own repositories the older language_model.model.… and language_model.lm_head; the vision
 * tower and its projector are skipped.
 */
export function renameGemma(name: string, c: ModelConfig): string | null {
  if (c.prefix !== 'model.language_model.') return name;
  if (/^(model\.)?(vision_tower|multi_modal_projector)\./.test(name)) return null;
  if (name.startsWith('language_model.model.')) return `model.language_model.${name.slice(21)}`;
  if (name === 'language_model.lm_head.weight') return 'lm_head.weight';
  return name;
}

export function assembleGemma(
  c: ModelConfig,
  { vec, mat, lin }: Parts,
): { weights: GemmaWeights; linears: LoraLinear[] } {
  const linears: LoraLinear[] = [];
  const layers: GemmaLayerWeights[] = [];
  for (let l = 0; l < c.layers; l++) {
    const p = layerPrefix(c, l);
    const layer = {
      inputNorm: vec(`${p}.input_layernorm.weight`),
      postAttnNorm: vec(`${p}.post_attention_layernorm.weight`),
      preFfNorm: vec(`${p}.pre_feedforward_layernorm.weight`),
      postFfNorm: vec(`${p}.post_feedforward_layernorm.weight`),
      ...(c.qkNorm ? { qNorm: vec(`${p}.self_attn.q_norm.weight`), kNorm: vec(`${p}.self_attn.k_norm.weight`) } : {}),
    } as GemmaLayerWeights;
    for (const { path, key } of Object.values(gemmaLinears(c))) {
      const m = lin(`${p}.${path}`);
      layer[key] = m;
      linears.push(m);
    }
    layers.push(layer);
  }
  const embed = mat(`${c.prefix}embed_tokens.weight`);
  const head = c.tieEmbeddings ? embed : mat('lm_head.weight');
  return { weights: { embed, layers, norm: vec(`${c.prefix}norm.weight`), head }, linears };
}
