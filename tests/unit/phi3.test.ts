// Phi-3 against float64, through its checkpoint: fused qkv_proj and gate_up_proj load by
// transformers' names and give the logits and loss of the same network with the projections
// apart (the float64 Llama reference, fed row slices of the fused weights and of LoRA's B), the
// LoRA gradients of finite differences, the sliding window in training and in KV-cache decoding
// alike, learning, and adapter keys as PEFT names Phi-3's modules.
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { hostBatch } from '../../src/data/batches';
import { readSafetensorsSync } from '../../src/formats/safetensors';
import type { Gpu } from '../../src/gpu/runtime';
import { exportAdapter } from '../../src/model/adapter';
import { ropeInverseFrequencies, type ModelConfig } from '../../src/model/config';
import { buildModel, loadCheckpoint } from '../../src/model/load';
import { attachLora, type LoraLinear } from '../../src/model/lora-linear';
import { localCheckpoint } from '../../src/node/local-files';
import { dequantizeNF4, quantizeNF4 } from '../../src/quant/nf4';
import { testGpu } from '../gpu';
import { llamaLogitsRef, llamaLossRef, type RefLayer, type RefLinear, type RefModel } from '../reference/llama';
import { freshSeed, randn, relError, rng } from '../reference/random';
import { writeTinyCheckpoint } from '../fixtures/tiny-checkpoint';
import { checkpointValues, decodeError, sampledLoraGradients, tinyWithLora, trainLosses } from '../model-checks';

let gpu: Gpu;
let root: string;
beforeAll(async () => {
  gpu = await testGpu();
  root = await mkdtemp(join(tmpdir(), 'phi3-'));
});

/**
 * The float64 model with the projections apart. A fused module's rows split into its parts;
 * LoRA's A is shared by the parts and B splits by rows, as subarrays of the same arrays, so a
 * finite difference through one entry moves every part that uses it.
 */
async function reference(
  dir: string,
  nf4: boolean,
  c: ModelConfig,
  lora: Map<string, { A: Float64Array; B: Float64Array }>,
) {
  const values = await checkpointValues(dir);
  const d = c.headDim,
    qd = c.heads * d,
    kvd = c.kvHeads * d,
    I = c.intermediate,
    H = c.hidden;
  const linear = (path: string, rows: [number, number][], inF: number): RefLinear[] => {
    const raw = values.get(`${path}.weight`)!;
    const w = nf4 ? dequantizeNF4(quantizeNF4(raw, 64)) : raw;
    const a = lora.get(path)!;
    return rows.map(([from, n]) => ({
      w: w.subarray(from * inF, (from + n) * inF),
      out: n,
      in: inF,
      A: a.A,
      B: a.B.subarray(from * 4, (from + n) * 4),
      r: 4,
      scale: 2,
    }));
  };
  const layers: RefLayer[] = Array.from({ length: c.layers }, (_, l) => {
    const p = `model.layers.${l}`;
    const [q, k, v] = linear(
      `${p}.self_attn.qkv_proj`,
      [
        [0, qd],
        [qd, kvd],
        [qd + kvd, kvd],
      ],
      H,
    );
    const [gate, up] = linear(
      `${p}.mlp.gate_up_proj`,
      [
        [0, I],
        [I, I],
      ],
      H,
    );
    return {
      inputNorm: values.get(`${p}.input_layernorm.weight`)!,
      postNorm: values.get(`${p}.post_attention_layernorm.weight`)!,
      q,
      k,
      v,
      o: linear(`${p}.self_attn.o_proj`, [[0, H]], qd)[0],
      gate,
      up,
      down: linear(`${p}.mlp.down_proj`, [[0, H]], I)[0],
    };
  });
  const ref: RefModel = {
    c,
    embed: values.get('model.embed_tokens.weight')!,
    layers,
    norm: values.get('model.norm.weight')!,
    head: values.get('lm_head.weight')!,
    invFreq: ropeInverseFrequencies(c),
  };
  return ref;
}

async function loraValues(modules: LoraLinear[]) {
  const out = new Map<string, { A: Float64Array; B: Float64Array }>();
  for (const m of modules)
    out.set(m.path, {
      A: Float64Array.from(await gpu.read(m.lora!.A)),
      B: Float64Array.from(await gpu.read(m.lora!.B)),
    });
  return out;
}

/** Two packed sequences of 6 and 7 tokens, batched as training batches them (window applied). */
function batchOf(r: () => number, c: ModelConfig) {
  const ids = Array.from({ length: 13 }, () => 2 + Math.floor(r() * (c.vocab - 2)));
  const block = { input_ids: ids, labels: ids, position_ids: ids.map((_, t) => (t < 6 ? t : t - 6)) };
  const h = hostBatch([block], c.slidingWindow);
  const batch = {
    ids: gpu.tensor([13], 'u32', h.ids),
    labels: gpu.tensor([13], 'i32', h.labels),
    positions: gpu.tensor([13], 'u32', h.positions),
    start: gpu.tensor([13], 'u32', h.start),
  };
  return { h, batch };
}

describe('Phi-3 (fused qkv_proj and gate_up_proj, sliding window) against float64', () => {
  it('gives the reference logits, loss and LoRA gradients, in 16 and 4 bits', async () => {
    const seed = freshSeed();
    const r = rng(seed);
    const dir = join(root, `phi3-${seed}`);
    await writeTinyCheckpoint(dir, 'phi3', seed);
    for (const nf4 of [false, true]) {
      const loaded = await loadCheckpoint(gpu, localCheckpoint(dir), { load_in_4bit: nf4 });
      const c = loaded.config;
      expect(c.fused).toEqual({ qkv: true, gateUp: true });
      expect(c.slidingWindow).toBe(5);
      const model = buildModel(gpu, loaded);
      const set = attachLora(gpu, loaded.linears, { r: 4, alpha: 8, dropout: 0, random: r });
      for (const m of loaded.linears) gpu.write(m.lora!.B, randn(r, m.lora!.B.numel, 0.05));
      const lora = await loraValues(loaded.linears);
      const ref = await reference(dir, nf4, c, lora);
      const { h, batch } = batchOf(r, c);
      expect([...h.start].slice(6)).toEqual([6, 6, 6, 6, 6, 7, 8]); // the window of 5 within the second sequence
      const msg = `${nf4 ? 'NF4' : 'BF16'}, seed ${seed}`;
      expect(
        relError(await gpu.read(model.logits(batch)), llamaLogitsRef(ref, h.ids, h.positions, h.start)),
        `logits, ${msg}`,
      ).toBeLessThan(1e-4);
      const losses = await gpu.read(model.forwardBackward(batch, 1 / h.counted, 0));
      const loss = losses.reduce((s, v) => s + v, 0) / h.counted;
      const refLoss = llamaLossRef(ref, h.ids, h.labels, h.positions, h.start);
      expect(Math.abs(loss - refLoss) / refLoss, `loss, ${msg}`).toBeLessThan(1e-5);
      const { got, want } = sampledLoraGradients(
        loaded.linears,
        await gpu.read(set.grads),
        (m, which) => lora.get(m.path)![which],
        () => llamaLossRef(ref, h.ids, h.labels, h.positions, h.start),
        r,
      );
      expect(relError(got, want), `LoRA gradients, ${msg}`).toBeLessThan(1e-4);
      for (const t of [...model.weightTensors(), set.params, set.grads]) t.release();
    }
  });

  it('decodes with the window as training masks it, learns, and names its adapter as PEFT does', async () => {
    const seed = freshSeed();
    const r = rng(seed);
    const dir = join(root, `phi3-train-${seed}`);
    const { c, model, lora } = await tinyWithLora(gpu, dir, 'phi3', seed, r);
    const T = 12;
    const ids = Array.from({ length: T }, () => 2 + Math.floor(r() * (c.vocab - 2)));
    const h = hostBatch([{ input_ids: ids, labels: ids, position_ids: ids.map((_, t) => t) }], c.slidingWindow);
    const batch = {
      ids: gpu.tensor([T], 'u32', h.ids),
      labels: gpu.tensor([T], 'i32', h.labels),
      positions: gpu.tensor([T], 'u32', h.positions),
      start: gpu.tensor([T], 'u32', h.start),
    };
    const losses = await trainLosses(gpu, model, lora, batch, h.counted);
    expect(losses[19], losses.map((l) => l.toFixed(2)).join(' ')).toBeLessThan(losses[0] / 2);
    expect(await decodeError(gpu, model, ids, batch), `decode, seed ${seed}`).toBeLessThan(1e-5);
    const files = await exportAdapter(gpu, lora, {
      base_model_name_or_path: 'microsoft/Phi-3-mini-4k-instruct',
      revision: null,
      lora_alpha: 16,
      lora_dropout: 0,
      use_rslora: false,
    });
    expect(JSON.parse(files['adapter_config.json']).target_modules).toEqual([
      'down_proj',
      'gate_up_proj',
      'o_proj',
      'qkv_proj',
    ]);
    const names = readSafetensorsSync(files['adapter_model.safetensors']).map((t) => t.info.name);
    expect(names).toContain('base_model.model.model.layers.0.self_attn.qkv_proj.lora_A.weight');
    expect(names).toContain('base_model.model.model.layers.1.mlp.gate_up_proj.lora_B.weight');
  });
});
