// Falcon's checkpoint: every tensor's name and shape (transformers' FalconForCausalLM), and their
// assembly into the layer's weights.
import type { ModelConfig } from '../config';
import type { LinearModule, Parts } from '../family';
import type { LoraLinear } from '../lora-linear';
import type { FalconLayerWeights, FalconWeights } from './layer';

export function falconLinears(c: ModelConfig): Record<string, LinearModule & { key: 'qkv' | 'dense' | 'up' | 'down' }> {
  const d = c.headDim,
    H = c.hidden;
  return {
    query_key_value: { path: 'self_attention.query_key_value', shape: [(c.heads + 2 * c.kvHeads) * d, H], key: 'qkv' },
    dense: { path: 'self_attention.dense', shape: [H, c.heads * d], key: 'dense' },
    dense_h_to_4h: { path: 'mlp.dense_h_to_4h', shape: [c.intermediate, H], key: 'up' },
    dense_4h_to_h: { path: 'mlp.dense_4h_to_h', shape: [H, c.intermediate], key: 'down' },
  };
}

/** The layer's LayerNorms: one (Falcon-7B), or ln_attn and ln_mlp (new_decoder_architecture). */
function falconNorms(c: ModelConfig): string[] {
  return c.falcon!.twoNorms ? ['ln_attn', 'ln_mlp'] : ['input_layernorm'];
}

export function falconTensors(c: ModelConfig): Map<string, number[]> {
  const m = new Map<string, number[]>();
  const H = c.hidden;
  m.set('transformer.word_embeddings.weight', [c.vocab, H]);
  if (!c.tieEmbeddings) m.set('lm_head.weight', [c.vocab, H]);
  const norm = (p: string) => {
    m.set(`${p}.weight`, [H]);
    m.set(`${p}.bias`, [H]);
  };
  norm('transformer.ln_f');
  for (let l = 0; l < c.layers; l++) {
    const p = `transformer.h.${l}`;
    for (const n of falconNorms(c)) norm(`${p}.${n}`);
    for (const { path, shape } of Object.values(falconLinears(c))) {
      m.set(`${p}.${path}.weight`, shape);
      if (c.bias.qkv) m.set(`${p}.${path}.bias`, [shape[0]]);
    }
  }
  return m;
}

export function assembleFalcon(
  c: ModelConfig,
  { vec, mat, lin }: Parts,
): { weights: FalconWeights; linears: LoraLinear[] } {
  const linears: LoraLinear[] = [];
  const norm = (p: string) => ({ w: vec(`${p}.weight`), b: vec(`${p}.bias`) });
  const layers: FalconLayerWeights[] = [];
  for (let l = 0; l < c.layers; l++) {
    const p = `transformer.h.${l}`;
    const [ln, lnMlp] = falconNorms(c).map((n) => norm(`${p}.${n}`));
    const layer = { ln, lnMlp: lnMlp ?? null } as FalconLayerWeights;
    for (const { path, key } of Object.values(falconLinears(c))) {
      layer[key] = lin(`${p}.${path}`);
      linears.push(layer[key]);
    }
    layers.push(layer);
  }
  const embed = mat('transformer.word_embeddings.weight');
  const head = c.tieEmbeddings ? embed : mat('lm_head.weight');
  return { weights: { embed, layers, lnF: norm('transformer.ln_f'), head }, linears };
}
