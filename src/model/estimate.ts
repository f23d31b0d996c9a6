// What a model needs, from its config alone, before anything is downloaded: the bytes the store
// keeps (NF4 linears, 16-bit rest) and the GPU memory to train at a sequence length and LoRA
// rank. Estimates, within a few percent of what the runtime allocates; the page shows them next
// to the device's limits.
import type { ModelConfig } from './config';
import { familyOf } from './registry';

/** WebGPU's default maxStorageBufferBindingSize: what a device offers at the least. */
const DEFAULT_MAX_BINDING = 2 ** 27;

export interface MemoryEstimate {
  /** Frozen weights as the GPU holds them (the store holds the same). */
  weights: number;
  /** LoRA parameters, gradients and AdamW's two moments, f32. */
  adapter: number;
  /** Activations of one micro-batch with per-layer recomputation. */
  activations: number;
  total: number;
  /**
   * The largest buffer that cannot be split: it must fit the device's binding limit. 16-bit
   * tables split into row blocks and the logits into fewer rows, so this is the largest of an
   * NF4 weight, the attention scores of one layer, one activation and 64 rows of logits.
   */
  largestBuffer: number;
}

/** [out, in] of every linear module of one layer, by PEFT's module name: the family's own list. */
export function moduleShapes(c: ModelConfig): Record<string, [number, number]> {
  return Object.fromEntries(Object.entries(familyOf(c).linears(c)).map(([m, { shape }]) => [m, shape]));
}

/**
 * Element counts of the linear weights and of the 16-bit tensors, summed over the tensors the
 * family's checkpoint holds: the list the loader checks every checkpoint against.
 */
function counts(c: ModelConfig): { linear: number; half: number } {
  let linear = 0,
    half = 0;
  const linears = Object.values(familyOf(c).linears(c)).map((m) => `.${m.path}.weight`);
  for (const [name, shape] of familyOf(c).tensors(c)) {
    const n = shape.reduce((a, b) => a * b, 1);
    if (linears.some((suffix) => name.endsWith(suffix))) linear += n;
    else half += n;
  }
  return { linear, half };
}

/** Every weight of the checkpoint, frozen ones all (the embedding once when tied). */
export function parameterCount(c: ModelConfig): number {
  const { linear, half } = counts(c);
  return linear + half;
}

/**
 * Rows of logits made at once: 256, or fewer where [rows, vocab] f32 would outgrow one binding
 * (Gemma's 256k and 262k vocabularies: 128 rows at WebGPU's default 128 MiB). A multiple of 64
 * keeps every chunk's views 256-byte aligned.
 */
export function lossChunkRows(vocab: number, maxBinding: number): number {
  const fit = Math.floor(maxBinding / (4 * vocab) / 64) * 64;
  return Math.max(64, Math.min(256, fit));
}

/** NF4: half a byte per weight and an f32 absmax per block of 64; 16-bit: two bytes. */
export function estimateStoreBytes(c: ModelConfig, load_in_4bit = true, blocksize = 64): number {
  const { linear, half } = counts(c);
  const linearBytes = load_in_4bit ? linear / 2 + (linear / blocksize) * 4 : linear * 2;
  return Math.round(linearBytes + half * 2);
}

export function estimateTrainingMemory(
  c: ModelConfig,
  o: {
    max_length: number;
    batch: number;
    r: number;
    targets: string[];
    load_in_4bit: boolean;
    maxBinding?: number;
    /** false: every layer keeps its intermediates until its backward (default true). */
    gradient_checkpointing?: boolean;
    /** With dropout, each adapted module keeps its own dropped input for its backward (default 0.05). */
    lora_dropout?: number;
  },
): MemoryEstimate {
  const T = o.max_length * o.batch;
  const qd = c.heads * c.headDim,
    kvd = c.kvHeads * c.headDim;
  const dims = moduleShapes(c);
  const loraParams = o.targets.reduce((n, t) => n + (dims[t] ? o.r * (dims[t][0] + dims[t][1]) : 0), 0) * c.layers;
  const f = 4;
  // per-layer checkpoints, one layer's saved intermediates (every layer's without gradient
  // checkpointing), about as much again for its backward, and one chunk of logits. Attention is
  // fused: it keeps a log-sum-exp per query and head, never the [heads, T, T] scores.
  const checkpoints = (c.layers + 1) * T * c.hidden * f;
  const layer = f * T * (4 * c.hidden + qd + 2 * kvd + 3 * c.intermediate + c.heads);
  // one chunk of logits rows (fewer rows for a large vocabulary: see lossChunkRows), and the
  // final hidden state with its gradient; WebGPU's default binding limit unless the device's is given
  const logits = f * (lossChunkRows(c.vocab, o.maxBinding ?? DEFAULT_MAX_BINDING) * c.vocab + 2 * T * c.hidden);
  const kept = o.gradient_checkpointing === false ? c.layers + 1 : 2;
  // LoRA keeps x·Aᵀ per adapted module, and with dropout the dropped input too: in one layer
  // with checkpointing (its backward's temporaries are counted above), in every layer without
  const dropped = (o.lora_dropout ?? 0.05) > 0;
  const adapted = o.targets.filter((t) => dims[t]);
  const loraSaved = f * T * adapted.reduce((n, t) => n + o.r + (dropped ? dims[t][1] : 0), 0);
  const activations =
    checkpoints + kept * layer + (o.gradient_checkpointing === false ? c.layers : 1) * loraSaved + logits;
  const weights = estimateStoreBytes(c, o.load_in_4bit);
  const adapter = loraParams * f * 4;
  const widest = Math.max(...Object.values(dims).map(([out, i]) => Math.max(i, out)));
  const largestNF4 = o.load_in_4bit ? Math.max(...Object.values(dims).map(([out, i]) => i * out)) / 2 : 0;
  const largestBuffer = Math.max(largestNF4, f * T * widest, f * 64 * c.vocab);
  return { weights, adapter, activations, total: weights + adapter + activations, largestBuffer };
}

/**
 * The most bytes an adapter_model.safetensors can hold for this model at rank `r` on these
 * modules (all-linear: every one): f32 A [r, in] and B [out, r] per adapted layer, plus its
 * header (a few hundred bytes of JSON per tensor). An adapter file or zip entry declaring more is
 * refused before it is read or inflated.
 */
export function adapterWeightsBound(c: ModelConfig, r: number, targets: string[] | 'all-linear'): number {
  const dims = moduleShapes(c);
  const names = targets === 'all-linear' ? Object.keys(dims) : targets.filter((t) => dims[t]);
  const values = names.reduce((n, t) => n + r * (dims[t][0] + dims[t][1]), 0) * c.layers;
  return 4 * values + 8 + 65536 + 1024 * 2 * names.length * c.layers;
}

/** Bytes for people: MB below a gigabyte, GB above (decimal units, as the Hub shows sizes). */
export function formatBytes(n: number): string {
  return n >= 1e9 ? `${(n / 1e9).toFixed(2)} GB` : `${(n / 1e6).toFixed(1)} MB`;
}
