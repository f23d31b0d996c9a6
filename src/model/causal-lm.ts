// A decoder-only causal language model on WebGPU, whatever its layers: embedding, the stack
// of decoder layers, the final norm, the output head and the loss — and the parts every
// architecture shares: gradient checkpointing, the chunked loss, KV-cache decoding. Each
// family (./llama, ./gemma, ./falcon) gives its layer's forward and backward, side by side, and
// its final norm; what differs by layer (its RoPE, its window) is read from the config here.
//
// Training keeps only each layer's input; backward recomputes the layer's forward from it
// (gradient checkpointing, TRL's default), then runs its backward and frees everything but the
// gradient. The last layer is the exception: its backward follows its forward at once, so it
// keeps what it made (no more memory at the peak, one layer's forward saved). Without
// checkpointing every layer keeps what its backward needs from the one forward: the same values
// (the recompute is bit for bit the forward), a forward's time saved, more memory.
//
// Memory is freed by scopes (gpu.scope): a layer's forward keeps only its output and, when asked,
// its saved state; its backward only its input gradient; the saved state goes with the scope of
// that layer's backward. No family lists what to free.
import type { Gpu, Tensor } from '../gpu/runtime';
import { crossEntropy, halfLinear, halfLinearBackwardInput } from '../ops/head';
import type { HalfMatrix } from '../ops/half-matrix';
import type { RopeTables } from '../ops/rope';
import { embed } from '../ops/rows';
import { softcap } from '../ops/softcap';
import type { ModelConfig } from './config';
import { lossChunkRows } from './estimate';

/** One packed micro-batch: token ids, labels (−100 ignored), RoPE positions, attention starts. */
export interface Batch {
  ids: Tensor; // u32 [T]
  labels: Tensor; // i32 [T]
  positions: Tensor; // u32 [T]
  start: Tensor; // u32 [T]: the first token each token may attend to
  startSliding?: Tensor; // u32 [T]: the same in the local (sliding-window) layers of Gemma 2 and 3
}

/** What the decoder layers read of a batch (decoding has no labels). */
export type Placement = Pick<Batch, 'positions' | 'start' | 'startSliding'>;

/** Keys and values of the tokens so far, per layer, for decoding one token at a time. */
export interface KvCache {
  k: Tensor[]; // [capacity, Hkv, d] per layer
  v: Tensor[];
  length: number;
  capacity: number;
}

/** What every architecture's weights have: the embedding and the output head. */
export interface BaseWeights {
  embed: HalfMatrix; // [V, H]
  head: HalfMatrix; // [V, H]; the embedding itself when tied
}

export interface LayerOptions {
  dropout: boolean;
  save: boolean;
  step: number;
  cache?: KvCache;
}

export abstract class CausalLM<W extends BaseWeights = BaseWeights, S = unknown> {
  constructor(
    readonly gpu: Gpu,
    readonly config: ModelConfig,
    readonly weights: W,
    readonly rope: RopeTables,
    /** Gemma 3's local layers rotate by their own base (rope_local_base_freq). */
    readonly ropeLocal: RopeTables | null = null,
  ) {}

  /** The RoPE tables the model owns (released with it). */
  ropeTensors(): Tensor[] {
    return [this.rope, this.ropeLocal].flatMap((t) => (t ? [t.cos, t.sin] : []));
  }

  /** The RoPE layer l rotates q and k by: none in SmolLM3's NoPE layers, the local one in Gemma 3's. */
  protected ropeOf(l: number): RopeTables | null {
    const c = this.config;
    if (c.noRope[l]) return null;
    return c.localLayers[l] && this.ropeLocal ? this.ropeLocal : this.rope;
  }

  /** The first key each token may see in layer l: local layers see only their window. */
  protected startOf(l: number, b: Placement): Tensor {
    if (!this.config.localLayers[l]) return b.start;
    if (!b.startSliding)
      throw new Error('the batch lacks startSliding (build it with hostBatch and config.localWindow)');
    return b.startSliding;
  }

  /**
   * The seed of one module's dropout mask in one layer at one step: the same in the recompute.
   * (layer, module) is packed as layer · 64 + module, so no two modules of any family (Llama's
   * layer has nine) share a seed.
   */
  protected seed(step: number, layer: number, module: number): number {
    return (Math.imul(step + 1, 0x9e3779b1) ^ Math.imul(layer * 64 + module + 1, 0x85ebca6b)) >>> 0;
  }

  // forward: x → the layer's output; `save` keeps what its backward needs (the recompute)
  protected abstract layerForward(
    l: number,
    x: Tensor,
    b: Placement,
    o: LayerOptions,
  ): { out: Tensor; saved: S | null };
  // backward: dOut = dL/d(layer output) → dL/d(layer input); LoRA gradients accumulate
  protected abstract layerBackward(l: number, x: Tensor, saved: S, dOut: Tensor, b: Placement, step: number): Tensor;
  protected abstract finalNorm(x: Tensor): Tensor;
  protected abstract finalNormBackward(x: Tensor, dy: Tensor): Tensor;
  /** Every GPU buffer the weights own (each once). */
  abstract weightTensors(): Tensor[];

  /**
   * The keys and values a layer attends over: its own, or with a KV cache (decoding) this
   * step's appended to the cache and all of it.
   */
  protected keysValues(l: number, k: Tensor, v: Tensor, cache?: KvCache): { keys: Tensor; values: Tensor } {
    if (!cache) return { keys: k, values: v };
    const { gpu, config: c } = this;
    const kv = c.kvHeads * c.headDim,
      past = cache.length,
      T = k.shape[0];
    gpu.copy(k, cache.k[l], { to: past * kv });
    gpu.copy(v, cache.v[l], { to: past * kv });
    return {
      keys: gpu.view(cache.k[l], 0, [past + T, c.kvHeads, c.headDim]),
      values: gpu.view(cache.v[l], 0, [past + T, c.kvHeads, c.headDim]),
    };
  }

  private get lossChunkRows(): number {
    return lossChunkRows(this.config.vocab, this.gpu.maxBinding);
  }

  /** Gemma 2 soft-caps its final logits (0: no cap). */
  private get finalSoftcap(): number {
    return this.config.finalSoftcap ?? 0;
  }

  private capLogits(z: Tensor): Tensor {
    return this.finalSoftcap ? softcap(this.gpu, z, { cap: this.finalSoftcap }) : z;
  }

  newCache(capacity: number): KvCache {
    const { gpu, config: c } = this;
    if (capacity > this.rope.positions)
      throw new Error(`a cache of ${capacity} tokens is longer than the ${this.rope.positions} positions prepared`);
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
    return this.gpu.scope(() => this.decodeIn(ids, cache));
  }

  private decodeIn(ids: ArrayLike<number>, cache: KvCache): Tensor {
    const { gpu, config: c } = this;
    const T = ids.length;
    if (cache.length + T > cache.capacity)
      throw new Error(`the cache holds ${cache.capacity} tokens; ${cache.length + T} asked`);
    for (const id of Array.from(ids))
      if (!(id >= 0 && id < c.vocab)) throw new Error(`token id ${id} is outside the vocabulary of ${c.vocab}`);
    const tokens = gpu.tensor([T], 'u32', Uint32Array.from(ids));
    const b: Placement = {
      positions: gpu.tensor(
        [T],
        'u32',
        Uint32Array.from({ length: T }, (_, i) => cache.length + i),
      ),
      // keys are cache positions; a sliding window (Mistral, Phi-3) hides the older ones
      start: gpu.tensor(
        [T],
        'u32',
        Uint32Array.from({ length: T }, (_, i) =>
          c.slidingWindow ? Math.max(0, cache.length + i - c.slidingWindow + 1) : 0,
        ),
      ),
    };
    const layerWindow = c.localWindow;
    if (layerWindow)
      b.startSliding = gpu.tensor(
        [T],
        'u32',
        Uint32Array.from({ length: T }, (_, i) => Math.max(0, cache.length + i - layerWindow + 1)),
      );
    let x = embed(gpu, this.weights.embed, tokens, { scale: this.config.embedScale });
    for (let l = 0; l < c.layers; l++) {
      const { out } = this.forwardLayer(l, x, b, { dropout: false, save: false, step: 0, cache });
      x.release();
      x = out;
    }
    cache.length += T;
    const last = gpu.tensor([1, c.hidden]);
    gpu.copy(x, last, { from: (T - 1) * c.hidden, count: c.hidden });
    return this.capLogits(halfLinear(gpu, this.finalNorm(last), this.weights.head));
  }

  /** Logits [T, V] for a batch, adapter applied (inference; no gradients). */
  logits(b: Batch): Tensor {
    return this.gpu.scope(() =>
      this.capLogits(halfLinear(this.gpu, this.finalHidden(b, false, 0).x, this.weights.head)),
    );
  }

  /**
   * Per-token losses [T] of a batch (0 where the label is −100): evaluation, no gradients.
   * `stats` [T, 2], when given, gets each token's entropy and hit (see crossEntropy).
   */
  tokenLosses(b: Batch, stats?: Tensor): Tensor {
    return this.gpu.scope(() => this.tokenLossesIn(b, stats));
  }

  private tokenLossesIn(b: Batch, stats?: Tensor): Tensor {
    const { gpu, config: c } = this;
    const T = b.ids.numel;
    const xf = this.finalHidden(b, false, 0).x;
    const loss = gpu.tensor([T]);
    const chunk = this.lossChunkRows;
    for (let r0 = 0; r0 < T; r0 += chunk) {
      const rows = Math.min(chunk, T - r0);
      const z = halfLinear(gpu, gpu.view(xf, r0 * c.hidden, [rows, c.hidden]), this.weights.head);
      // z becomes dL/dz, unused here
      crossEntropy(gpu, z, b.labels, {
        rowOffset: r0,
        loss: gpu.view(loss, r0, [rows]),
        stats: stats && gpu.view(stats, 2 * r0, [rows, 2]),
        softcap: this.finalSoftcap,
      });
      z.release();
    }
    return loss;
  }

  /** A layer's forward in a scope of its own: what it does not return is freed at once. */
  private forwardLayer(l: number, x: Tensor, b: Placement, o: LayerOptions): { out: Tensor; saved: S | null } {
    return this.gpu.scope(() => this.layerForward(l, x, b, o));
  }

  /**
   * Through the layers: each layer's input kept when training, and what its backward needs
   * for the layers from `keepFrom` on (the others recompute it in the backward).
   */
  private finalHidden(
    b: Batch,
    train: boolean,
    step: number,
    keepFrom = Number.POSITIVE_INFINITY,
  ): { x: Tensor; inputs: Tensor[]; saved: (S | null)[] } {
    const { gpu, config: c } = this;
    const T = b.ids.numel;
    for (const t of [b.labels, b.positions, b.start])
      if (t.numel !== T) throw new Error('batch: ids, labels, positions and start must have one entry per token');
    let x = embed(gpu, this.weights.embed, b.ids, { scale: this.config.embedScale });
    const inputs: Tensor[] = [];
    const saved: (S | null)[] = [];
    for (let l = 0; l < c.layers; l++) {
      const keep = l >= keepFrom;
      const r = this.forwardLayer(l, x, b, { dropout: train, save: keep, step });
      saved.push(keep ? (r.saved as S) : null);
      const out = r.out;
      if (train) inputs.push(x);
      else x.release();
      x = out;
    }
    if (train) inputs.push(x);
    const xf = this.finalNorm(x);
    if (!train) x.release();
    return { x: xf, inputs, saved };
  }

  /**
   * Forward and backward over one micro-batch: LoRA gradients accumulate into their flat
   * buffer (zero it at the start of each optimizer step). `scale` is 1 / (tokens counted in
   * the whole optimizer step). `recompute` false keeps every layer's intermediates instead of
   * recomputing them (gradient_checkpointing false). Returns the per-token losses [T] (0 where ignored);
   * `stats` [T, 2], when given, gets each token's entropy and hit (see crossEntropy).
   */
  forwardBackward(b: Batch, scale: number, step: number, o: { recompute?: boolean; stats?: Tensor } = {}): Tensor {
    return this.gpu.scope(() => this.forwardBackwardIn(b, scale, step, o.recompute ?? true, o.stats));
  }

  private forwardBackwardIn(b: Batch, scale: number, step: number, recompute: boolean, stats?: Tensor): Tensor {
    const { gpu, config: c } = this;
    const T = b.ids.numel;
    // With checkpointing, the last layer keeps its intermediates all the same: its backward
    // comes next, so recomputing them would only repeat its forward at the same peak memory.
    const keepFrom = recompute ? c.layers - 1 : 0;
    const { x: xf, inputs, saved } = this.finalHidden(b, true, step, keepFrom);
    // loss and dL/d(final hidden), a chunk of rows at a time
    const loss = gpu.tensor([T]);
    const dxf = gpu.tensor([T, c.hidden]);
    const chunk = this.lossChunkRows;
    for (let r0 = 0; r0 < T; r0 += chunk) {
      const rows = Math.min(chunk, T - r0);
      const xc = gpu.view(xf, r0 * c.hidden, [rows, c.hidden]);
      const z = halfLinear(gpu, xc, this.weights.head);
      const softcap = this.finalSoftcap;
      const statsView = stats && gpu.view(stats, 2 * r0, [rows, 2]);
      crossEntropy(gpu, z, b.labels, {
        scale,
        rowOffset: r0,
        loss: gpu.view(loss, r0, [rows]),
        stats: statsView,
        softcap,
      });
      halfLinearBackwardInput(gpu, z, this.weights.head, { dx: gpu.view(dxf, r0 * c.hidden, [rows, c.hidden]) });
      z.release();
    }
    xf.release();
    let dx = this.finalNormBackward(inputs[c.layers], dxf);
    dxf.release();
    inputs[c.layers].release();
    for (let l = c.layers - 1; l >= 0; l--) {
      // the layer's saved state (recomputed, or kept from the forward) is freed with this scope
      const dIn = gpu.scope(() => {
        let s = saved[l];
        if (s) gpu.adopt(s);
        else s = this.forwardLayer(l, inputs[l], b, { dropout: true, save: true, step }).saved as S;
        return gpu.scope(() => this.layerBackward(l, inputs[l], s, dx, b, step));
      });
      dx.release();
      inputs[l].release();
      dx = dIn;
    }
    return loss;
  }
}
