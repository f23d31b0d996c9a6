// The page's model store, in Node: IndexedDB from fake-indexeddb, the Hub from the local test
// hub, the GPU from Dawn. A model streams into the store quantized, loads back to the same
// logits as loading the checkpoint directly, resumes after a dropped connection to a
// byte-identical store, and refuses a corrupt shard or too little quota, staying consistent.
import 'fake-indexeddb/auto';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gpu } from '../../src/gpu/runtime';
import { buildModel, loadCheckpoint, type LoadedModel } from '../../src/model/load';
import { localCheckpoint } from '../../src/node/local-files';
import { downloadModel, QuotaError } from '../../src/store/download';
import { loadStoredModel } from '../../src/store/load-stored';
import { deleteModel, listModels, manifestEndpoint, modelKey, ModelStore } from '../../src/store/model-store';
import { testGpu } from '../gpu';
import { startHub, type TestHub } from '../fixtures/hub-server';
import { writeTinyCheckpoint } from '../fixtures/tiny-checkpoint';

let gpu: Gpu;
let root: string;
let hub: TestHub;
const SHARD1 = 'model-00001-of-00002.safetensors';
const SHARD2 = 'model-00002-of-00002.safetensors';
const ids = ['clean', 'resumed', 'corrupt', 'small', 'header', 'missing'].map((n) => `tiny-random/${n}`);

beforeAll(async () => {
  gpu = await testGpu();
  root = await mkdtemp(join(tmpdir(), 'store-'));
  await writeTinyCheckpoint(join(root, 'llama'), 'llama', 3);
  hub = await startHub(ids.map((id) => ({ type: 'model' as const, id, dir: join(root, 'llama') })));
});
afterAll(() => hub.close());

/** A model's key in the store: the local test Hub is part of it. */
const keyOf = (id: string) => modelKey(id, 'main', true, hub.url);

async function logitsOf(loaded: LoadedModel): Promise<Float32Array> {
  const model = buildModel(gpu, loaded);
  const c = loaded.config;
  const T = 9;
  const batch = {
    ids: gpu.tensor(
      [T],
      'u32',
      Uint32Array.from({ length: T }, (_, i) => (i * 37) % c.vocab),
    ),
    labels: gpu.tensor([T], 'i32', new Int32Array(T).fill(-100)),
    positions: gpu.tensor(
      [T],
      'u32',
      Uint32Array.from({ length: T }, (_, i) => i),
    ),
    start: gpu.tensor([T], 'u32', new Uint32Array(T)),
  };
  return gpu.read(model.logits(batch));
}

/** Every value in a model's database, manifest aside, by key. */
async function contents(key: string): Promise<Map<string, string>> {
  const store = ModelStore.open(key);
  const ks = (await store.allKeys()).filter((k) => k !== 'manifest').sort();
  const values = await store.getMany<Uint8Array | string>(ks);
  return new Map(
    ks.map((k, i) => [
      k,
      typeof values[i] === 'string' ? (values[i] as string) : Buffer.from(values[i] as Uint8Array).toString('base64'),
    ]),
  );
}

describe('the model store', () => {
  it('streams a model in as NF4 and loads it back to the logits of loading the checkpoint directly', async () => {
    const progress: number[] = [];
    const m = await downloadModel(gpu, ids[0], { endpoint: hub.url, onProgress: (p) => progress.push(p.done) });
    expect(m.complete).toBe(true);
    expect(progress.at(-1)).toBe(m.downloadBytes);
    expect(Object.values(m.tensors).filter((t) => t.kind === 'nf4').length).toBe(2 * 7);
    const stored = await loadStoredModel(gpu, m.key);
    const direct = await loadCheckpoint(gpu, localCheckpoint(join(root, 'llama')), { load_in_4bit: true });
    const [a, b] = [await logitsOf(stored.loaded), await logitsOf(direct)];
    expect(Array.from(a)).toEqual(Array.from(b));
    // a second call finds it complete and asks the Hub nothing
    const before = hub.log.length;
    await downloadModel(gpu, ids[0], { endpoint: hub.url });
    expect(hub.log.length).toBe(before);
    expect((await listModels()).map((x) => x.id)).toContain(ids[0]);
  });

  it("keys a model by its Hub: another Hub's model never takes huggingface.co's name; old keys stay", async () => {
    expect(keyOf(ids[0])).toBe(`${hub.url} ${ids[0]}@main`);
    expect(modelKey(ids[0], 'main')).toBe(`${ids[0]}@main`); // huggingface.co's: the key models always had
    expect(modelKey(ids[0], 'main', true, 'https://huggingface.co/')).toBe(`${ids[0]}@main`);
    expect(() => modelKey(ids[0], 'main', true, 'http://hub.example.com')).toThrow(/plain http:\/\/.*use https:\/\//);
    const m = (await ModelStore.open(keyOf(ids[0])).manifest())!;
    expect(m).toMatchObject({ key: keyOf(ids[0]), endpoint: hub.url });
    expect(await ModelStore.open(modelKey(ids[0], 'main')).manifest()).toBeUndefined();
    // a model stored before endpoints were recorded: its old key and a manifest without one
    const legacy = ModelStore.open(modelKey('tiny-random/legacy', 'main'));
    const { endpoint: _dropped, ...old } = m;
    const keys = (await ModelStore.open(m.key).allKeys()).filter((k) => k !== 'manifest');
    const values = await ModelStore.open(m.key).getMany(keys);
    await legacy.commit(
      { ...old, key: legacy.key, id: 'tiny-random/legacy' },
      keys.map((k, i) => [k, values[i]]),
    );
    const listed = (await listModels()).map((x) => [x.key, manifestEndpoint(x)]);
    expect(listed).toContainEqual(['tiny-random/legacy@main', 'https://huggingface.co']);
    expect(listed).toContainEqual([keyOf(ids[0]), hub.url]);
    const back = await loadStoredModel(gpu, legacy.key);
    const again = (await loadStoredModel(gpu, m.key)).loaded;
    expect(Array.from(await logitsOf(back.loaded))).toEqual(Array.from(await logitsOf(again)));
    await deleteModel(legacy.key);
  });

  it('resumes a connection dropped mid-shard from the last stored tensor, to a byte-identical store', async () => {
    hub.fault(SHARD2, { kind: 'drop', after: 20000, times: 1 });
    const start = hub.log.length;
    await downloadModel(gpu, ids[1], { endpoint: hub.url, backoff: 10 });
    hub.clearFaults();
    const requests = hub.log.slice(start).filter((l) => l.includes(SHARD2));
    expect(requests.length).toBe(2);
    expect(requests[1]).toMatch(/bytes=\d+-$/);
    const resumedAt = Number(requests[1].match(/bytes=(\d+)-/)![1]);
    expect(resumedAt).toBeGreaterThan(0);
    expect(resumedAt).toBeLessThanOrEqual(20000); // at a tensor boundary at or before the drop
    expect(await contents(keyOf(ids[1]))).toEqual(await contents(keyOf(ids[0])));
  });

  it('a download stopped and started again later resumes from the store', async () => {
    hub.fault(SHARD1, { kind: 'drop', after: 60000 }); // every time: the first attempt gives up
    await expect(downloadModel(gpu, ids[3], { endpoint: hub.url, backoff: 1, retries: 1 })).rejects.toThrow(
      /failed at byte 60000/,
    );
    const partial = (await ModelStore.open(keyOf(ids[3])).manifest())!;
    expect(partial.complete).toBe(false);
    const stored = partial.files.find((f) => f.path === SHARD1)!.offset;
    expect(stored).toBeGreaterThan(0);
    hub.clearFaults();
    const start = hub.log.length;
    await downloadModel(gpu, ids[3], { endpoint: hub.url });
    expect(hub.log.slice(start).find((l) => l.includes(SHARD1))).toBe(`${ids[3]}/${SHARD1} bytes=${stored}-`);
    expect(await contents(keyOf(ids[3]))).toEqual(await contents(keyOf(ids[0])));
  });

  it('discards a corrupt shard with a clear message, keeping the store consistent', async () => {
    hub.fault(SHARD2, { kind: 'corrupt', at: 30000, times: 1 });
    await expect(downloadModel(gpu, ids[2], { endpoint: hub.url })).rejects.toThrow(
      /model-00002-of-00002.safetensors is corrupt/,
    );
    const m = (await ModelStore.open(keyOf(ids[2])).manifest())!;
    const shard = m.files.find((f) => f.path === SHARD2)!;
    expect(shard).toMatchObject({ offset: 0, done: false });
    // what the manifest lists is exactly what the database holds
    const listed = Object.values(m.tensors).flatMap((t) => [...t.parts, ...(t.absmaxParts ?? [])]);
    const held = [...(await contents(m.key)).keys()].filter((k) => k.startsWith('t:'));
    expect(held.sort()).toEqual(listed.sort());
    hub.clearFaults();
    await downloadModel(gpu, ids[2], { endpoint: hub.url });
    expect(await contents(m.key)).toEqual(await contents(keyOf(ids[0])));
    await deleteModel(m.key);
    expect((await listModels()).map((x) => x.id)).not.toContain(ids[2]);
  });

  it('refuses a corrupt shard header and a missing file clearly', async () => {
    hub.fault(SHARD1, { kind: 'corrupt', at: 12, times: 1 }); // inside the header's JSON
    const header = downloadModel(gpu, ids[4], { endpoint: hub.url });
    await expect(header).rejects.toThrow(/model-00001-of-00002.safetensors.*header/);
    const m = (await ModelStore.open(keyOf(ids[4])).manifest())!;
    expect(m.files.find((f) => f.path === SHARD1)).toMatchObject({ offset: 0, done: false });
    expect(Object.keys(m.tensors)).toEqual([]);
    hub.fault('tokenizer.json', { kind: 'status', status: 404, times: 1 });
    await expect(downloadModel(gpu, ids[5], { endpoint: hub.url })).rejects.toThrow(
      /tokenizer.json.* was not found on the Hub \(404\)/,
    );
    hub.clearFaults();
    await downloadModel(gpu, ids[4], { endpoint: hub.url });
    expect(await contents(keyOf(ids[4]))).toEqual(await contents(keyOf(ids[0])));
  });

  it('refuses a model larger than the free quota before any weights are fetched', async () => {
    const start = hub.log.length;
    const key = modelKey('tiny-random/small', 'main', false, hub.url);
    await expect(
      downloadModel(gpu, 'tiny-random/small', { endpoint: hub.url, load_in_4bit: false, freeBytes: async () => 1000 }),
    ).rejects.toThrow(QuotaError);
    expect(hub.log.slice(start).map((l) => l.split(' ')[0])).toEqual(['tiny-random/small/config.json']); // nothing else
    expect(await ModelStore.open(key).manifest()).toBeUndefined(); // nothing stored
  });
});
