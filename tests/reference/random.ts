// Fresh random inputs for every run, reproducible from the seed printed in failure messages
// (set TEST_SEED to replay one).
export function freshSeed(): number {
  const fromEnv = process.env.TEST_SEED;
  return fromEnv ? Number(fromEnv) : (Math.random() * 2 ** 32) >>> 0;
}

/** Uniform [0, 1) numbers from a seed (the same small generator generation uses). */
export { seededRandom as rng } from '../../src/generate/generate';

/** Standard normal values (Box–Muller), as f32. */
export function randn(rand: () => number, n: number, scale = 1): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = 1 - rand();
    const v = rand();
    out[i] = scale * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }
  return out;
}

/** ‖out − ref‖ / ‖ref‖ in float64. */
export function relError(out: ArrayLike<number>, ref: ArrayLike<number>): number {
  if (out.length !== ref.length) throw new Error(`length ${out.length} vs reference ${ref.length}`);
  let num = 0;
  let den = 0;
  for (let i = 0; i < ref.length; i++) {
    const d = out[i] - ref[i];
    num += d * d;
    den += ref[i] * ref[i];
  }
  if (!Number.isFinite(num)) return Infinity; // a NaN left from the poison means an unwritten output
  return Math.sqrt(num) / Math.sqrt(den || 1);
}

/** The bit pattern tests fill output buffers with before a run: a quiet NaN. */
export const POISON = 0x7fc00bad;
