// The Llama family: Llama, Mistral, Qwen2, Qwen3, Phi-3 and SmolLM3 (one layer, a few flags).
import type { Family } from '../family';
import { assembleLlama, llamaLinears, llamaTensors } from './checkpoint';
import { parseLlamaConfig } from './config';
import { LlamaModel, type LlamaWeights } from './layer';

export { LlamaModel, type LayerWeights, type LlamaWeights } from './layer';

export const llamaFamily: Family<LlamaWeights> = {
  name: 'llama',
  configs: {
    llama: parseLlamaConfig, mistral: parseLlamaConfig, qwen2: parseLlamaConfig, qwen3: parseLlamaConfig,
    phi3: parseLlamaConfig, smollm3: parseLlamaConfig,
  },
  linears: llamaLinears,
  tensors: llamaTensors,
  assemble: assembleLlama,
  build: (gpu, c, weights, rope, ropeLocal) => new LlamaModel(gpu, c, weights, rope, ropeLocal),
};
