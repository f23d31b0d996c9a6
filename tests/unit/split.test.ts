// Tensors larger than one binding: a device binds at most maxStorageBufferBindingSize bytes to
// a kernel argument, and falcon-7b's BF16 embedding (591 MB) is more than many devices bind.
// 16-bit tables split into row blocks and f32 weights reach the quantizer in bands of rows.
// Loaded with a tiny block limit, every family's tiny checkpoint must give the logits it gives
// whole (bit for bit: each output column is the same sum), the same loss, the same LoRA
// gradients (the head's backward sums over blocks, so to rounding), and decode as its full pass.
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { hostBatch, uploadBatch } from '../../src/data/batches';
import type { Gpu } from '../../src/gpu/runtime';
import type { BaseWeights } from '../../src/model/causal-lm';
import { buildModel, loadCheckpoint } from '../../src/model/load';
import { attachLora } from '../../src/model/lora-linear';
import { localCheckpoint } from '../../src/node/local-files';
import { allocHalf, readHalf, releaseHalf, rowsPerBlock, writeHalf } from '../../src/ops/half-matrix';
import { quantizeNF4Host, readNF4Bytes } from '../../src/ops/nf4';
import { nf4Absmax, quantizeNF4 } from '../../src/quant/nf4';
import { writeTinyCheckpoint, type TinyKind } from '../fixtures/tiny-checkpoint';
import { testGpu } from '../gpu';
import { decodeError } from '../model-checks';
import { freshSeed, randn, relError, rng } from '../reference/random';

let gpu: Gpu;
let root: string;
beforeAll(async () => {
  gpu = await testGpu();
  root = await mkdtemp(join(tmpdir(), 'split-'));
});

/** Small enough that every tiny table and every f32 weight splits. */
const BLOCK = 4096;

describe('a 16-bit matrix in row blocks', () => {
  it('takes bytes at any word offset across block boundaries and gives them back', async () => {
    const seed = freshSeed();
    const r = rng(seed);
    const [rows, cols] = [37, 13]; // odd columns: blocks hold an even number of rows
    const m = allocHalf(gpu, [rows, cols], 'BF16', 6 * cols * 2 + 5);
    expect(m.blocks.map((b) => b.rows)).toEqual([6, 6, 6, 6, 6, 6, 1]);
    expect(rowsPerBlock(37, 13, 7 * 13 * 2)).toBe(6); // 7 rows of 13 would end a block mid-word
    expect(rowsPerBlock(37, 14, 7 * 14 * 2)).toBe(7);
    expect(() => rowsPerBlock(3, 1000, 1000)).toThrow(/does not fit a binding of 1000 bytes/);
    const bytes = Uint8Array.from({ length: rows * cols * 2 }, () => Math.floor(r() * 256));
    // pieces straddle blocks
    for (let at = 0; at < bytes.length; at += 68) writeHalf(gpu, m, bytes.subarray(at, at + 68), at);
    expect(Array.from(await readHalf(gpu, m)), `seed ${seed}`).toEqual(Array.from(bytes));
    releaseHalf(m);
  });

  it('quantizes a weight in bands of rows to the bytes of quantizing it whole', async () => {
    const seed = freshSeed();
    const r = rng(seed);
    const [out, inF] = [45, 96]; // 96 is not a multiple of 64: a band is an even number of rows
    const w = randn(r, out * inF);
    const banded = quantizeNF4Host(gpu, w, [out, inF], { blocksize: 64, maxBytes: 3 * inF * 4 });
    const cpu = quantizeNF4(w, 64);
    expect(Array.from(await readNF4Bytes(gpu, banded)), `seed ${seed}`).toEqual(Array.from(cpu.packed));
    expect(Array.from(await gpu.read(banded.absmax)), `seed ${seed}`).toEqual(Array.from(nf4Absmax(cpu)));
  });
});

describe('models whose tables outgrow one binding', () => {
  // 16-bit linears split too: checked on Falcon (whose head is its embedding), NF4 on all
  for (const [kind, precisions] of [
    ['llama', [true]],
    ['falcon', [false, true]],
    ['gemma2', [true]],
  ] as [TinyKind, boolean[]][]) {
    const named = precisions.map((p) => (p ? 'NF4' : '16 bits')).join(' and ');
    it(`${kind}: the same logits, loss, LoRA gradients and decoding split as whole, in ${named}`, async () => {
      const seed = freshSeed();
      const dir = join(root, `${kind}-${seed}`);
      await writeTinyCheckpoint(dir, kind, seed);
      for (const nf4 of precisions) {
        const run = async (maxBlockBytes?: number) => {
          const loaded = await loadCheckpoint(gpu, localCheckpoint(dir), { load_in_4bit: nf4, maxBlockBytes });
          const model = buildModel(gpu, loaded);
          const r = rng(seed);
          const set = attachLora(gpu, loaded.linears, { r: 4, alpha: 8, dropout: 0, random: r });
          for (const m of loaded.linears) gpu.write(m.lora!.B, randn(r, m.lora!.B.numel, 0.05));
          const c = loaded.config,
            T = 21;
          const ids = Array.from({ length: T }, () => Math.floor(r() * c.vocab));
          ids[0] = c.vocab - 1; // the last row of the last block
          const batch = uploadBatch(
            gpu,
            hostBatch(
              [{ input_ids: ids, labels: ids, position_ids: ids.map((_, t) => t) }],
              c.slidingWindow,
              c.localWindow,
            ),
          );
          const w = loaded.weights as BaseWeights;
          const blocks = [w.embed.blocks.length, w.head.blocks.length];
          const logits = await gpu.read(model.logits(batch));
          const loss = await gpu.read(model.forwardBackward(batch, 1 / (T - 1), 0));
          const grads = await gpu.read(set.grads);
          const decode = await decodeError(gpu, model, ids, batch);
          for (const t of [...model.weightTensors(), set.params, set.grads]) t.release();
          return { blocks, logits, loss, grads, decode };
        };
        const whole = await run();
        const split = await run(BLOCK);
        const msg = `${nf4 ? 'NF4' : 'BF16'}, seed ${seed}`;
        expect(whole.blocks, msg).toEqual([1, 1]);
        expect(Math.min(...split.blocks), msg).toBeGreaterThan(3);
        expect(Array.from(split.logits), `logits, ${msg}`).toEqual(Array.from(whole.logits));
        expect(Array.from(split.loss), `loss, ${msg}`).toEqual(Array.from(whole.loss));
        expect(relError(split.grads, whole.grads), `LoRA gradients, ${msg}`).toBeLessThan(1e-5);
        expect(split.decode, `decode, ${msg}`).toBeLessThan(1e-5);
      }
    });
  }
});
