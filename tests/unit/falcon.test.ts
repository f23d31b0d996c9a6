// Falcon against float64, through its checkpoint: the tiny fixtures in Falcon-7B's layout
// (multi-query, one LayerNorm) and in the new_decoder_architecture (KV groups, two LayerNorms)
// load by transformers' names, give the reference logits and loss in 16 and 4 bits, the LoRA
// gradients of finite differences, decode with a KV cache as the full pass does, learn, and
// export adapter keys as PEFT names Falcon's modules.
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { readSafetensorsSync } from '../../src/formats/safetensors';
import type { Gpu } from '../../src/gpu/runtime';
import { exportAdapter } from '../../src/model/adapter';
import { ropeInverseFrequencies } from '../../src/model/config';
import { buildModel, loadCheckpoint } from '../../src/model/load';
import { attachLora } from '../../src/model/lora-linear';
import { localCheckpoint } from '../../src/node/local-files';
import { dequantizeNF4, quantizeNF4 } from '../../src/quant/nf4';
import { testGpu } from '../gpu';
import { falconLogitsRef, falconLossRef, type RefFalcon, type RefFalconLayer } from '../reference/falcon';
import type { RefLinear } from '../reference/llama';
import { freshSeed, randn, relError, rng } from '../reference/random';
import { writeTinyCheckpoint } from '../fixtures/tiny-checkpoint';
import { checkpointValues, decodeError, sampledLoraGradients, tinyWithLora, trainLosses } from '../model-checks';

let gpu: Gpu;
let root: string;
beforeAll(async () => {
  gpu = await testGpu();
  root = await mkdtemp(join(tmpdir(), 'falcon-'));
});

/** The checkpoint's tensors as float64-comparable values (16-bit as stored; NF4 dequantized). */
async function reference(
  dir: string,
  nf4: boolean,
  c: RefFalcon['c'],
): Promise<{ ref: RefFalcon; linears: Map<string, RefLinear> }> {
  const values = await checkpointValues(dir);
  const linears = new Map<string, RefLinear>();
  const lin = (path: string): RefLinear => {
    const w = values.get(`${path}.weight`)!;
    const [out, inF] = path.endsWith('query_key_value')
      ? [(c.heads + 2 * c.kvHeads) * c.headDim, c.hidden]
      : path.endsWith('dense')
        ? [c.hidden, c.heads * c.headDim]
        : path.endsWith('h_to_4h')
          ? [c.intermediate, c.hidden]
          : [c.hidden, c.intermediate];
    const L: RefLinear = { w: nf4 ? dequantizeNF4(quantizeNF4(w, 64)) : w, out, in: inF };
    linears.set(path, L);
    return L;
  };
  const norm = (p: string) => ({ w: values.get(`${p}.weight`)!, b: values.get(`${p}.bias`)! });
  const layers: RefFalconLayer[] = Array.from({ length: c.layers }, (_, l) => {
    const p = `transformer.h.${l}`;
    const two = c.falcon!.twoNorms;
    return {
      ln: norm(two ? `${p}.ln_attn` : `${p}.input_layernorm`),
      lnMlp: two ? norm(`${p}.ln_mlp`) : null,
      qkv: lin(`${p}.self_attention.query_key_value`),
      dense: lin(`${p}.self_attention.dense`),
      up: lin(`${p}.mlp.dense_h_to_4h`),
      down: lin(`${p}.mlp.dense_4h_to_h`),
    };
  });
  const embed = values.get('transformer.word_embeddings.weight')!;
  return {
    ref: { c, embed, layers, lnF: norm('transformer.ln_f'), head: embed, invFreq: ropeInverseFrequencies(c) },
    linears,
  };
}

/** Two packed sequences (positions restart, attention stays inside each). */
function batchOf(r: () => number, V: number) {
  const T = 13;
  const ids = Uint32Array.from({ length: T }, () => 2 + Math.floor(r() * (V - 2)));
  const labels = Int32Array.from({ length: T }, (_, t) => (t === 5 || t === 12 ? -100 : ids[t + 1]));
  const positions = Uint32Array.from({ length: T }, (_, t) => (t < 6 ? t : t - 6));
  const start = Uint32Array.from({ length: T }, (_, t) => (t < 6 ? 0 : 6));
  const batch = {
    ids: gpu.tensor([T], 'u32', ids),
    labels: gpu.tensor([T], 'i32', labels),
    positions: gpu.tensor([T], 'u32', positions),
    start: gpu.tensor([T], 'u32', start),
  };
  return { T, ids, labels, positions, start, batch };
}

for (const kind of ['falcon', 'falcon-grouped'] as const) {
  const layout =
    kind === 'falcon' ? 'Falcon-7B layout (multi-query)' : 'new_decoder_architecture (KV groups, two norms)';
  describe(`${layout} against float64`, () => {
    it('loads by transformers names; gives reference logits, loss and LoRA gradients, in 16 and 4 bits', async () => {
      const seed = freshSeed();
      const r = rng(seed);
      const dir = join(root, `${kind}-${seed}`);
      await writeTinyCheckpoint(dir, kind, seed);
      for (const nf4 of [false, true]) {
        const loaded = await loadCheckpoint(gpu, localCheckpoint(dir), { load_in_4bit: nf4 });
        const c = loaded.config;
        expect(c.kvHeads).toBe(kind === 'falcon' ? 1 : 2);
        const model = buildModel(gpu, loaded);
        const { ref, linears } = await reference(dir, nf4, c);
        const set = attachLora(gpu, loaded.linears, { r: 4, alpha: 8, dropout: 0, random: r });
        for (const m of loaded.linears) gpu.write(m.lora!.B, randn(r, m.lora!.B.numel, 0.05));
        for (const m of loaded.linears) {
          Object.assign(linears.get(m.path)!, {
            A: Float64Array.from(await gpu.read(m.lora!.A)),
            B: Float64Array.from(await gpu.read(m.lora!.B)),
            r: 4,
            scale: 2,
          });
        }
        const b = batchOf(r, c.vocab);
        const msg = `${nf4 ? 'NF4' : 'BF16'}, seed ${seed}`;
        expect(
          relError(await gpu.read(model.logits(b.batch)), falconLogitsRef(ref, b.ids, b.positions, b.start)),
          `logits, ${msg}`,
        ).toBeLessThan(1e-4);
        const counted = b.labels.filter((l) => l >= 0).length;
        const losses = await gpu.read(model.forwardBackward(b.batch, 1 / counted, 0));
        const loss = losses.reduce((s, v) => s + v, 0) / counted;
        const refLoss = falconLossRef(ref, b.ids, b.labels, b.positions, b.start);
        expect(Math.abs(loss - refLoss) / refLoss, `loss, ${msg}`).toBeLessThan(1e-5);
        const { got, want } = sampledLoraGradients(
          loaded.linears,
          await gpu.read(set.grads),
          (m, which) => linears.get(m.path)![which] as Float64Array,
          () => falconLossRef(ref, b.ids, b.labels, b.positions, b.start),
          r,
        );
        expect(relError(got, want), `LoRA gradients, ${msg}`).toBeLessThan(1e-4);
        for (const t of [...model.weightTensors(), set.params, set.grads]) t.release();
      }
    });

    it('decodes with a KV cache as the full pass computes, learns, and names its adapter as PEFT does', async () => {
      const seed = freshSeed();
      const r = rng(seed);
      const dir = join(root, `${kind}-train-${seed}`);
      const { c, model, lora } = await tinyWithLora(gpu, dir, kind, seed, r);
      const T = 12;
      const ids = Array.from({ length: T }, () => 2 + Math.floor(r() * (c.vocab - 2)));
      const batch = {
        ids: gpu.tensor([T], 'u32', Uint32Array.from(ids)),
        labels: gpu.tensor(
          [T],
          'i32',
          Int32Array.from(ids, (_, t) => (t + 1 < T ? ids[t + 1] : -100)),
        ),
        positions: gpu.tensor([T], 'u32', Uint32Array.from(ids.keys())),
        start: gpu.tensor([T], 'u32', new Uint32Array(T)),
      };
      const losses = await trainLosses(gpu, model, lora, batch, T - 1);
      expect(losses[19], losses.map((l) => l.toFixed(2)).join(' ')).toBeLessThan(losses[0] / 2);

      // the prompt, then two tokens one at a time, against the logits of the whole sequence
      expect(await decodeError(gpu, model, ids, batch), `decode, seed ${seed}`).toBeLessThan(1e-5);

      const files = await exportAdapter(gpu, lora, {
        base_model_name_or_path: 'tiiuae/falcon-7b',
        revision: null,
        lora_alpha: 16,
        lora_dropout: 0,
        use_rslora: false,
      });
      expect(JSON.parse(files['adapter_config.json']).target_modules).toEqual([
        'dense',
        'dense_4h_to_h',
        'dense_h_to_4h',
        'query_key_value',
      ]);
      const names = readSafetensorsSync(files['adapter_model.safetensors']).map((t) => t.info.name);
      expect(names).toContain('base_model.model.transformer.h.0.self_attention.query_key_value.lora_A.weight');
      expect(names).toContain('base_model.model.transformer.h.1.mlp.dense_4h_to_h.lora_B.weight');
      expect(names.length).toBe(2 * 4 * 2);
    });
  });
}
