// Falcon (tiiuae/falcon-7b, the worked example; and the new_decoder_architecture of 40B/180B)
// on WebGPU: the decoder layer, forward and backward side by side, with gradients for the LoRA
// weights only. Attention and the MLP read the same LayerNorm output and add to the residual
// together (parallel attention):
//
//   per layer:  a = layernorm(x)                        (m = ln_mlp(x) with two norms; else m = a)
//               qkv = a Wqkvᵀ                           [T, (H + 2·Hkv) · d], fused
//               q, k, v = heads of qkv                  q: [T, H, d], k, v: [T, Hkv, d] (MQA: Hkv = 1)
//               q, k = rope(q), rope(k)
//               x = x + attention(q, k, v) Wdenseᵀ + gelu(m W4hᵀ) Wdownᵀ
//   logits = layernorm_f(x) Wheadᵀ   (the head is the embedding)
//
// The rest of the network (checkpointing, the chunked loss, decoding) is ./causal-lm.ts.
import type { Gpu, Tensor } from '../../gpu/runtime';
import { attentionBackward, attentionForward } from '../../ops/attention';
import { gatherHeads, scatterHeads } from '../../ops/heads';
import type { LoraSaved } from '../../ops/lora';
import { geluBackward, geluForward } from '../../ops/mlp';
import { layernormBackward, layernormForward, type HalfVector } from '../../ops/norm';
import { halfBuffers } from '../../ops/half-matrix';
import { ropeBackward, ropeForward, type RopeTables } from '../../ops/rope';
import { CausalLM, type BaseWeights, type LayerOptions, type Placement } from '../causal-lm';
import type { ModelConfig } from '../config';
import type { LoraLinear } from '../lora-linear';

export interface Norm {
  w: HalfVector;
  b: HalfVector;
}

export interface FalconLayerWeights {
  ln: Norm; // input_layernorm, or ln_attn with two norms
  lnMlp: Norm | null; // ln_mlp with two norms
  qkv: LoraLinear;
  dense: LoraLinear;
  up: LoraLinear; // dense_h_to_4h
  down: LoraLinear; // dense_4h_to_h
}

export interface FalconWeights extends BaseWeights {
  layers: FalconLayerWeights[];
  lnF: Norm;
}

const MODULES = ['qkv', 'dense', 'up', 'down'] as const;
type Module = (typeof MODULES)[number];

interface LayerSaved {
  a: Tensor;
  m: Tensor | null;
  qkv: Tensor;
  q: Tensor;
  k: Tensor;
  v: Tensor;
  lse: Tensor; // attention's log-sum-exp per query and head
  attn: Tensor;
  g: Tensor;
  h: Tensor;
  lora: Partial<Record<Module, LoraSaved | null>>;
}

/** Which heads of the fused row are q, k and v (see FalconLayout). */
export function falconHeadMaps(c: ModelConfig): { q: number[]; k: number[]; v: number[] } {
  const q: number[] = [],
    k: number[] = [],
    v: number[] = [];
  if (c.falcon!.qkv === 'multi-query') {
    for (let h = 0; h < c.heads; h++) q.push(h);
    return { q, k: [c.heads], v: [c.heads + 1] };
  }
  const r = c.heads / c.kvHeads;
  for (let g = 0; g < c.kvHeads; g++) {
    for (let i = 0; i < r; i++) q.push(g * (r + 2) + i);
    k.push(g * (r + 2) + r);
    v.push(g * (r + 2) + r + 1);
  }
  return { q, k, v };
}

export class FalconModel extends CausalLM<FalconWeights, LayerSaved> {
  private maps: Record<'q' | 'k' | 'v', Tensor>;

  constructor(gpu: Gpu, config: ModelConfig, weights: FalconWeights, rope: RopeTables) {
    super(gpu, config, weights, rope);
    const m = falconHeadMaps(config);
    this.maps = {
      q: gpu.tensor([m.q.length], 'u32', Uint32Array.from(m.q)),
      k: gpu.tensor([m.k.length], 'u32', Uint32Array.from(m.k)),
      v: gpu.tensor([m.v.length], 'u32', Uint32Array.from(m.v)),
    };
  }

  private get fusedHeads(): number {
    return this.config.heads + 2 * this.config.kvHeads;
  }

  protected finalNorm(x: Tensor): Tensor {
    const { lnF } = this.weights;
    return layernormForward(this.gpu, x, lnF.w, lnF.b, { eps: this.config.norm.eps });
  }

  protected finalNormBackward(x: Tensor, dy: Tensor): Tensor {
    return layernormBackward(this.gpu, x, this.weights.lnF.w, dy, { eps: this.config.norm.eps });
  }

  weightTensors(): Tensor[] {
    const w = this.weights;
    const out = new Set<Tensor>([
      ...halfBuffers(w.embed),
      ...halfBuffers(w.head),
      w.lnF.w.words,
      w.lnF.b.words,
      ...Object.values(this.maps),
    ]);
    for (const l of w.layers) {
      for (const n of [l.ln, l.lnMlp]) if (n) out.add(n.w.words).add(n.b.words);
      for (const m of [l.qkv, l.dense, l.up, l.down]) for (const t of m.frozenTensors()) out.add(t);
    }
    return [...out];
  }

  // forward: x → x + attention block + MLP block, both from the layer's norm
  protected layerForward(
    l: number,
    x: Tensor,
    b: Placement,
    o: LayerOptions,
  ): { out: Tensor; saved: LayerSaved | null } {
    const { gpu, config: c } = this;
    const w = this.weights.layers[l];
    const T = x.shape[0],
      d = c.headDim,
      eps = c.norm.eps;
    const lora: LayerSaved['lora'] = {};
    const lin = (m: Module, input: Tensor, opt: { y?: Tensor; accumulate?: boolean } = {}) => {
      const r = w[m].forward(gpu, input, {
        ...opt,
        dropout: o.dropout,
        save: o.save,
        seed: this.seed(o.step, l, MODULES.indexOf(m)),
      });
      lora[m] = r.saved;
      return r.y;
    };
    const a = layernormForward(gpu, x, w.ln.w, w.ln.b, { eps });
    const m = w.lnMlp ? layernormForward(gpu, x, w.lnMlp.w, w.lnMlp.b, { eps }) : null;
    const qkv = gpu.view(lin('qkv', a), 0, [T, this.fusedHeads, d]);
    const q = gatherHeads(gpu, qkv, this.maps.q, gpu.tensor([T, c.heads, d]));
    const k = gatherHeads(gpu, qkv, this.maps.k, gpu.tensor([T, c.kvHeads, d]));
    const v = gatherHeads(gpu, qkv, this.maps.v, gpu.tensor([T, c.kvHeads, d]));
    ropeForward(gpu, q, b.positions, this.rope);
    ropeForward(gpu, k, b.positions, this.rope);
    const { keys, values } = this.keysValues(l, k, v, o.cache);
    const { out: attn, lse } = attentionForward(gpu, q, keys, values, b.start);
    const out = gpu.tensor([T, c.hidden]);
    gpu.copy(x, out);
    lin('dense', gpu.view(attn, 0, [T, c.heads * d]), { y: out, accumulate: true });
    const g = lin('up', m ?? a);
    const h = geluForward(gpu, g, { approximate: 'none' });
    lin('down', h, { y: out, accumulate: true });
    const saved: LayerSaved = { a, m, qkv, q, k, v, lse, attn, g, h, lora };
    return { out, saved: o.save ? saved : null }; // the caller's scope frees the rest
  }

  // backward: dOut → dL/dx; both blocks' gradients flow back through their norms into dx
  protected layerBackward(l: number, x: Tensor, s: LayerSaved, dOut: Tensor, b: Placement, step: number): Tensor {
    const { gpu, config: c } = this;
    const w = this.weights.layers[l];
    const T = x.shape[0],
      d = c.headDim,
      eps = c.norm.eps;
    const back = (m: Module, dy: Tensor, dx?: Tensor) =>
      w[m].backward(gpu, dy, s.lora[m] ?? null, { dx, accumulate: !!dx, seed: this.seed(step, l, MODULES.indexOf(m)) });
    // MLP: out += down(gelu(up(m)))
    const dh = back('down', dOut);
    const dg = geluBackward(gpu, s.g, dh, { approximate: 'none' });
    // attention: out += dense(attention(rope(q), rope(k), v)), q, k, v = heads of qkv(a)
    const dAttn = back('dense', dOut);
    const ga = attentionBackward(gpu, s.q, s.k, s.v, b.start, s.attn, s.lse, gpu.view(dAttn, 0, [T, c.heads, d]));
    ropeBackward(gpu, ga.dq, b.positions, this.rope);
    ropeBackward(gpu, ga.dk, b.positions, this.rope);
    const dqkv = gpu.tensor([T, this.fusedHeads, d]);
    scatterHeads(gpu, ga.dq, this.maps.q, dqkv);
    scatterHeads(gpu, ga.dk, this.maps.k, dqkv);
    scatterHeads(gpu, ga.dv, this.maps.v, dqkv);
    const da = back('qkv', gpu.view(dqkv, 0, [T, this.fusedHeads * d]));
    const dx = gpu.tensor([T, c.hidden]);
    gpu.copy(dOut, dx);
    let dm: Tensor;
    if (w.lnMlp) {
      dm = back('up', dg);
      layernormBackward(gpu, x, w.lnMlp.w, dm, { eps, dx, accumulate: true });
    } else {
      dm = back('up', dg, da); // one norm feeds both blocks: their gradients add
    }
    layernormBackward(gpu, x, w.ln.w, da, { eps, dx, accumulate: true });
    return dx; // the caller's scope frees the temporaries and the saved state
  }
}
