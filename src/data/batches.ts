// Blocks to the model's batches. A micro-batch of several blocks is laid end to end as one
// sequence of tokens, with attention kept inside each sequence by `start`, so it needs no
// padding and computes exactly what a padded [B, L] batch computes. Labels are shifted here,
// inside each sequence, as transformers' causal-LM loss shifts them: token t predicts t + 1,
// and the last token of a sequence predicts nothing.
import type { Gpu } from '../gpu/runtime';
import type { Batch } from '../model/causal-lm';
import { seededRandom } from '../generate/generate';
import type { Block } from './sft';

export interface HostBatch {
  ids: Uint32Array;
  labels: Int32Array; // shifted: labels[t] is the target of position t, −100 for none
  positions: Uint32Array;
  start: Uint32Array; // index of the first token of t's sequence
  /** Gemma 2's sliding layers: the first token each token sees there (`layerWindow`). */
  startSliding?: Uint32Array;
  /** Tokens with a target: the loss's weight. */
  counted: number;
}

/**
 * `slidingWindow` (Mistral, Phi-3): a token sees only the last `window` tokens of its
 * sequence, itself included, as transformers masks them.
 */
export function hostBatch(
  blocks: Block[],
  slidingWindow: number | null = null,
  layerWindow: number | null = null,
): HostBatch {
  const T = blocks.reduce((n, b) => n + b.input_ids.length, 0);
  const h: HostBatch = {
    ids: new Uint32Array(T),
    labels: new Int32Array(T),
    positions: new Uint32Array(T),
    start: new Uint32Array(T),
    counted: 0,
  };
  if (layerWindow) h.startSliding = new Uint32Array(T);
  let at = 0;
  for (const b of blocks) {
    const L = b.input_ids.length;
    let seqStart = at;
    for (let t = 0; t < L; t++) {
      if (b.position_ids[t] === 0) seqStart = at + t;
      const nextInSequence = t + 1 < L && b.position_ids[t + 1] !== 0;
      const label = nextInSequence ? b.labels[t + 1] : -100;
      h.ids[at + t] = b.input_ids[t];
      h.labels[at + t] = label;
      h.positions[at + t] = b.position_ids[t];
      h.start[at + t] = slidingWindow ? Math.max(seqStart, at + t - slidingWindow + 1) : seqStart;
      if (h.startSliding) h.startSliding[at + t] = Math.max(seqStart, at + t - layerWindow! + 1);
      if (label !== -100) h.counted++;
    }
    at += L;
  }
  return h;
}

export function uploadBatch(gpu: Gpu, h: HostBatch): Batch {
  const T = h.ids.length;
  return {
    ids: gpu.tensor([T], 'u32', h.ids),
    labels: gpu.tensor([T], 'i32', h.labels),
    positions: gpu.tensor([T], 'u32', h.positions),
    start: gpu.tensor([T], 'u32', h.start),
    ...(h.startSliding ? { startSliding: gpu.tensor([T], 'u32', h.startSliding) } : {}),
  };
}

export function releaseBatch(b: Batch): void {
  for (const t of [b.ids, b.labels, b.positions, b.start, b.startSliding]) t?.release();
}

/** The blocks' order in one epoch: shuffled by (seed, epoch), as a seeded sampler does. */
export function epochOrder(n: number, epoch: number, seed: number, shuffle: boolean): number[] {
  const order = Array.from({ length: n }, (_, i) => i);
  if (!shuffle) return order;
  const random = seededRandom((Math.imul(seed, 0x9e3779b1) ^ (epoch + 1)) >>> 0);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  return order;
}

/** Micro-batches of `size` blocks in an epoch's order; the last may be smaller. */
export function microBatches(blocks: Block[], order: number[], size: number): Block[][] {
  const out: Block[][] = [];
  for (let i = 0; i < order.length; i += size) out.push(order.slice(i, i + size).map((k) => blocks[k]));
  return out;
}
