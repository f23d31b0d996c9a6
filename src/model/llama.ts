// The Llama family (llama, mistral, qwen2) on WebGPU: the whole network in one file, forward
// and backward side by side, with gradients for the LoRA weights only.
//
//   x = embed(ids)
//   per layer:  a = rmsnorm(x)                      x: [T, H]
//               q, k, v = a Wqᵀ, a Wkᵀ, a Wvᵀ       (+ Qwen2's biases, + LoRA)
//               q, k = rope(q), rope(k)             q: [T, Hq, d], k, v: [T, Hkv, d]
//               x = x + attention(q, k, v) Woᵀ
//               m = rmsnorm(x)
//               x = x + (silu(m Wgᵀ) ⊙ m Wuᵀ) Wdᵀ
//   logits = rmsnorm(x) Wheadᵀ;  loss = cross-entropy, a chunk of rows at a time
//
// Training keeps only each layer's input; backward recomputes the layer's forward from it
// (gradient checkpointing), then runs its backward and frees everything but the gradient.
import type { Gpu, Tensor } from '../gpu/runtime';
import { attentionBackward, attentionForward } from '../ops/attention';
import { crossEntropy, halfLinear, halfLinearBackwardInput, type HalfMatrix } from '../ops/head';
import type { LoraSaved } from '../ops/lora';
import { swigluBackward, swigluForward } from '../ops/mlp';
import { rmsnormBackward, rmsnormForward, type HalfVector } from '../ops/norm';
import { ropeBackward, ropeForward, type RopeTables } from '../ops/rope';
import { embed } from '../ops/rows';
import type { ModelConfig } from './config';
import { releaseLoraSaved, type LoraLinear } from './lora-linear';

export interface LayerWeights {
  inputNorm: HalfVector;
  postNorm: HalfVector;
  q: LoraLinear;
  k: LoraLinear;
  v: LoraLinear;
  o: LoraLinear;
  gate: LoraLinear;
  up: LoraLinear;
  down: LoraLinear;
}

export interface LlamaWeights {
  embed: HalfMatrix; // [V, H]
  layers: LayerWeights[];
  norm: HalfVector;
  head: HalfMatrix; // [V, H]; the embedding itself when tied
}

/** One packed micro-batch: token ids, labels (−100 ignored), RoPE positions, attention starts. */
export interface Batch {
  ids: Tensor; // u32 [T]
  labels: Tensor; // i32 [T]
  positions: Tensor; // u32 [T]
  start: Tensor; // u32 [T]: the first token each token may attend to
}

/** What the decoder layers read of a batch (decoding has no labels). */
type Placement = Pick<Batch, 'positions' | 'start'>;

const MODULES = ['q', 'k', 'v', 'o', 'gate', 'up', 'down'] as const;
type Module = (typeof MODULES)[number];

/** Keys and values of the tokens so far, per layer, for decoding one token at a time. */
export interface KvCache {
  k: Tensor[]; // [capacity, Hkv, d] per layer
  v: Tensor[];
  length: number;
  capacity: number;
}

/** Rows of logits made at once: a multiple of 64 keeps every chunk's views 256-byte aligned. */
const LOSS_CHUNK_ROWS = 256;

interface LayerSaved {
  a: Tensor; q: Tensor; k: Tensor; v: Tensor; P: Tensor; attn: Tensor;
  x2: Tensor; m: Tensor; g: Tensor; u: Tensor; h: Tensor;
  lora: Partial<Record<Module, LoraSaved | null>>;
}

export class LlamaModel {
  constructor(
    readonly gpu: Gpu,
    readonly config: ModelConfig,
    readonly weights: LlamaWeights,
    readonly rope: RopeTables,
  ) {}

  /** The seed of one module's dropout mask in one layer at one step: the same in the recompute. */
  private seed(step: number, layer: number, module: Module): number {
    return (Math.imul(step + 1, 0x9e3779b1) ^ Math.imul(layer * 8 + MODULES.indexOf(module) + 1, 0x85ebca6b)) >>> 0;
  }

  // ---- one decoder layer: forward (optionally saving for backward) and backward -----------

  // forward: x → x + attention block → + MLP block. `dropout` for training; `save` keeps the
  // intermediates for backward (the recompute), otherwise they are freed at once.
  private layerForward(
    l: number, x: Tensor, b: Placement, o: { dropout: boolean; save: boolean; step: number; cache?: KvCache },
  ): { out: Tensor; saved: LayerSaved | null } {
    const { gpu, config: c } = this;
    const w = this.weights.layers[l];
    const T = x.shape[0];
    const lora: LayerSaved['lora'] = {};
    const lin = (m: Module, input: Tensor, opt: { y?: Tensor; accumulate?: boolean } = {}) => {
      const r = w[m].forward(gpu, input, { ...opt, dropout: o.dropout, save: o.save, seed: this.seed(o.step, l, m) });
      lora[m] = r.saved;
      return r.y;
    };
    const a = rmsnormForward(gpu, x, w.inputNorm, c.norm.eps);
    const q = gpu.view(lin('q', a), 0, [T, c.heads, c.headDim]);
    const k = gpu.view(lin('k', a), 0, [T, c.kvHeads, c.headDim]);
    const v = gpu.view(lin('v', a), 0, [T, c.kvHeads, c.headDim]);
    ropeForward(gpu, q, b.positions, this.rope);
    ropeForward(gpu, k, b.positions, this.rope);
    let keys = k, values = v;
    if (o.cache) {
      // append this step's keys and values, then attend over everything cached
      const kv = c.kvHeads * c.headDim, past = o.cache.length;
      gpu.copy(k, o.cache.k[l], { to: past * kv });
      gpu.copy(v, o.cache.v[l], { to: past * kv });
      keys = gpu.view(o.cache.k[l], 0, [past + T, c.kvHeads, c.headDim]);
      values = gpu.view(o.cache.v[l], 0, [past + T, c.kvHeads, c.headDim]);
    }
    const { o: attn, P } = attentionForward(gpu, q, keys, values, b.start);
    const attn2 = gpu.view(attn, 0, [T, c.heads * c.headDim]);
    const x2 = gpu.tensor([T, c.hidden]);
    gpu.copy(x, x2);
    lin('o', attn2, { y: x2, accumulate: true });
    const m = rmsnormForward(gpu, x2, w.postNorm, c.norm.eps);
    const g = lin('gate', m);
    const u = lin('up', m);
    const h = swigluForward(gpu, g, u);
    const out = gpu.tensor([T, c.hidden]);
    gpu.copy(x2, out);
    lin('down', h, { y: out, accumulate: true });
    const saved: LayerSaved = { a, q, k, v, P, attn: attn2, x2, m, g, u, h, lora };
    if (o.save) return { out, saved };
    releaseSaved(saved, true);
    return { out, saved: null };
  }

  // backward: dOut = dL/d(layer output) → dL/d(layer input); LoRA gradients accumulate
  private layerBackward(l: number, x: Tensor, s: LayerSaved, dOut: Tensor, b: Placement, step: number): Tensor {
    const { gpu, config: c } = this;
    const w = this.weights.layers[l];
    const T = x.shape[0];
    const back = (m: Module, dy: Tensor, dx?: Tensor) =>
      w[m].backward(gpu, dy, s.lora[m] ?? null, { dx, accumulate: !!dx, seed: this.seed(step, l, m) });
    // x_out = x2 + down(swiglu(gate(m), up(m))),  m = rmsnorm(x2)
    const dh = back('down', dOut);
    const { dg, du } = swigluBackward(gpu, s.g, s.u, dh);
    const dm = back('gate', dg);
    back('up', du, dm);
    const dx2 = gpu.tensor([T, c.hidden]);
    gpu.copy(dOut, dx2);
    rmsnormBackward(gpu, s.x2, w.postNorm, dm, c.norm.eps, dx2, true);
    // x2 = x + o(attention(rope(q(a)), rope(k(a)), v(a))),  a = rmsnorm(x)
    const dAttn = back('o', dx2);
    const g = attentionBackward(gpu, s.q, s.k, s.v, s.P, gpu.view(dAttn, 0, [T, c.heads, c.headDim]));
    ropeBackward(gpu, g.dq, b.positions, this.rope);
    ropeBackward(gpu, g.dk, b.positions, this.rope);
    const da = back('q', gpu.view(g.dq, 0, [T, c.heads * c.headDim]));
    back('k', gpu.view(g.dk, 0, [T, c.kvHeads * c.headDim]), da);
    back('v', gpu.view(g.dv, 0, [T, c.kvHeads * c.headDim]), da);
    const dx = gpu.tensor([T, c.hidden]);
    gpu.copy(dx2, dx);
    rmsnormBackward(gpu, x, w.inputNorm, da, c.norm.eps, dx, true);
    for (const t of [dh, dg, du, dm, dx2, dAttn, g.dq, g.dk, g.dv, da]) t.release();
    releaseSaved(s, false); // P and the LoRA state were consumed by their backward passes
    return dx;
  }

  // ---- the whole network --------------------------------------------------------------

  newCache(capacity: number): KvCache {
    const { gpu, config: c } = this;
    if (capacity > this.rope.positions) throw new Error(`a cache of ${capacity} tokens is longer than the ${this.rope.positions} positions prepared`);
    const make = () => Array.from({ length: c.layers }, () => gpu.tensor([capacity, c.kvHeads, c.headDim]));
    return { k: make(), v: make(), length: 0, capacity };
  }

  releaseCache(cache: KvCache): void {
    for (const t of [...cache.k, ...cache.v]) t.release();
  }

  /**
   * Run new tokens (the prompt, then one token at a time) through the network, appending to
   * the cache; returns the logits of the last one, [1, V].
   */
  decode(ids: ArrayLike<number>, cache: KvCache): Tensor {
    const { gpu, config: c } = this;
    const T = ids.length;
    if (cache.length + T > cache.capacity) throw new Error(`the cache holds ${cache.capacity} tokens; ${cache.length + T} asked`);
    for (const id of Array.from(ids)) if (!(id >= 0 && id < c.vocab)) throw new Error(`token id ${id} is outside the vocabulary of ${c.vocab}`);
    const tokens = gpu.tensor([T], 'u32', Uint32Array.from(ids));
    const b: Placement = {
      positions: gpu.tensor([T], 'u32', Uint32Array.from({ length: T }, (_, i) => cache.length + i)),
      start: gpu.tensor([T], 'u32', new Uint32Array(T)),
    };
    let x = embed(gpu, this.weights.embed, tokens);
    for (let l = 0; l < c.layers; l++) {
      const { out } = this.layerForward(l, x, b, { dropout: false, save: false, step: 0, cache });
      x.release();
      x = out;
    }
    cache.length += T;
    const last = gpu.tensor([1, c.hidden]);
    gpu.copy(x, last, { from: (T - 1) * c.hidden, count: c.hidden });
    const xf = rmsnormForward(gpu, last, this.weights.norm, c.norm.eps);
    const z = halfLinear(gpu, xf, this.weights.head);
    for (const t of [x, last, xf, tokens, b.positions, b.start]) t.release();
    return z;
  }

  /** Logits [T, V] for a batch, adapter applied (inference; no gradients). */
  logits(b: Batch): Tensor {
    const x = this.finalHidden(b, false, 0).x;
    const z = halfLinear(this.gpu, x, this.weights.head);
    x.release();
    return z;
  }

  /** Per-token losses [T] of a batch (0 where the label is −100): evaluation, no gradients. */
  tokenLosses(b: Batch): Tensor {
    const { gpu, config: c } = this;
    const T = b.ids.numel;
    const xf = this.finalHidden(b, false, 0).x;
    const loss = gpu.tensor([T]);
    for (let r0 = 0; r0 < T; r0 += LOSS_CHUNK_ROWS) {
      const rows = Math.min(LOSS_CHUNK_ROWS, T - r0);
      const z = halfLinear(gpu, gpu.view(xf, r0 * c.hidden, [rows, c.hidden]), this.weights.head);
      crossEntropy(gpu, z, b.labels, 1, r0, gpu.view(loss, r0, [rows])); // z becomes dL/dz, unused
      z.release();
    }
    xf.release();
    return loss;
  }

  private finalHidden(b: Batch, train: boolean, step: number): { x: Tensor; inputs: Tensor[] } {
    const { gpu, config: c } = this;
    const T = b.ids.numel;
    for (const t of [b.labels, b.positions, b.start]) if (t.numel !== T) throw new Error('batch: ids, labels, positions and start must have one entry per token');
    let x = embed(gpu, this.weights.embed, b.ids);
    const inputs: Tensor[] = [];
    for (let l = 0; l < c.layers; l++) {
      const { out } = this.layerForward(l, x, b, { dropout: train, save: false, step });
      if (train) inputs.push(x);
      else x.release();
      x = out;
    }
    if (train) inputs.push(x);
    const xf = rmsnormForward(gpu, x, this.weights.norm, c.norm.eps);
    if (!train) x.release();
    return { x: xf, inputs };
  }

  /**
   * Forward and backward over one micro-batch: LoRA gradients accumulate into their flat
   * buffer (zero it at the start of each optimizer step). `scale` is 1 / (tokens counted in
   * the whole optimizer step). Returns the per-token losses [T] (0 where ignored).
   */
  forwardBackward(b: Batch, scale: number, step: number): Tensor {
    const { gpu, config: c } = this;
    const T = b.ids.numel;
    const { x: xf, inputs } = this.finalHidden(b, true, step);
    // loss and dL/d(final hidden), a chunk of rows at a time
    const loss = gpu.tensor([T]);
    const dxf = gpu.tensor([T, c.hidden]);
    for (let r0 = 0; r0 < T; r0 += LOSS_CHUNK_ROWS) {
      const rows = Math.min(LOSS_CHUNK_ROWS, T - r0);
      const xc = gpu.view(xf, r0 * c.hidden, [rows, c.hidden]);
      const z = halfLinear(gpu, xc, this.weights.head);
      crossEntropy(gpu, z, b.labels, scale, r0, gpu.view(loss, r0, [rows]));
      halfLinearBackwardInput(gpu, z, this.weights.head, gpu.view(dxf, r0 * c.hidden, [rows, c.hidden]));
      z.release();
    }
    xf.release();
    let dx = rmsnormBackward(gpu, inputs[c.layers], this.weights.norm, dxf, c.norm.eps);
    dxf.release();
    inputs[c.layers].release();
    for (let l = c.layers - 1; l >= 0; l--) {
      const { out, saved } = this.layerForward(l, inputs[l], b, { dropout: true, save: true, step }); // recompute
      out.release();
      const dIn = this.layerBackward(l, inputs[l], saved!, dx, b, step);
      dx.release();
      inputs[l].release();
      dx = dIn;
    }
    dx.release();
    return loss;
  }
}

function releaseSaved(s: LayerSaved, all: boolean): void {
  // q, k, v, attn are views of the projections' outputs: release their parents.
  for (const t of [s.a, s.q.parent!, s.k.parent!, s.v.parent!, s.attn.parent!, s.x2, s.m, s.g, s.u, s.h]) t.release();
  if (!all) return;
  s.P.release();
  for (const saved of Object.values(s.lora)) if (saved) releaseLoraSaved(saved);
}
