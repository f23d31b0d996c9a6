// Float64 reference of torch.nn.utils.clip_grad_norm_ followed by torch.optim.AdamW.step.
import type { AdamWSettings } from '../../src/ops/optim';

export function adamwRef(
  p: Float64Array,
  m: Float64Array,
  v: Float64Array,
  grads: ArrayLike<number>,
  hp: AdamWSettings,
  t: number,
): { norm: number } {
  let sq = 0;
  for (let i = 0; i < grads.length; i++) sq += grads[i] * grads[i];
  const norm = Math.sqrt(sq);
  const clip = hp.max_grad_norm > 0 ? Math.min(1, hp.max_grad_norm / (norm + 1e-6)) : 1;
  const bc1 = 1 - hp.adam_beta1 ** t;
  const bc2sqrt = Math.sqrt(1 - hp.adam_beta2 ** t);
  for (let i = 0; i < p.length; i++) {
    const g = grads[i] * clip;
    m[i] = hp.adam_beta1 * m[i] + (1 - hp.adam_beta1) * g;
    v[i] = hp.adam_beta2 * v[i] + (1 - hp.adam_beta2) * g * g;
    p[i] *= 1 - hp.learning_rate * hp.weight_decay;
    p[i] -= (hp.learning_rate / bc1) * (m[i] / (Math.sqrt(v[i]) / bc2sqrt + hp.adam_epsilon));
  }
  return { norm };
}
