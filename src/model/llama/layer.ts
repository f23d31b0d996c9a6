// The Llama family's decoder layer (llama, mistral, qwen2, qwen3, smollm3; phi3 with its fused qkv and
// gate_up) on WebGPU, forward and backward side by side, with gradients for the LoRA weights only.
//
//   x = embed(ids)
//   per layer:  a = rmsnorm(x)                      x: [T, H]
//               q, k, v = a Wqᵀ, a Wkᵀ, a Wvᵀ       (+ Qwen2's biases, + LoRA)
//               q, k = qnorm(q), knorm(k)           (Qwen3 only: RMSNorm of each head's d values)
//               q, k = rope(q), rope(k)             q: [T, Hq, d], k, v: [T, Hkv, d] (not in SmolLM3's NoPE layers)
//               x = x + attention(q, k, v) Woᵀ
//               m = rmsnorm(x)
//               x = x + (silu(m Wgᵀ) ⊙ m Wuᵀ) Wdᵀ
//   logits = rmsnorm(x) Wheadᵀ;  loss = cross-entropy, a chunk of rows at a time
//
// The rest of the network (checkpointing, the chunked loss, decoding) is ../causal-lm.ts.
import type { Tensor } from '../../gpu/runtime';
import { attentionBackward, attentionForward } from '../../ops/attention';
import type { LoraSaved } from '../../ops/lora';
import { swigluBackward, swigluForward } from '../../ops/mlp';
import { rmsnormBackward, rmsnormForward, type HalfVector } from '../../ops/norm';
import { halfBuffers } from '../../ops/half-matrix';
import { gatherHeads, scatterHeads } from '../../ops/heads';
import { ropeBackward, ropeForward } from '../../ops/rope';
import { CausalLM, type BaseWeights, type LayerOptions, type Placement } from '../causal-lm';
import type { LoraLinear } from '../lora-linear';

export type { Batch, KvCache } from '../causal-lm';

/** A layer's linears: q, k, v and gate, up apart, or fused as Phi-3 has them (qkv, gateUp). */
export interface LayerWeights {
  inputNorm: HalfVector;
  postNorm: HalfVector;
  /** Qwen3's q_norm and k_norm: [head_dim] each, shared by the heads. */
  qNorm?: HalfVector;
  kNorm?: HalfVector;
  q?: LoraLinear;
  k?: LoraLinear;
  v?: LoraLinear;
  qkv?: LoraLinear; // [q; k; v] rows
  o: LoraLinear;
  gate?: LoraLinear;
  up?: LoraLinear;
  gateUp?: LoraLinear; // [gate; up] rows
  down: LoraLinear;
}

export interface LlamaWeights extends BaseWeights {
  layers: LayerWeights[];
  norm: HalfVector;
}

const MODULES = ['q', 'k', 'v', 'o', 'gate', 'up', 'down', 'qkv', 'gateUp'] as const;
type Module = (typeof MODULES)[number];

interface LayerSaved {
  a: Tensor;
  q: Tensor;
  k: Tensor;
  v: Tensor;
  lse: Tensor; // attention's log-sum-exp per query and head
  attn: Tensor;
  /** Qwen3: q and k before their per-head norms (null without them). */
  qPre: Tensor | null;
  kPre: Tensor | null;
  x2: Tensor;
  m: Tensor;
  g: Tensor;
  u: Tensor;
  h: Tensor;
  lora: Partial<Record<Module, LoraSaved | null>>;
}

export class LlamaModel extends CausalLM<LlamaWeights, LayerSaved> {
  /** Heads of Phi-3's fused projections: q, k, v of qkv_proj; gate, up of gate_up_proj (null without them). */
  private readonly maps: Record<'q' | 'k' | 'v' | 'gate' | 'up', Tensor> | null;

  constructor(...args: ConstructorParameters<typeof CausalLM<LlamaWeights, LayerSaved>>) {
    super(...args);
    const { gpu, config: c } = this;
    const range = (from: number, n: number) =>
      gpu.tensor(
        [n],
        'u32',
        Uint32Array.from({ length: n }, (_, i) => from + i),
      );
    const fused = this.weights.layers.some((l) => l.qkv || l.gateUp);
    this.maps = fused
      ? {
          q: range(0, c.heads),
          k: range(c.heads, c.kvHeads),
          v: range(c.heads + c.kvHeads, c.kvHeads),
          gate: range(0, 1),
          up: range(1, 1),
        }
      : null;
  }

  private fusedMaps(): Record<'q' | 'k' | 'v' | 'gate' | 'up', Tensor> {
    if (!this.maps) throw new Error('this model has no fused projections');
    return this.maps;
  }

  protected finalNorm(x: Tensor): Tensor {
    return rmsnormForward(this.gpu, x, this.weights.norm, { eps: this.config.norm.eps });
  }

  protected finalNormBackward(x: Tensor, dy: Tensor): Tensor {
    return rmsnormBackward(this.gpu, x, this.weights.norm, dy, { eps: this.config.norm.eps });
  }

  weightTensors(): Tensor[] {
    const w = this.weights;
    const out = new Set<Tensor>([...halfBuffers(w.embed), ...halfBuffers(w.head), w.norm.words]);
    for (const l of w.layers) {
      out.add(l.inputNorm.words).add(l.postNorm.words);
      for (const n of [l.qNorm, l.kNorm]) if (n) out.add(n.words);
      for (const m of [l.q, l.k, l.v, l.qkv, l.o, l.gate, l.up, l.gateUp, l.down])
        for (const t of m?.frozenTensors() ?? []) out.add(t);
    }
    for (const t of Object.values(this.maps ?? {})) out.add(t);
    return [...out];
  }

  // ---- one decoder layer: forward (optionally saving for backward) and backward -----------

  // forward: x → x + attention block → + MLP block. `dropout` for training; `save` keeps the
  // intermediates for backward (the recompute); the caller's scope frees the rest.
  protected layerForward(
    l: number,
    x: Tensor,
    b: Placement,
    o: LayerOptions,
  ): { out: Tensor; saved: LayerSaved | null } {
    const { gpu, config: c } = this;
    const w = this.weights.layers[l];
    const T = x.shape[0];
    const lora: LayerSaved['lora'] = {};
    const lin = (m: Module, input: Tensor, opt: { y?: Tensor; accumulate?: boolean } = {}) => {
      const r = w[m]!.forward(gpu, input, {
        ...opt,
        dropout: o.dropout,
        save: o.save,
        seed: this.seed(o.step, l, MODULES.indexOf(m)),
      });
      lora[m] = r.saved;
      return r.y;
    };
    const a = rmsnormForward(gpu, x, w.inputNorm, { eps: c.norm.eps });
    let q: Tensor, k: Tensor, v: Tensor;
    if (w.qkv) {
      const maps = this.fusedMaps();
      const qkv = gpu.view(lin('qkv', a), 0, [T, c.heads + 2 * c.kvHeads, c.headDim]);
      q = gatherHeads(gpu, qkv, maps.q, gpu.tensor([T, c.heads, c.headDim]));
      k = gatherHeads(gpu, qkv, maps.k, gpu.tensor([T, c.kvHeads, c.headDim]));
      v = gatherHeads(gpu, qkv, maps.v, gpu.tensor([T, c.kvHeads, c.headDim]));
    } else {
      q = gpu.view(lin('q', a), 0, [T, c.heads, c.headDim]);
      k = gpu.view(lin('k', a), 0, [T, c.kvHeads, c.headDim]);
      v = gpu.view(lin('v', a), 0, [T, c.kvHeads, c.headDim]);
    }
    // Qwen3: each head's q and k through an RMSNorm over its d values ([T·heads, d] rows), before
    // RoPE; the values before the norm are kept for its backward
    let qPre: Tensor | null = null,
      kPre: Tensor | null = null;
    if (w.qNorm && w.kNorm) {
      [qPre, kPre] = [q, k];
      q = this.headNorm(q, w.qNorm);
      k = this.headNorm(k, w.kNorm);
    }
    const rope = this.ropeOf(l);
    if (rope) {
      ropeForward(gpu, q, b.positions, rope);
      ropeForward(gpu, k, b.positions, rope);
    }
    const { keys, values } = this.keysValues(l, k, v, o.cache);
    const { out: attn, lse } = attentionForward(gpu, q, keys, values, this.startOf(l, b));
    const attn2 = gpu.view(attn, 0, [T, c.heads * c.headDim]);
    const x2 = gpu.tensor([T, c.hidden]);
    gpu.copy(x, x2);
    lin('o', attn2, { y: x2, accumulate: true });
    const m = rmsnormForward(gpu, x2, w.postNorm, { eps: c.norm.eps });
    let g: Tensor, u: Tensor;
    if (w.gateUp) {
      const maps = this.fusedMaps();
      const gu = gpu.view(lin('gateUp', m), 0, [T, 2, c.intermediate]);
      g = gpu.view(gatherHeads(gpu, gu, maps.gate, gpu.tensor([T, 1, c.intermediate])), 0, [T, c.intermediate]);
      u = gpu.view(gatherHeads(gpu, gu, maps.up, gpu.tensor([T, 1, c.intermediate])), 0, [T, c.intermediate]);
    } else {
      g = lin('gate', m);
      u = lin('up', m);
    }
    const h = swigluForward(gpu, g, u);
    const out = gpu.tensor([T, c.hidden]);
    gpu.copy(x2, out);
    lin('down', h, { y: out, accumulate: true });
    const saved: LayerSaved = { a, q, k, v, qPre, kPre, lse, attn: attn2, x2, m, g, u, h, lora };
    return { out, saved: o.save ? saved : null };
  }

  // backward: dOut = dL/d(layer output) → dL/d(layer input); LoRA gradients accumulate. The
  // caller's scope frees the temporaries and the saved state.
  protected layerBackward(l: number, x: Tensor, s: LayerSaved, dOut: Tensor, b: Placement, step: number): Tensor {
    const { gpu, config: c } = this;
    const w = this.weights.layers[l];
    const T = x.shape[0];
    const back = (m: Module, dy: Tensor, dx?: Tensor) =>
      w[m]!.backward(gpu, dy, s.lora[m] ?? null, {
        dx,
        accumulate: !!dx,
        seed: this.seed(step, l, MODULES.indexOf(m)),
      });
    // x_out = x2 + dswiglu(gate(m), up(m)),  m = rmsnorm(x2)
    const dh = back('down', dOut);
    const { dg, du } = swigluBackward(gpu, s.g, s.u, dh);
    let dm: Tensor;
    if (w.gateUp) {
      const maps = this.fusedMaps();
      const dgu = gpu.tensor([T, 2, c.intermediate]);
      scatterHeads(gpu, gpu.view(dg, 0, [T, 1, c.intermediate]), maps.gate, dgu);
      scatterHeads(gpu, gpu.view(du, 0, [T, 1, c.intermediate]), maps.up, dgu);
      dm = back('gateUp', gpu.view(dgu, 0, [T, 2 * c.intermediate]));
    } else {
      dm = back('gate', dg);
      back('up', du, dm);
    }
    const dx2 = gpu.tensor([T, c.hidden]);
    gpu.copy(dOut, dx2);
    rmsnormBackward(gpu, s.x2, w.postNorm, dm, { eps: c.norm.eps, dx: dx2, accumulate: true });
    // x2 = x + o(attention(rope(q(a)), rope(k(a)), v(a))),  a = rmsnorm(x)
    const dAttn = back('o', dx2);
    const dO = gpu.view(dAttn, 0, [T, c.heads, c.headDim]);
    const g = attentionBackward(gpu, s.q, s.k, s.v, this.startOf(l, b), s.attn, s.lse, dO);
    const rope = this.ropeOf(l);
    if (rope) {
      ropeBackward(gpu, g.dq, b.positions, rope);
      ropeBackward(gpu, g.dk, b.positions, rope);
    }
    if (w.qNorm && w.kNorm) {
      // Qwen3: through the per-head norms, from the saved pre-norm q and k
      g.dq = this.headNormBackward(s.qPre!, w.qNorm, g.dq);
      g.dk = this.headNormBackward(s.kPre!, w.kNorm, g.dk);
    }
    let da: Tensor;
    if (w.qkv) {
      const maps = this.fusedMaps();
      const nf = c.heads + 2 * c.kvHeads;
      const dqkv = gpu.tensor([T, nf, c.headDim]);
      scatterHeads(gpu, g.dq, maps.q, dqkv);
      scatterHeads(gpu, g.dk, maps.k, dqkv);
      scatterHeads(gpu, g.dv, maps.v, dqkv);
      da = back('qkv', gpu.view(dqkv, 0, [T, nf * c.headDim]));
    } else {
      da = back('q', gpu.view(g.dq, 0, [T, c.heads * c.headDim]));
      back('k', gpu.view(g.dk, 0, [T, c.kvHeads * c.headDim]), da);
      back('v', gpu.view(g.dv, 0, [T, c.kvHeads * c.headDim]), da);
    }
    const dx = gpu.tensor([T, c.hidden]);
    gpu.copy(dx2, dx);
    rmsnormBackward(gpu, x, w.inputNorm, da, { eps: c.norm.eps, dx, accumulate: true });
    return dx;
  }

  // Qwen3's q/k norm: x [T, n, d] → y [T, n, d], an RMSNorm over each of the T·n rows of d values
  private headNorm(x: Tensor, w: HalfVector): Tensor {
    const [T, n, d] = x.shape;
    const y = rmsnormForward(this.gpu, this.gpu.view(x, 0, [T * n, d]), w, { eps: this.config.norm.eps });
    return this.gpu.view(y, 0, [T, n, d]);
  }

  // its backward to the input (w is frozen): x, dy [T, n, d] → dx [T·n, d], a tensor of its own
  private headNormBackward(x: Tensor, w: HalfVector, dy: Tensor): Tensor {
    const { gpu } = this;
    const [T, n, d] = x.shape;
    return rmsnormBackward(gpu, gpu.view(x, 0, [T * n, d]), w, gpu.view(dy, 0, [T * n, d]), {
      eps: this.config.norm.eps,
    });
  }
}
