// Falcon (tiiuae/falcon-7b, the worked example; and the new_decoder_architecture of 40B/180B).
import type { Family } from '../family';
import { assembleFalcon, falconLinears, falconTensors } from './checkpoint';
import { parseFalconConfig } from './config';
import { FalconModel, type FalconWeights } from './layer';

export { FalconModel, falconHeadMaps, type FalconLayerWeights, type FalconWeights } from './layer';

export const falconFamily: Family<FalconWeights> = {
  name: 'falcon',
  configs: { falcon: parseFalconConfig },
  linears: falconLinears,
  tensors: falconTensors,
  assemble: assembleFalcon,
  build: (gpu, c, weights, rope) => new FalconModel(gpu, c, weights, rope),
};
