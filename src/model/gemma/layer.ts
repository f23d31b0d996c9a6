// Gemma 2 and Gemma 3 on WebGPU: the decoder layer, forward and backward side by side, with
// gradients for the LoRA weights only. Llama's projections, with Gemma's differences:
//
//   per layer:  a = rmsnorm₁₊(x)                         every norm scales by (1 + w)
//               q, k, v = a Wqᵀ, a Wkᵀ, a Wvᵀ
//               q, k = rmsnorm₁₊(q), rmsnorm₁₊(k)        Gemma 3: per head, over its d values
//               q, k = rope(q), rope(k)                  Gemma 3's local layers: their own RoPE base
//               s = attention(q, k, v)                   scores · query_pre_attn_scalar^−½, soft-capped
//                                                        (Gemma 2); local layers: a sliding window
//               x2 = x + rmsnorm₁₊(s Woᵀ)                (post-attention norm)
//               m = rmsnorm₁₊(x2)                        (pre-feedforward norm)
//               out = x2 + rmsnorm₁₊((gelu_tanh(m Wgᵀ) ⊙ m Wuᵀ) Wdᵀ)   (post-feedforward norm)
//   embeddings scaled by √hidden; logits = softcap(rmsnorm₁₊(x) Wheadᵀ)   (Gemma 2's cap)
//
// The rest of the network (checkpointing, the chunked loss, decoding) is ../causal-lm.ts.
import type { Tensor } from '../../gpu/runtime';
import { attentionBackward, attentionForward, type AttentionOptions } from '../../ops/attention';
import type { LoraSaved } from '../../ops/lora';
import { swigluBackward, swigluForward } from '../../ops/mlp';
import { rmsnormBackward, rmsnormForward, type HalfVector } from '../../ops/norm';
import { halfBuffers } from '../../ops/half-matrix';
import { ropeBackward, ropeForward } from '../../ops/rope';
import { CausalLM, type BaseWeights, type LayerOptions, type Placement } from '../causal-lm';
import type { LoraLinear } from '../lora-linear';

export interface GemmaLayerWeights {
  inputNorm: HalfVector;
  postAttnNorm: HalfVector;
  preFfNorm: HalfVector;
  postFfNorm: HalfVector;
  /** Gemma 3's q_norm and k_norm: [head_dim] each, shared by the heads. */
  qNorm?: HalfVector;
  kNorm?: HalfVector;
  q: LoraLinear;
  k: LoraLinear;
  v: LoraLinear;
  o: LoraLinear;
  gate: LoraLinear;
  up: LoraLinear;
  down: LoraLinear;
}

export interface GemmaWeights extends BaseWeights {
  layers: GemmaLayerWeights[];
  norm: HalfVector;
}

const MODULES = ['q', 'k', 'v', 'o', 'gate', 'up', 'down'] as const;
type Module = (typeof MODULES)[number];

interface LayerSaved {
  a: Tensor;
  q: Tensor;
  k: Tensor;
  v: Tensor;
  lse: Tensor; // attention's log-sum-exp per query and head
  attn: Tensor;
  ao: Tensor;
  /** Gemma 3: q and k before their per-head norms (null without them). */
  qPre: Tensor | null;
  kPre: Tensor | null;
  x2: Tensor;
  m: Tensor;
  g: Tensor;
  u: Tensor;
  h: Tensor;
  d: Tensor;
  lora: Partial<Record<Module, LoraSaved | null>>;
}

export class GemmaModel extends CausalLM<GemmaWeights, LayerSaved> {
  /** Gemma stores its norm weights minus one; `into` adds the result to a residual. */
  private norm(x: Tensor, w: HalfVector, into?: Tensor): Tensor {
    return rmsnormForward(this.gpu, x, w, { eps: this.config.norm.eps, out: into, offset: 1, accumulate: !!into });
  }

  private normBackward(x: Tensor, w: HalfVector, dy: Tensor, dx?: Tensor): Tensor {
    return rmsnormBackward(this.gpu, x, w, dy, { eps: this.config.norm.eps, dx, accumulate: !!dx, offset: 1 });
  }

  protected finalNorm(x: Tensor): Tensor {
    return this.norm(x, this.weights.norm);
  }

  protected finalNormBackward(x: Tensor, dy: Tensor): Tensor {
    return this.normBackward(x, this.weights.norm, dy);
  }

  weightTensors(): Tensor[] {
    const w = this.weights;
    const out = new Set<Tensor>([...halfBuffers(w.embed), ...halfBuffers(w.head), w.norm.words]);
    for (const l of w.layers) {
      for (const n of [l.inputNorm, l.postAttnNorm, l.preFfNorm, l.postFfNorm, l.qNorm, l.kNorm])
        if (n) out.add(n.words);
      for (const m of [l.q, l.k, l.v, l.o, l.gate, l.up, l.down]) for (const t of m.frozenTensors()) out.add(t);
    }
    return [...out];
  }

  /** The attention's options: Gemma's scale, and Gemma 2's cap. */
  private get attentionOptions(): AttentionOptions {
    const g = this.config.gemma!;
    return { scale: 1 / Math.sqrt(g.queryPreAttnScalar), softcap: g.attnSoftcap };
  }

  // Gemma 3's q/k norm: x [T, n, d] → (1 + w)-RMSNorm over each of the T·n rows of d values
  private headNorm(x: Tensor, w: HalfVector): Tensor {
    const [T, n, d] = x.shape;
    return this.gpu.view(this.norm(this.gpu.view(x, 0, [T * n, d]), w), 0, [T, n, d]);
  }

  // its backward to the input (w is frozen): x, dy [T, n, d] → dx [T·n, d], a tensor of its own
  private headNormBackward(x: Tensor, w: HalfVector, dy: Tensor): Tensor {
    const { gpu } = this;
    const [T, n, d] = x.shape;
    return this.normBackward(gpu.view(x, 0, [T * n, d]), w, gpu.view(dy, 0, [T * n, d]));
  }

  protected layerForward(
    l: number,
    x: Tensor,
    b: Placement,
    o: LayerOptions,
  ): { out: Tensor; saved: LayerSaved | null } {
    const { gpu, config: c } = this;
    const w = this.weights.layers[l];
    const T = x.shape[0],
      d = c.headDim;
    const lora: LayerSaved['lora'] = {};
    const lin = (m: Module, input: Tensor) => {
      const r = w[m].forward(gpu, input, {
        dropout: o.dropout,
        save: o.save,
        seed: this.seed(o.step, l, MODULES.indexOf(m)),
      });
      lora[m] = r.saved;
      return r.y;
    };
    const a = this.norm(x, w.inputNorm);
    let q = gpu.view(lin('q', a), 0, [T, c.heads, d]);
    let k = gpu.view(lin('k', a), 0, [T, c.kvHeads, d]);
    const v = gpu.view(lin('v', a), 0, [T, c.kvHeads, d]);
    let qPre: Tensor | null = null,
      kPre: Tensor | null = null;
    if (w.qNorm && w.kNorm) {
      // Gemma 3, before RoPE; the values before the norm are kept for backward
      [qPre, kPre] = [q, k];
      q = this.headNorm(q, w.qNorm);
      k = this.headNorm(k, w.kNorm);
    }
    const rope = this.ropeOf(l)!;
    ropeForward(gpu, q, b.positions, rope);
    ropeForward(gpu, k, b.positions, rope);
    const { keys, values } = this.keysValues(l, k, v, o.cache);
    const { out: attn, lse } = attentionForward(gpu, q, keys, values, this.startOf(l, b), this.attentionOptions);
    const ao = lin('o', gpu.view(attn, 0, [T, c.heads * d]));
    const x2 = gpu.tensor([T, c.hidden]);
    gpu.copy(x, x2);
    this.norm(ao, w.postAttnNorm, x2);
    const m = this.norm(x2, w.preFfNorm);
    const g = lin('gate', m);
    const u = lin('up', m);
    const h = swigluForward(gpu, g, u, { activation: 'gelu_tanh' });
    const dn = lin('down', h);
    const out = gpu.tensor([T, c.hidden]);
    gpu.copy(x2, out);
    this.norm(dn, w.postFfNorm, out);
    const saved: LayerSaved = { a, q, k, v, qPre, kPre, lse, attn, ao, x2, m, g, u, h, d: dn, lora };
    return { out, saved: o.save ? saved : null }; // the caller's scope frees the rest
  }

  protected layerBackward(l: number, x: Tensor, s: LayerSaved, dOut: Tensor, b: Placement, step: number): Tensor {
    const { gpu, config: c } = this;
    const w = this.weights.layers[l];
    const T = x.shape[0],
      d = c.headDim;
    const back = (m: Module, dy: Tensor, dx?: Tensor) =>
      w[m].backward(gpu, dy, s.lora[m] ?? null, { dx, accumulate: !!dx, seed: this.seed(step, l, MODULES.indexOf(m)) });
    // out = x2 + norm_postff(down(geglu(gate(m), up(m)))),  m = norm_preff(x2)
    const dd = this.normBackward(s.d, w.postFfNorm, dOut);
    const dh = back('down', dd);
    const { dg, du } = swigluBackward(gpu, s.g, s.u, dh, { activation: 'gelu_tanh' });
    const dm = back('gate', dg);
    back('up', du, dm);
    const dx2 = gpu.tensor([T, c.hidden]);
    gpu.copy(dOut, dx2);
    this.normBackward(s.x2, w.preFfNorm, dm, dx2);
    // x2 = x + norm_postattn(o(attention(rope(q(a)), rope(k(a)), v(a)))),  a = norm_in(x)
    const dao = this.normBackward(s.ao, w.postAttnNorm, dx2);
    const dAttn = back('o', dao);
    const dO = gpu.view(dAttn, 0, [T, c.heads, d]);
    const g = attentionBackward(gpu, s.q, s.k, s.v, this.startOf(l, b), s.attn, s.lse, dO, this.attentionOptions);
    const rope = this.ropeOf(l)!;
    ropeBackward(gpu, g.dq, b.positions, rope);
    ropeBackward(gpu, g.dk, b.positions, rope);
    if (w.qNorm && w.kNorm) {
      // Gemma 3: through the per-head norms, from the saved pre-norm q and k
      g.dq = this.headNormBackward(s.qPre!, w.qNorm, g.dq);
      g.dk = this.headNormBackward(s.kPre!, w.kNorm, g.dk);
    }
    const da = back('q', gpu.view(g.dq, 0, [T, c.heads * d]));
    back('k', gpu.view(g.dk, 0, [T, c.kvHeads * d]), da);
    back('v', gpu.view(g.dv, 0, [T, c.kvHeads * d]), da);
    const dx = gpu.tensor([T, c.hidden]);
    gpu.copy(dx2, dx);
    this.normBackward(x, w.inputNorm, da, dx);
    return dx; // the caller's scope frees the temporaries and the saved state
  }
}
