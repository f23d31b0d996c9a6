// A frozen linear layer with an optional LoRA adapter, in the spirit of MLX's LoRALinear:
//   y = x Wᵀ (+ b) + s · dropout(x) Aᵀ Bᵀ
// W is NF4 (QLoRA) or 16-bit (load_in_4bit false); b is a frozen 16-bit bias (Qwen2's q, k, v).
import type { Gpu, Tensor } from '../gpu/runtime';
import { halfLinear, halfLinearBackwardInput } from '../ops/head';
import { halfBuffers, type HalfMatrix } from '../ops/half-matrix';
import { loraBackward, loraDown, loraForward, type LoraSaved } from '../ops/lora';
import { nf4Linear, nf4LinearBackwardInput, type NF4Weight } from '../ops/nf4';
import type { HalfVector } from '../ops/norm';
import { addBias } from '../ops/rows';

export type FrozenWeight = { kind: 'nf4'; w: NF4Weight } | { kind: 'half'; w: HalfMatrix };

export interface LoraParams {
  A: Tensor; // [r, in], a view into the flat parameter buffer
  B: Tensor; // [out, r]
  dA: Tensor; // views into the flat gradient buffer
  dB: Tensor;
  scale: number;
  dropout: number;
}

export class LoraLinear {
  constructor(
    /** The module path, e.g. model.layers.0.self_attn.q_proj. */
    readonly path: string,
    readonly base: FrozenWeight,
    readonly bias: HalfVector | null = null,
    public lora: LoraParams | null = null,
  ) {}

  /** False runs the frozen layer alone (generation with the adapter off); training needs true. */
  adapterOn = true;

  /** The frozen weight's (and bias') buffers. */
  frozenTensors(): Tensor[] {
    const w = this.base.kind === 'nf4' ? [this.base.w.packed, this.base.w.absmax] : halfBuffers(this.base.w);
    return this.bias ? [...w, this.bias.words] : w;
  }

  get outFeatures(): number {
    return this.base.w.shape[0];
  }
  get inFeatures(): number {
    return this.base.w.shape[1];
  }

  // forward: y (+)= x Wᵀ + b + s · dropout(x) Aᵀ Bᵀ     x: [T, in], y: [T, out]
  // `dropout` applies LoRA dropout (training); `save` keeps what backward needs.
  forward(
    gpu: Gpu,
    x: Tensor,
    o: { y?: Tensor; accumulate?: boolean; dropout?: boolean; save?: boolean; seed?: number } = {},
  ): { y: Tensor; saved: LoraSaved | null } {
    const y = o.y ?? gpu.tensor([x.shape[0], this.outFeatures]);
    const accumulate = !!o.accumulate;
    const adapter = this.lora && this.adapterOn ? { ...this.lora, dropout: o.dropout ? this.lora.dropout : 0 } : null;
    let saved: LoraSaved | null = null;
    if (this.base.kind === 'nf4') {
      // the adapter's up-projection rides along in the frozen product: one pass over y
      saved = adapter && loraDown(gpu, x, adapter, { seed: o.seed });
      const lora = saved && adapter ? { h: saved.h, B: adapter.B, scale: adapter.scale } : undefined;
      nf4Linear(gpu, x, this.base.w, { out: y, accumulate, lora });
    } else {
      halfLinear(gpu, x, this.base.w, { out: y, accumulate });
      saved = adapter && loraForward(gpu, x, adapter, y, { seed: o.seed });
    }
    if (this.bias) addBias(gpu, y, this.bias);
    if (!saved || o.save) return { y, saved };
    releaseLoraSaved(saved);
    return { y, saved: null };
  }

  // backward: dx (+)= dy W + LoRA's share; dA, dB += (W and b are frozen)
  backward(
    gpu: Gpu,
    dy: Tensor,
    saved: LoraSaved | null,
    o: { dx?: Tensor; accumulate?: boolean; seed?: number } = {},
  ): Tensor {
    const dx = o.dx ?? gpu.tensor([dy.shape[0], this.inFeatures]);
    if (this.base.kind === 'nf4') nf4LinearBackwardInput(gpu, dy, this.base.w, { dx, accumulate: o.accumulate });
    else halfLinearBackwardInput(gpu, dy, this.base.w, { dx, accumulate: o.accumulate });
    if (this.lora && this.adapterOn && saved) {
      loraBackward(
        gpu,
        dy,
        this.lora,
        saved,
        { dA: this.lora.dA, dB: this.lora.dB },
        { dx, seed: o.seed ?? 0, accumulate: true },
      );
    }
    return dx;
  }
}

export function releaseLoraSaved(saved: LoraSaved): void {
  saved.h.release();
  if (saved.ownsXd) saved.xd.release();
}

/** The adapter's weights in one flat buffer, its gradients in another, each tensor a view. */
export interface LoraSet {
  params: Tensor; // f32 [n]
  grads: Tensor; // f32 [n]
  modules: LoraLinear[];
}

/**
 * Give each module a LoRA adapter of rank r, laid out in one flat buffer at 64-float (256-byte)
 * boundaries, initialised as PEFT does: A ~ U(−1/√in, 1/√in) (kaiming_uniform with a = √5),
 * B = 0. `random` draws uniform [0, 1) numbers (seeded by the caller).
 */
export function attachLora(
  gpu: Gpu,
  modules: LoraLinear[],
  o: { r: number; alpha: number; dropout: number; useRslora?: boolean; random: () => number },
): LoraSet {
  const align = (n: number) => Math.ceil(n / 64) * 64;
  let n = 0;
  const layout = modules.map((m) => {
    const a = n;
    n += align(o.r * m.inFeatures);
    const b = n;
    n += align(m.outFeatures * o.r);
    return { a, b };
  });
  const init = new Float32Array(n);
  modules.forEach((m, i) => {
    const bound = 1 / Math.sqrt(m.inFeatures);
    for (let j = 0; j < o.r * m.inFeatures; j++) init[layout[i].a + j] = (2 * o.random() - 1) * bound;
  });
  const params = gpu.tensor([n], 'f32', init);
  const grads = gpu.tensor([n], 'f32', new Float32Array(n));
  const scale = o.useRslora ? o.alpha / Math.sqrt(o.r) : o.alpha / o.r;
  modules.forEach((m, i) => {
    const { a, b } = layout[i];
    m.lora = {
      A: gpu.view(params, a, [o.r, m.inFeatures]),
      B: gpu.view(params, b, [m.outFeatures, o.r]),
      dA: gpu.view(grads, a, [o.r, m.inFeatures]),
      dB: gpu.view(grads, b, [m.outFeatures, o.r]),
      scale,
      dropout: o.dropout,
    };
  });
  return { params, grads, modules };
}
