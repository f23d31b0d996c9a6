// Choosing the next token from one row of logits, as transformers' generate() does:
//   greedy (do_sample false): argmax, the first index on ties (torch.argmax)
//   sampling: repetition penalty → temperature → top-k → top-p → softmax → one draw
// The defaults are transformers' GenerationConfig defaults.

export interface SamplingSettings {
  do_sample: boolean;
  temperature: number;
  top_k: number; // 0 turns it off
  top_p: number; // 1 turns it off
  repetition_penalty: number; // 1 turns it off
}

export const SAMPLING_DEFAULTS: SamplingSettings = {
  do_sample: false,
  temperature: 1,
  top_k: 50,
  top_p: 1,
  repetition_penalty: 1,
};

export function checkSampling(s: SamplingSettings): void {
  if (!(s.repetition_penalty > 0)) throw new Error(`repetition_penalty must be > 0, got ${s.repetition_penalty}`);
  // greedy decoding reads none of the three below, and transformers ignores them then: a model's
  // generation_config.json may hold a temperature of 0 beside do_sample false
  if (!s.do_sample) return;
  if (!(s.temperature > 0))
    throw new Error(`temperature must be > 0, got ${s.temperature}; use do_sample false for greedy decoding`);
  if (!Number.isInteger(s.top_k) || s.top_k < 0) throw new Error(`top_k must be a whole number ≥ 0, got ${s.top_k}`);
  if (!(s.top_p > 0 && s.top_p <= 1)) throw new Error(`top_p must be in (0, 1], got ${s.top_p}`);
}

/** The processed scores (−Infinity for removed tokens); `seen` are the ids so far (prompt included). */
export function processLogits(logits: ArrayLike<number>, seen: Iterable<number>, s: SamplingSettings): Float64Array {
  const z = Float64Array.from(logits);
  if (s.repetition_penalty !== 1) {
    for (const id of new Set(seen)) z[id] = z[id] < 0 ? z[id] * s.repetition_penalty : z[id] / s.repetition_penalty;
  }
  if (!s.do_sample) return z;
  if (s.temperature !== 1) for (let i = 0; i < z.length; i++) z[i] /= s.temperature;
  if (s.top_k > 0 && s.top_k < z.length) {
    // keep every score ≥ the k-th largest (ties at the boundary stay, as with torch.topk's threshold)
    const kth = Float64Array.from(z).sort()[z.length - s.top_k];
    for (let i = 0; i < z.length; i++) if (z[i] < kth) z[i] = -Infinity;
  }
  if (s.top_p < 1) {
    // remove the low tail whose total probability is at most 1 − top_p; the top token always stays
    const order = Array.from(z.keys()).sort((a, b) => z[a] - z[b]);
    const p = softmax(z);
    let cum = 0;
    for (let j = 0; j < order.length - 1; j++) {
      cum += p[order[j]];
      if (cum <= 1 - s.top_p) z[order[j]] = -Infinity;
      else break;
    }
  }
  return z;
}

export function softmax(z: ArrayLike<number>): Float64Array {
  let m = -Infinity;
  for (let i = 0; i < z.length; i++) m = Math.max(m, z[i]);
  const p = Float64Array.from(z, (v) => Math.exp(v - m));
  const sum = p.reduce((a, b) => a + b, 0);
  return p.map((v) => v / sum);
}

/** The next token: argmax without sampling, otherwise one draw with `random` in [0, 1). */
export function nextToken(
  logits: ArrayLike<number>,
  seen: Iterable<number>,
  s: SamplingSettings,
  random: () => number,
): number {
  const z = processLogits(logits, seen, s);
  if (!s.do_sample) {
    let best = 0;
    for (let i = 1; i < z.length; i++) if (z[i] > z[best]) best = i;
    return best;
  }
  const p = softmax(z);
  let u = random();
  for (let i = 0; i < p.length; i++) {
    u -= p[i];
    if (u < 0) return i;
  }
  let last = p.length - 1; // rounding left u ≥ 0: the last token with any probability
  while (p[last] === 0) last--;
  return last;
}
