// Pre-quantized bitsandbytes 4-bit checkpoints: the tiny bnb-4bit fixture (written in
// bitsandbytes' serialized layout by our CPU quantizer) loads straight into NF4 buffers and
// gives exactly the logits of quantizing its 16-bit twin with double quantization, directly
// and through the page's store; broken ones are refused by name.
import 'fake-indexeddb/auto';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readSafetensorsSync, writeSafetensors } from '../../src/formats/safetensors';
import type { Gpu } from '../../src/gpu/runtime';
import { buildModel, loadCheckpoint, type LoadedModel } from '../../src/model/load';
import { localCheckpoint } from '../../src/node/local-files';
import { downloadModel } from '../../src/store/download';
import { loadStoredModel } from '../../src/store/load-stored';
import { testGpu } from '../gpu';
import { startHub, type TestHub } from '../fixtures/hub-server';
import { writeTinyCheckpoint } from '../fixtures/tiny-checkpoint';

let gpu: Gpu;
let root: string;
let hub: TestHub;

beforeAll(async () => {
  gpu = await testGpu();
  root = await mkdtemp(join(tmpdir(), 'bnb-'));
  await writeTinyCheckpoint(join(root, 'twin'), 'llama', 3);
  await writeTinyCheckpoint(join(root, 'bnb'), 'llama', 3, { bnb4bit: true });
  hub = await startHub([{ type: 'model', id: 'tiny-random/llama-bnb-4bit', dir: join(root, 'bnb') }]);
});
afterAll(() => hub.close());

async function logitsOf(loaded: LoadedModel): Promise<number[]> {
  const model = buildModel(gpu, loaded);
  const c = loaded.config;
  const T = 11;
  const b = {
    ids: gpu.tensor(
      [T],
      'u32',
      Uint32Array.from({ length: T }, (_, i) => (i * 53 + 7) % c.vocab),
    ),
    labels: gpu.tensor([T], 'i32', new Int32Array(T).fill(-100)),
    positions: gpu.tensor(
      [T],
      'u32',
      Uint32Array.from({ length: T }, (_, i) => i),
    ),
    start: gpu.tensor([T], 'u32', new Uint32Array(T)),
  };
  return Array.from(await gpu.read(model.logits(b)));
}

describe('bitsandbytes 4-bit checkpoints', () => {
  it('load without requantizing, to the logits of quantizing the 16-bit twin (double quantization)', async () => {
    const bnb = await loadCheckpoint(gpu, localCheckpoint(join(root, 'bnb')), { load_in_4bit: true });
    expect(bnb.config.prequantized).toEqual({ quantType: 'nf4', doubleQuant: true, skipModules: [] });
    const twin = await loadCheckpoint(gpu, localCheckpoint(join(root, 'twin')), { load_in_4bit: true, nested: true });
    const plain = await loadCheckpoint(gpu, localCheckpoint(join(root, 'twin')), { load_in_4bit: true });
    const [a, b, c] = [await logitsOf(bnb), await logitsOf(twin), await logitsOf(plain)];
    expect(a).toEqual(b);
    expect(a).not.toEqual(c); // double quantization does change the weights a little
  });

  it('keep llm_int8_skip_modules 16-bit, as transformers does for dynamic 4-bit uploads', async () => {
    const kept = 'model.layers.0.mlp.down_proj';
    const dir = join(root, 'dynamic');
    await writeTinyCheckpoint(dir, 'llama', 3, { bnb4bit: true, bnbSkip: [kept] });
    const loaded = await loadCheckpoint(gpu, localCheckpoint(dir), { load_in_4bit: true });
    expect(loaded.config.prequantized).toEqual({ quantType: 'nf4', doubleQuant: true, skipModules: ['lm_head', kept] });
    const kinds = Object.fromEntries(loaded.linears.map((l) => [l.path, l.base.kind]));
    expect(kinds[kept]).toBe('half');
    expect(Object.values(kinds).filter((k) => k === 'half').length).toBe(1);
    // its bytes are the checkpoint's bf16 weight, not requantized to NF4
    const base = loaded.linears.find((l) => l.path === kept)!.base;
    if (base.kind !== 'half') throw new Error('not 16-bit');
    const words = await gpu.read(base.w.blocks[0].words);
    const file = readSafetensorsSync(new Uint8Array(await readFile(join(dir, 'model-00001-of-00002.safetensors'))))
      .concat(readSafetensorsSync(new Uint8Array(await readFile(join(dir, 'model-00002-of-00002.safetensors')))))
      .find((t) => t.info.name === `${kept}.weight`)!;
    expect(file.info.dtype).toBe('BF16');
    expect(new Uint8Array(words.buffer, 0, file.data.length)).toEqual(file.data);
    // and the model differs from the all-4-bit one by that layer alone
    const all4 = await loadCheckpoint(gpu, localCheckpoint(join(root, 'bnb')), { load_in_4bit: true });
    expect(await logitsOf(loaded)).not.toEqual(await logitsOf(all4));
  });

  it('stream into the page store as they are, and load back to the same logits', async () => {
    const m = await downloadModel(gpu, 'tiny-random/llama-bnb-4bit', { endpoint: hub.url });
    const stored = await loadStoredModel(gpu, m.key);
    const direct = await loadCheckpoint(gpu, localCheckpoint(join(root, 'bnb')), { load_in_4bit: true });
    expect(await logitsOf(stored.loaded)).toEqual(await logitsOf(direct));
  });

  it('refuse a missing part, a foreign quant_map, fp4 and 8-bit, by name', async () => {
    const dir = join(root, 'broken');
    await writeTinyCheckpoint(dir, 'llama', 3, { bnb4bit: true });
    const shard = join(dir, 'model-00002-of-00002.safetensors');
    const original = await readFile(shard);
    const tensors = readSafetensorsSync(new Uint8Array(original));
    const rewrite = (f: (t: typeof tensors) => typeof tensors) =>
      writeFile(
        shard,
        writeSafetensors(
          f(tensors).map(({ info, data }) => ({ name: info.name, dtype: info.dtype, shape: info.shape, data })),
        ),
      );
    const map = tensors.find((t) => t.info.name.endsWith('.quant_map'))!;
    await rewrite((ts) => ts.filter((t) => t !== map));
    await expect(loadCheckpoint(gpu, localCheckpoint(dir), { load_in_4bit: true })).rejects.toThrow(
      new RegExp(
        'places 1 tensor\\(s\\) in model-00002-of-00002.safetensors that its header does not hold, ' +
          'e.g. model\\.layers\\.\\d\\.\\w+\\.\\w+_proj\\.weight\\.quant_map',
      ),
    );
    const wrong = new Float32Array(16).fill(0.5);
    await rewrite((ts) => ts.map((t) => (t === map ? { info: t.info, data: new Uint8Array(wrong.buffer) } : t)));
    await expect(loadCheckpoint(gpu, localCheckpoint(dir), { load_in_4bit: true })).rejects.toThrow(
      /quant_map is not bitsandbytes' NF4 code/,
    );
    await expect(loadCheckpoint(gpu, localCheckpoint(join(root, 'bnb')), { load_in_4bit: false })).rejects.toThrow(
      /bitsandbytes 4-bit already/,
    );
    const config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8'));
    await writeFile(
      join(dir, 'config.json'),
      JSON.stringify({ ...config, quantization_config: { ...config.quantization_config, bnb_4bit_quant_type: 'fp4' } }),
    );
    await expect(loadCheckpoint(gpu, localCheckpoint(dir), { load_in_4bit: true })).rejects.toThrow(
      /bnb_4bit_quant_type is "fp4"; only nf4/,
    );
    await writeFile(
      join(dir, 'config.json'),
      JSON.stringify({ ...config, quantization_config: { quant_method: 'bitsandbytes', load_in_8bit: true } }),
    );
    await expect(loadCheckpoint(gpu, localCheckpoint(dir), { load_in_4bit: true })).rejects.toThrow(
      /bitsandbytes 8-bit/,
    );
  });
});
