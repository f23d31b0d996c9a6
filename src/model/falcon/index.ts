// Falcon (tiiuae/falcon-7b, the worked example; and the new_decoder_architecture of 40B/180B).
// What the rest of the tool reads of it without running it; the network itself is ./layer.ts.
import type { Family } from '../family';
import { assembleFalcon, falconLinears, falconTensors } from './checkpoint';
import { parseFalconConfig } from './config';
import type { FalconWeights } from './layer';

export const falconFamily: Family<FalconWeights> = {
  name: 'falcon',
  configs: { falcon: parseFalconConfig },
  linears: falconLinears,
  tensors: falconTensors,
  assemble: assembleFalcon,
};
