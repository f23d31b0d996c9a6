import { describe, expect, it } from 'vitest';
import {
  NF4_CODE,
  NF4_THRESHOLDS,
  dequantizeAbsmax,
  dequantizeNF4,
  dynamicMap,
  nf4Index,
  quantizeNF4,
} from '../../src/quant/nf4';
import { freshSeed, randn, rng } from '../reference/random';

const BLOCKSIZES = [32, 64, 128, 256, 512, 1024, 2048, 4096];
/** Half the widest gap between neighbouring NF4 codes: the worst rounding error, in absmax units. */
const HALF_GAP = Math.max(...Array.from(NF4_CODE.subarray(1), (c, i) => (c - NF4_CODE[i]) / 2));

describe('NF4 on the CPU, in bitsandbytes layout', () => {
  it('packs the even element into the high nibble, and pads an odd tail with the code of 0', () => {
    // absmax 1: -1 is code 0, 1 is code 15, 0 is code 7, 0.5626170039176941 is code 13.
    const q = quantizeNF4(Float32Array.of(-1, 1, 0, 0.5626170039176941, 1), 64);
    expect(Array.from(q.packed)).toEqual([0x0f, 0x7d, 0xf7]);
    expect(Array.from(q.absmax)).toEqual([1]);
  });

  it('round-trips every code exactly, at every blocksize', () => {
    for (const bs of BLOCKSIZES) {
      const scale = Math.fround(0.37 * bs);
      const values = Float32Array.from({ length: bs * 2 + 5 }, (_, i) => Math.fround(NF4_CODE[i % 16] * scale));
      const q = quantizeNF4(values, bs);
      for (let i = 0; i < values.length; i++) {
        const byte = q.packed[i >> 1];
        expect(i & 1 ? byte & 15 : byte >> 4).toBe(i % 16);
      }
      expect(Array.from(dequantizeNF4(q))).toEqual(Array.from(values));
    }
  });

  it('gives a value exactly on a threshold the lower code, and the next float up the higher', () => {
    for (let k = 0; k < 15; k++) {
      const t = NF4_THRESHOLDS[k];
      expect(nf4Index(t)).toBe(k);
      const up = new Float32Array([t]);
      new Uint32Array(up.buffer)[0] += t >= 0 ? 1 : -1;
      expect(nf4Index(up[0])).toBe(k + 1);
    }
    expect(nf4Index(NaN)).toBe(0);
  });

  it('stays within half a code gap of random weights at every blocksize, odd lengths included', () => {
    const seed = freshSeed();
    const r = rng(seed);
    for (const bs of BLOCKSIZES) {
      const n = 3 * bs + 37;
      const x = randn(r, n, 0.02);
      const q = quantizeNF4(x, bs);
      expect(q.packed.length).toBe(Math.ceil(n / 2));
      expect(q.absmax.length).toBe(Math.ceil(n / bs));
      const y = dequantizeNF4(q);
      for (let i = 0; i < n; i++) {
        const a = q.absmax[Math.floor(i / bs)];
        expect(Math.abs(y[i] - x[i]), `blocksize ${bs}, element ${i}, seed ${seed}`).toBeLessThanOrEqual(
          a * HALF_GAP * (1 + 1e-6),
        );
      }
    }
  });

  it('writes a block of zeros as code 0 with absmax 0, as bitsandbytes does', () => {
    const x = new Float32Array(64 + 3);
    x[64] = 2;
    const q = quantizeNF4(x, 64);
    expect(Array.from(q.packed.subarray(0, 32))).toEqual(new Array(32).fill(0));
    expect(q.absmax[0]).toBe(0);
    expect(Array.from(dequantizeNF4(q).subarray(0, 64)).every((v) => v === 0)).toBe(true);
  });

  it('refuses NaN, infinities and bad blocksizes with a clear message', () => {
    expect(() => quantizeNF4(Float32Array.of(1, NaN), 64)).toThrow(/NaN at element 1/);
    expect(() => quantizeNF4(Float32Array.of(Infinity), 64)).toThrow(/Infinity at element 0/);
    expect(() => quantizeNF4(new Float32Array(8), 48)).toThrow(/power of two from 32 to 4096/);
    expect(() => quantizeNF4(new Float32Array(8), 8192)).toThrow(/power of two from 32 to 4096/);
  });
});

describe('double quantization of the absmax values', () => {
  it('builds the 256-entry signed dynamic map of bitsandbytes', () => {
    const m = dynamicMap();
    expect(m.length).toBe(256);
    for (let i = 1; i < 256; i++) expect(m[i]).toBeGreaterThan(m[i - 1]);
    expect(m[0]).toBe(Math.fround(-0.99296874));
    expect(m[127]).toBe(0);
    expect(m[128]).toBe(Math.fround(5.5000004e-7));
    expect(m[254]).toBe(Math.fround(0.99296874));
    expect(m[255]).toBe(1);
    for (let i = 1; i < 127; i++) expect(m[255 - i - 1]).toBe(-m[i]); // symmetric but for the 1
  });

  it('round-trips the absmax values within half a gap of the map', () => {
    const seed = freshSeed();
    const r = rng(seed);
    const n = 600 * 64 + 7;
    const x = randn(r, n, 0.05);
    const plain = quantizeNF4(x, 64);
    const dq = quantizeNF4(x, 64, true);
    expect(Array.from(dq.packed)).toEqual(Array.from(plain.packed)); // codes use the exact absmax
    const nested = dq.nested!;
    expect(nested.codes.length).toBe(plain.absmax.length);
    expect(nested.absmax2.length).toBe(Math.ceil(plain.absmax.length / 256));
    const map = nested.code;
    let halfGap = 0;
    for (let i = 1; i < 256; i++) halfGap = Math.max(halfGap, (map[i] - map[i - 1]) / 2);
    const back = dequantizeAbsmax(nested);
    for (let i = 0; i < back.length; i++) {
      const bound = nested.absmax2[i >> 8] * halfGap * (1 + 1e-5) + 1e-7;
      expect(Math.abs(back[i] - plain.absmax[i]), `absmax ${i}, seed ${seed}`).toBeLessThanOrEqual(bound);
    }
    // and the weights dequantized through the nested absmax stay close to the plain ones
    const y1 = dequantizeNF4(plain),
      y2 = dequantizeNF4(dq);
    let worst = 0;
    for (let i = 0; i < n; i++) worst = Math.max(worst, Math.abs(y1[i] - y2[i]));
    expect(worst).toBeLessThan(0.01 * Math.max(...plain.absmax));
  });
});
