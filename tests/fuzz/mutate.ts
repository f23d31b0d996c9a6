// Hostile values and random mutations for the fuzz suites, drawn from a seeded generator.
export { rng } from '../reference/random';

/** Values a declared size, count or setting should never be taken at face value for. */
export const HOSTILE_VALUES: unknown[] = [
  0,
  -1,
  1.5,
  1e9,
  2 ** 31,
  2 ** 32 + 1,
  2 ** 50,
  2 ** 53 + 2,
  -(2 ** 53),
  1e308,
  null,
  '12',
  true,
  [],
  {},
  [1, 2],
  'x'.repeat(300),
];

export const pick = <T>(rand: () => number, xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)];

/** Every path to a leaf or a container in a JSON value. */
function paths(v: unknown, at: (string | number)[] = [], out: (string | number)[][] = []): (string | number)[][] {
  if (at.length) out.push(at);
  if (v && typeof v === 'object' && out.length < 10_000) {
    for (const [k, x] of Object.entries(v)) paths(x, [...at, Array.isArray(v) ? Number(k) : k], out);
  }
  return out;
}

/** A copy of `value` with one random place set to a hostile value (or removed). */
export function mutateJson<T>(value: T, rand: () => number): { value: T; path: string } {
  const copy = structuredClone(value);
  const all = paths(copy);
  if (!all.length) return { value: pick(rand, HOSTILE_VALUES) as T, path: '(root)' };
  const path = pick(rand, all);
  let parent = copy as Record<string | number, unknown>;
  for (const k of path.slice(0, -1)) parent = parent[k] as Record<string | number, unknown>;
  const key = path[path.length - 1];
  if (rand() < 0.1 && !Array.isArray(parent)) delete parent[key];
  else parent[key] = structuredClone(pick(rand, HOSTILE_VALUES));
  return { value: copy, path: path.join('.') };
}

/** A copy of `bytes` with a few bytes overwritten, a run cut out, or the tail cut off. */
export function mutateBytes(bytes: Uint8Array, rand: () => number): { bytes: Uint8Array; how: string } {
  const n = bytes.length;
  const at = Math.floor(rand() * n);
  const kind = Math.floor(rand() * 3);
  if (kind === 0) {
    const out = bytes.slice();
    const k = 1 + Math.floor(rand() * 8);
    for (let j = 0; j < k; j++) out[Math.min(n - 1, at + j)] = Math.floor(rand() * 256);
    return { bytes: out, how: `${k} bytes overwritten at ${at}` };
  }
  if (kind === 1) {
    const len = 1 + Math.floor(rand() * Math.min(64, n - at));
    const out = new Uint8Array(n - len);
    out.set(bytes.subarray(0, at));
    out.set(bytes.subarray(at + len), at);
    return { bytes: out, how: `${len} bytes cut at ${at}` };
  }
  return { bytes: bytes.slice(0, at), how: `cut to ${at} bytes` };
}
