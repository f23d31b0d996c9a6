// SmolLM3 against float64, through its checkpoint: Llama's layout with a tied head and layers that
// skip RoPE (no_rope_layers: here the second) — the reference logits and loss in 16 and 4 bits, LoRA
// gradients by finite differences, KV-cache decoding as the full pass computes, learning, and
// adapter keys as PEFT names them.
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { readSafetensorsSync } from '../../src/formats/safetensors';
import type { Gpu } from '../../src/gpu/runtime';
import { exportAdapter } from '../../src/model/adapter';
import { ropeInverseFrequencies, type ModelConfig } from '../../src/model/config';
import { buildModel, loadCheckpoint } from '../../src/model/load';
import { attachLora } from '../../src/model/lora-linear';
import { localCheckpoint } from '../../src/node/local-files';
import { testGpu } from '../gpu';
import { llamaLogitsRef, llamaLossRef, type RefLayer, type RefLinear, type RefModel } from '../reference/llama';
import { freshSeed, randn, relError, rng } from '../reference/random';
import { writeTinyCheckpoint } from '../fixtures/tiny-checkpoint';
import {
  checkpointValues, decodeError, randomBatch, refLinears, sampledLoraGradients, tinyWithLora, trainLosses,
} from '../model-checks';

let gpu: Gpu;
let root: string;
beforeAll(async () => {
  gpu = await testGpu();
  root = await mkdtemp(join(tmpdir(), 'smollm3-'));
});

/** The float64 twin of a checkpoint, its linears by module path (NF4 round-tripped with `nf4`). */
async function reference(
  dir: string, nf4: boolean, c: ModelConfig,
): Promise<{ ref: RefModel; linears: Map<string, RefLinear> }> {
  const values = await checkpointValues(dir);
  const qd = c.heads * c.headDim, kvd = c.kvHeads * c.headDim;
  const { linears, lin } = refLinears(values, nf4);
  const layers: RefLayer[] = Array.from({ length: c.layers }, (_, l) => {
    const p = `model.layers.${l}`;
    const v = (n: string) => values.get(`${p}.${n}.weight`)!;
    return {
      inputNorm: v('input_layernorm'), postNorm: v('post_attention_layernorm'),
      q: lin(`${p}.self_attn.q_proj`, qd, c.hidden), k: lin(`${p}.self_attn.k_proj`, kvd, c.hidden),
      v: lin(`${p}.self_attn.v_proj`, kvd, c.hidden), o: lin(`${p}.self_attn.o_proj`, c.hidden, qd),
      gate: lin(`${p}.mlp.gate_proj`, c.intermediate, c.hidden), up: lin(`${p}.mlp.up_proj`, c.intermediate, c.hidden),
      down: lin(`${p}.mlp.down_proj`, c.hidden, c.intermediate),
    };
  });
  const embed = values.get('model.embed_tokens.weight')!;
  const norm = values.get('model.norm.weight')!;
  const ref: RefModel = { c, embed, layers, norm, head: embed, invFreq: ropeInverseFrequencies(c) }; // tied head
  return { ref, linears };
}

/** Two packed sequences of `split` and T − split tokens, batched as training batches them. */

describe('SmolLM3 against float64', () => {
  it('loads by transformers names; gives the reference logits, loss and LoRA gradients, in 16 and 4 bits', async () => {
    const seed = freshSeed();
    const r = rng(seed);
    const dir = join(root, `smollm3-${seed}`);
    await writeTinyCheckpoint(dir, 'smollm3', seed);
    for (const nf4 of [false, true]) {
      const loaded = await loadCheckpoint(gpu, localCheckpoint(dir), { load_in_4bit: nf4 });
      const c = loaded.config;
      expect(c).toMatchObject({ modelType: 'smollm3', family: 'llama', headDim: 16, noRope: [false, true] });
      expect(c.tieEmbeddings).toBe(true);
      expect(c.rope).toEqual({ theta: 5e6, scaling: null });
      const model = buildModel(gpu, loaded);
      const { ref, linears } = await reference(dir, nf4, c);
      const set = attachLora(gpu, loaded.linears, { r: 4, alpha: 8, dropout: 0, random: r });
      // B starts at zero (PEFT's init); make it random so every gradient is nonzero
      for (const m of loaded.linears) gpu.write(m.lora!.B, randn(r, m.lora!.B.numel, 0.05));
      for (const m of loaded.linears) {
        const A = Float64Array.from(await gpu.read(m.lora!.A)), B = Float64Array.from(await gpu.read(m.lora!.B));
        Object.assign(linears.get(m.path)!, { A, B, r: 4, scale: 2 });
      }
      const { h, batch } = randomBatch(gpu, r, c);
      const msg = `${nf4 ? 'NF4' : 'BF16'}, seed ${seed}`;
      const logitsErr = relError(await gpu.read(model.logits(batch)), llamaLogitsRef(ref, h.ids, h.positions, h.start));
      expect(logitsErr, `logits, ${msg}`).toBeLessThan(1e-5);
      const losses = await gpu.read(model.forwardBackward(batch, 1 / h.counted, 0));
      const loss = losses.reduce((s, v) => s + v, 0) / h.counted;
      const refLoss = llamaLossRef(ref, h.ids, h.labels, h.positions, h.start);
      expect(Math.abs(loss - refLoss) / refLoss, `loss, ${msg}`).toBeLessThan(1e-5);
      const { got, want } = sampledLoraGradients(loaded.linears, await gpu.read(set.grads),
        (m, which) => linears.get(m.path)![which] as Float64Array,
        () => llamaLossRef(ref, h.ids, h.labels, h.positions, h.start), r);
      const gradErr = relError(got, want);
      expect(gradErr, `LoRA gradients, ${msg}`).toBeLessThan(1e-4);
      // FAMILY_REPORT=1 prints the errors measured
      if (process.env.FAMILY_REPORT) {
        console.log(`smollm3 ${msg}: logits ${logitsErr.toExponential(2)}, gradients ${gradErr.toExponential(2)}`);
      }
      for (const t of [...model.weightTensors(), ...model.ropeTensors(), set.params, set.grads]) t.release();
    }
  });

  it('decodes with a KV cache as the full pass computes, learns, and names its adapter as PEFT does', async () => {
    const seed = freshSeed();
    const r = rng(seed);
    const dir = join(root, `smollm3-train-${seed}`);
    const { c, model, lora } = await tinyWithLora(gpu, dir, 'smollm3', seed, r);
    const T = 12;
    const { ids, h, batch } = randomBatch(gpu, r, c, T, T);
    const losses = await trainLosses(gpu, model, lora, batch, h.counted);
    expect(losses[19], losses.map((l) => l.toFixed(2)).join(' ')).toBeLessThan(losses[0] * 0.7);
    // after training, so the decoded logits carry LoRA through the layer without RoPE too
    const decodeErr = await decodeError(gpu, model, ids, batch);
    expect(decodeErr, `decode, seed ${seed}`).toBeLessThan(1e-5);
    if (process.env.FAMILY_REPORT) console.log(`smollm3 decode: ${decodeErr.toExponential(2)}`);
    const files = await exportAdapter(
      gpu, lora,
      { base_model_name_or_path: 'HuggingFaceTB/SmolLM3-3B', revision: null, lora_alpha: 16, lora_dropout: 0,
        use_rslora: false },
    );
    const names = readSafetensorsSync(files['adapter_model.safetensors']).map((t) => t.info.name);
    expect(names).toContain('base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight');
    expect(names).toContain('base_model.model.model.layers.0.self_attn.k_proj.lora_B.weight');
    expect(names.length).toBe(2 * 7 * 2);
    expect(JSON.parse(files['adapter_config.json']).target_modules)
      .toEqual(['down_proj', 'gate_proj', 'k_proj', 'o_proj', 'q_proj', 'up_proj', 'v_proj']);
  });
});
