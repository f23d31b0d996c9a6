// The Gemma family: Gemma 2 and Gemma 3 ((1 + w) norms around both blocks, GeGLU, scaled embeddings).
// What the rest of the tool reads of it without running it; the network itself is ./layer.ts.
import type { Family } from '../family';
import { assembleGemma, gemmaLinears, gemmaTensors, renameGemma } from './checkpoint';
import { parseGemmaConfig } from './config';
import type { GemmaWeights } from './layer';

export const gemmaFamily: Family<GemmaWeights> = {
  name: 'gemma',
  configs: { gemma2: parseGemmaConfig, gemma3_text: parseGemmaConfig, gemma3: parseGemmaConfig },
  linears: gemmaLinears,
  tensors: gemmaTensors,
  rename: renameGemma,
  assemble: assembleGemma,
};
