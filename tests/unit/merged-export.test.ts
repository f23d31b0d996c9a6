// The merged export against a float64 reference: a stored model (an NF4 linear, a 16-bit linear,
// a norm, an embedding) with an adapter on both linears gives W + scale · B A rounded once to
// BF16, every other tensor byte for byte, transformers' shard names and index, and a config.json
// without quantization_config.
import { describe, expect, it } from 'vitest';
import { adapterConfigJson } from '../../src/formats/peft';
import { readSafetensorsSync, toFloat32, writeSafetensors } from '../../src/formats/safetensors';
import { halfBitsToFloat, packHalf } from '../../src/quant/half';
import { dequantizeNF4, quantizeNF4 } from '../../src/quant/nf4';
import type { Manifest, StoredTensor } from '../../src/store/model-store';
import { exportMerged, type MergedFile } from '../../src/store/merged-export';
import { freshSeed, randn, rng } from '../reference/random';

const bf16Bytes = (v: Float32Array) => new Uint8Array(packHalf(v, 'BF16').words.buffer, 0, v.length * 2);

/** A stored model in memory: what ModelStore.get and getMany read, and its manifest. */
function storedModel(seed: number) {
  const r = rng(seed);
  const values = new Map<string, unknown>();
  const tensors: Record<string, StoredTensor> = {};
  const originals = new Map<string, Float32Array>();
  const half = (name: string, shape: number[]) => {
    const bytes = bf16Bytes(randn(r, shape[0] * (shape[1] ?? 1), 0.5));
    values.set(`t:${name}:half:0`, bytes);
    originals.set(name, toFloat32('BF16', bytes));
    tensors[name] = {
      name,
      shard: 'model.safetensors',
      shape,
      kind: 'half',
      dtype: 'BF16',
      parts: [`t:${name}:half:0`],
      bytes: bytes.length,
    };
  };
  const nf4 = (name: string, shape: [number, number]) => {
    // odd sizes: 37 x 19 is not a whole number of 64-value blocks, nor of bytes
    const q = quantizeNF4(randn(r, shape[0] * shape[1], 0.5), 64);
    originals.set(name, dequantizeNF4(q));
    // the packed bytes in two parts, as the store splits a large tensor
    const cut = 100;
    values.set(`t:${name}:packed:0`, q.packed.slice(0, cut)).set(`t:${name}:packed:1`, q.packed.slice(cut));
    values.set(`t:${name}:absmax:0`, new Uint8Array(q.absmax.buffer));
    tensors[name] = {
      name,
      shard: 'model.safetensors',
      shape,
      kind: 'nf4',
      blocksize: 64,
      parts: [`t:${name}:packed:0`, `t:${name}:packed:1`],
      absmaxParts: [`t:${name}:absmax:0`],
      bytes: q.packed.length + q.absmax.byteLength,
    };
  };
  half('model.embed_tokens.weight', [11, 19]);
  nf4('model.layers.0.mlp.down_proj.weight', [37, 19]);
  half('model.layers.0.self_attn.o_proj.weight', [19, 13]); // a linear kept 16-bit (load_in_4bit false, or skipped)
  half('model.norm.weight', [19]);
  const config = { model_type: 'llama', torch_dtype: 'bfloat16', quantization_config: { load_in_4bit: true } };
  values.set('file:config.json', JSON.stringify(config));
  values.set('file:tokenizer.json', '{"model": {}}');
  const manifest = {
    files: [
      { path: 'config.json', kind: 'text' },
      { path: 'tokenizer.json', kind: 'text' },
      { path: 'model.safetensors', kind: 'shard' },
    ],
    tensors,
    complete: true,
  } as unknown as Manifest;
  const store = {
    get: async <T>(k: string) => values.get(k) as T | undefined,
    getMany: async <T>(ks: string[]) => ks.map((k) => values.get(k) as T | undefined),
  };
  return { store, manifest, originals, r };
}

function adapter(r: () => number, rank: number, alpha: number, rslora: boolean) {
  const modules = new Map([
    ['model.layers.0.mlp.down_proj', { out: 37, in: 19 }],
    ['model.layers.0.self_attn.o_proj', { out: 19, in: 13 }],
  ]);
  const ab = new Map<string, { A: Float32Array; B: Float32Array }>();
  const tensors = [...modules].flatMap(([path, m]) => {
    const A = randn(r, rank * m.in, 0.3),
      B = randn(r, m.out * rank, 0.3);
    ab.set(path, { A, B });
    const f32 = (a: Float32Array) => new Uint8Array(a.buffer);
    return [
      { name: `base_model.model.${path}.lora_A.weight`, dtype: 'F32' as const, shape: [rank, m.in], data: f32(A) },
      { name: `base_model.model.${path}.lora_B.weight`, dtype: 'F32' as const, shape: [m.out, rank], data: f32(B) },
    ];
  });
  const config = adapterConfigJson({
    base_model_name_or_path: 'tiny',
    revision: null,
    r: rank,
    lora_alpha: alpha,
    lora_dropout: 0,
    target_modules: ['down_proj', 'o_proj'],
    use_rslora: rslora,
    bias: 'none',
  });
  return { files: { config, weights: writeSafetensors(tensors) }, ab };
}

describe('exportMerged', () => {
  it.each([
    [false, 1 << 30],
    [true, 1500],
  ])('folds scale · B A into each adapted weight (rsLoRA %s, shards of %i bytes)', async (rslora, maxShardBytes) => {
    const seed = freshSeed();
    const { store, manifest, originals, r } = storedModel(seed);
    const rank = 3,
      alpha = 7;
    const { files, ab } = adapter(r, rank, alpha, rslora);
    const out = new Map<string, Uint8Array>();
    const got = await exportMerged(store, manifest, files, {
      maxShardBytes,
      onFile: async (f: MergedFile) => void out.set(f.name, f.bytes),
    });
    expect(got.merged).toBe(2);
    const config = JSON.parse(new TextDecoder().decode(out.get('config.json')));
    expect(config).toEqual({ model_type: 'llama', torch_dtype: 'bfloat16' });
    expect(new TextDecoder().decode(out.get('tokenizer.json'))).toBe('{"model": {}}');

    // transformers' shards: in order, a new one when the next tensor would overflow (418, 1406, 494, 38 bytes)
    const shardNames = rslora
      ? ['model-00001-of-00003.safetensors', 'model-00002-of-00003.safetensors', 'model-00003-of-00003.safetensors']
      : ['model.safetensors'];
    expect(got.files).toEqual([
      'config.json',
      'tokenizer.json',
      ...shardNames,
      ...(rslora ? ['model.safetensors.index.json'] : []),
    ]);
    const tensors = new Map(
      shardNames.flatMap((n) =>
        readSafetensorsSync(out.get(n)!).map((t) => [t.info.name, { ...t, shard: n }] as const),
      ),
    );
    if (rslora) {
      const index = JSON.parse(new TextDecoder().decode(out.get('model.safetensors.index.json')));
      expect(index.metadata.total_size).toBe((11 * 19 + 37 * 19 + 19 * 13 + 19) * 2);
      expect(index.weight_map).toEqual(Object.fromEntries([...tensors].map(([k, t]) => [k, t.shard])));
      expect(index.weight_map['model.layers.0.mlp.down_proj.weight']).toBe('model-00002-of-00003.safetensors');
    }
    expect([...tensors.keys()].sort()).toEqual(Object.keys(manifest.tensors).sort());

    const scale = rslora ? alpha / Math.sqrt(rank) : alpha / rank;
    for (const [name, t] of tensors) {
      expect(t.info.dtype).toBe('BF16');
      const path = name.replace(/\.weight$/, '');
      const w = originals.get(name)!;
      const d = ab.get(path);
      if (!d) {
        expect(t.data, name).toEqual(bf16Bytes(w)); // copied as stored
        continue;
      }
      const [rows, cols] = t.info.shape;
      const bits = new Uint16Array(t.data.slice().buffer);
      let worst = 0;
      for (let o = 0; o < rows; o++)
        for (let i = 0; i < cols; i++) {
          let want = w[o * cols + i];
          for (let j = 0; j < rank; j++) want += scale * d.B[o * rank + j] * d.A[j * cols + i];
          const have = halfBitsToFloat(bits[o * cols + i], 'BF16');
          // one rounding to BF16 (8 bits of mantissa): within half a unit, and a unit at worst where f32 rounds first
          worst = Math.max(
            worst,
            Math.abs(have - want) / 2 ** (Math.floor(Math.log2(Math.max(Math.abs(want), 1e-30))) - 7),
          );
        }
      expect(worst, `${name}, seed ${seed}`).toBeLessThanOrEqual(1);
      expect(worst, `${name}: the delta is there`).toBeGreaterThan(0);
    }
  });

  it('refuses an adapter whose modules are not in the model, before writing anything', async () => {
    const { store, manifest, r } = storedModel(freshSeed());
    const { files } = adapter(r, 2, 4, false);
    delete manifest.tensors['model.layers.0.self_attn.o_proj.weight'];
    const written: string[] = [];
    await expect(
      exportMerged(store, manifest, files, { onFile: async (f) => void written.push(f.name) }),
    ).rejects.toThrow('the adapter adapts model.layers.0.self_attn.o_proj, which this model does not have');
    expect(written).toEqual([]); // refused before any file is written
  });
});
