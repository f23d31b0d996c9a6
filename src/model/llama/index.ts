// The Llama family: Llama, Mistral, Qwen2, Qwen3, Phi-3 and SmolLM3 (one layer, a few flags).
// What the rest of the tool reads of it without running it; the network itself is ./layer.ts.
import type { Family } from '../family';
import { assembleLlama, llamaLinears, llamaTensors } from './checkpoint';
import { parseLlamaConfig } from './config';
import type { LlamaWeights } from './layer';

export const llamaFamily: Family<LlamaWeights> = {
  name: 'llama',
  configs: {
    llama: parseLlamaConfig,
    mistral: parseLlamaConfig,
    qwen2: parseLlamaConfig,
    qwen3: parseLlamaConfig,
    phi3: parseLlamaConfig,
    smollm3: parseLlamaConfig,
  },
  linears: llamaLinears,
  tensors: llamaTensors,
  assemble: assembleLlama,
};
