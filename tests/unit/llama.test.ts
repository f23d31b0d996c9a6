import { beforeAll, describe, expect, it } from 'vitest';
import type { Gpu } from '../../src/gpu/runtime';
import { parseModelConfig } from '../../src/model/registry';
import { attachLora } from '../../src/model/lora-linear';
import { testGpu } from '../gpu';
import { llamaLogitsRef, llamaLossRef } from '../reference/llama';
import { freshSeed, randn, relError, rng } from '../reference/random';
import { TINY, buildTinyModel, packedBatch } from '../tiny-model';
import { sampledLoraGradients } from '../model-checks';

let gpu: Gpu;
beforeAll(async () => {
  gpu = await testGpu();
});

for (const [name, extra] of [
  ['llama (tied embeddings)', { model_type: 'llama', tie_word_embeddings: true }],
  ['qwen2 (q/k/v biases, separate head)', { model_type: 'qwen2', tie_word_embeddings: false }],
] as const) {
  describe(`${name}: the whole QLoRA model against float64`, () => {
    it('gives the reference logits, loss, and LoRA gradients (by finite differences)', async () => {
      const seed = freshSeed();
      const r = rng(seed);
      const c = parseModelConfig({ ...TINY, ...extra });
      const { model, ref, modules, refLinears } = buildTinyModel(gpu, c, r);
      const set = attachLora(gpu, modules, { r: 4, alpha: 8, dropout: 0, random: r });
      // B starts at zero (PEFT's init); make it random so every gradient is nonzero.
      for (const m of modules) gpu.write(m.lora!.B, randn(r, m.lora!.B.numel, 0.05));
      for (const [i, m] of modules.entries()) {
        Object.assign(refLinears[i], {
          A: Float64Array.from(await gpu.read(m.lora!.A)),
          B: Float64Array.from(await gpu.read(m.lora!.B)),
          r: 4,
          scale: 2,
        });
      }
      const b = packedBatch(gpu, c, r);
      const msg = `seed ${seed}`;
      const logits = await gpu.read(model.logits(b.batch));
      expect(relError(logits, llamaLogitsRef(ref, b.ids, b.positions, b.start)), `logits, ${msg}`).toBeLessThan(1e-4);

      const counted = b.labels.filter((l) => l >= 0).length;
      const losses = await gpu.read(model.forwardBackward(b.batch, 1 / counted, 0));
      const loss = losses.reduce((s, v) => s + v, 0) / counted;
      const refLoss = llamaLossRef(ref, b.ids, b.labels, b.positions, b.start);
      expect(Math.abs(loss - refLoss) / refLoss, `loss, ${msg}`).toBeLessThan(1e-5);

      // LoRA gradients against central differences of the float64 loss, at sampled entries of
      // every module's A and B.
      const index = new Map(modules.map((m, i) => [m, i]));
      const { got, want } = sampledLoraGradients(
        modules,
        await gpu.read(set.grads),
        (m, which) => refLinears[index.get(m)!][which] as Float64Array,
        () => llamaLossRef(ref, b.ids, b.labels, b.positions, b.start),
        r,
      );
      expect(relError(got, want), `LoRA gradients, ${msg}`).toBeLessThan(1e-4);
    });
  });
}
