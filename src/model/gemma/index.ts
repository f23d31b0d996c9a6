// The Gemma family: Gemma 2 and Gemma 3 ((1 + w) norms around both blocks, GeGLU, scaled embeddings).
import type { Family } from '../family';
import { assembleGemma, gemmaLinears, gemmaTensors, renameGemma } from './checkpoint';
import { parseGemmaConfig } from './config';
import { GemmaModel, type GemmaWeights } from './layer';

export { GemmaModel, type GemmaLayerWeights, type GemmaWeights } from './layer';

export const gemmaFamily: Family<GemmaWeights> = {
  name: 'gemma',
  configs: { gemma2: parseGemmaConfig, gemma3_text: parseGemmaConfig, gemma3: parseGemmaConfig },
  linears: gemmaLinears,
  tensors: gemmaTensors,
  rename: renameGemma,
  assemble: assembleGemma,
  build: (gpu, c, weights, rope, ropeLocal) => new GemmaModel(gpu, c, weights, rope, ropeLocal),
};
