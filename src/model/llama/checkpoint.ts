// The Llama family's checkpoint: every tensor's name and shape (transformers' LlamaForCausalLM
// and its kin), and their assembly into the layer's weights.
import type { ModelConfig } from '../config';
import { layerPrefix, type LinearModule, type Parts } from '../family';
import type { LoraLinear } from '../lora-linear';
import type { LayerWeights, LlamaWeights } from './layer';

/** The layer's linear modules, by PEFT's name: q, k, v and gate, up apart, or fused as Phi-3 has them. */
export function llamaLinears(c: ModelConfig): Record<string, LinearModule & { key: keyof LayerWeights }> {
  const qd = c.heads * c.headDim,
    kvd = c.kvHeads * c.headDim,
    H = c.hidden,
    I = c.intermediate;
  return {
    ...(c.fused.qkv
      ? { qkv_proj: { path: 'self_attn.qkv_proj', shape: [qd + 2 * kvd, H], key: 'qkv' as const } }
      : {
          q_proj: { path: 'self_attn.q_proj', shape: [qd, H], key: 'q' as const },
          k_proj: { path: 'self_attn.k_proj', shape: [kvd, H], key: 'k' as const },
          v_proj: { path: 'self_attn.v_proj', shape: [kvd, H], key: 'v' as const },
        }),
    o_proj: { path: 'self_attn.o_proj', shape: [H, qd], key: 'o' },
    ...(c.fused.gateUp
      ? { gate_up_proj: { path: 'mlp.gate_up_proj', shape: [2 * I, H], key: 'gateUp' as const } }
      : {
          gate_proj: { path: 'mlp.gate_proj', shape: [I, H], key: 'gate' as const },
          up_proj: { path: 'mlp.up_proj', shape: [I, H], key: 'up' as const },
        }),
    down_proj: { path: 'mlp.down_proj', shape: [H, I], key: 'down' },
  };
}

/** Every tensor name the config implies, with its shape. */
export function llamaTensors(c: ModelConfig): Map<string, number[]> {
  const m = new Map<string, number[]>();
  const qd = c.heads * c.headDim,
    kvd = c.kvHeads * c.headDim;
  m.set(`${c.prefix}embed_tokens.weight`, [c.vocab, c.hidden]);
  m.set(`${c.prefix}norm.weight`, [c.hidden]);
  if (!c.tieEmbeddings) m.set('lm_head.weight', [c.vocab, c.hidden]);
  for (let l = 0; l < c.layers; l++) {
    const p = layerPrefix(c, l);
    m.set(`${p}.input_layernorm.weight`, [c.hidden]);
    m.set(`${p}.post_attention_layernorm.weight`, [c.hidden]);
    for (const { path, shape } of Object.values(llamaLinears(c))) m.set(`${p}.${path}.weight`, shape);
    if (c.bias.qkv) for (const x of ['q', 'k', 'v']) m.set(`${p}.self_attn.${x}_proj.bias`, [x === 'q' ? qd : kvd]);
    if (c.qkNorm) for (const x of ['q', 'k']) m.set(`${p}.self_attn.${x}_norm.weight`, [c.headDim]); // Qwen3
    if (c.bias.o) m.set(`${p}.self_attn.o_proj.bias`, [c.hidden]);
    if (c.bias.mlp) for (const x of ['gate', 'up']) m.set(`${p}.mlp.${x}_proj.bias`, [c.intermediate]);
    if (c.bias.mlp) m.set(`${p}.mlp.down_proj.bias`, [c.hidden]);
  }
  return m;
}

export function assembleLlama(
  c: ModelConfig,
  { vec, mat, lin }: Parts,
): { weights: LlamaWeights; linears: LoraLinear[] } {
  const linears: LoraLinear[] = [];
  const layers: LayerWeights[] = [];
  for (let l = 0; l < c.layers; l++) {
    const p = layerPrefix(c, l);
    const layer = {
      inputNorm: vec(`${p}.input_layernorm.weight`),
      postNorm: vec(`${p}.post_attention_layernorm.weight`),
    } as LayerWeights;
    if (c.qkNorm) {
      // Qwen3
      Object.assign(layer, { qNorm: vec(`${p}.self_attn.q_norm.weight`), kNorm: vec(`${p}.self_attn.k_norm.weight`) });
    }
    for (const { path, key } of Object.values(llamaLinears(c))) {
      const m = lin(`${p}.${path}`);
      Object.assign(layer, { [key]: m });
      linears.push(m);
    }
    layers.push(layer);
  }
  const embed = mat(`${c.prefix}embed_tokens.weight`);
  const head = c.tieEmbeddings ? embed : mat('lm_head.weight');
  return { weights: { embed, layers, norm: vec(`${c.prefix}norm.weight`), head }, linears };
}
