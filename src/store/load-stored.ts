// A stored model onto the GPU: each tensor's parts are read from IndexedDB and written into
// its GPU buffer part by part (NF4 as it was quantized at download, 16-bit as it came), so
// loading needs no network and no requantization.
import type { Gpu } from '../gpu/runtime';
import { allocHalf, releaseHalf, writeHalf } from '../ops/half-matrix';
import type { NF4Weight } from '../ops/nf4';
import { GpuTensors, parseConfigText, type LoadedModel } from '../model/load';
import { ModelStore, type Manifest, type StoredTensor } from './model-store';

export class StoreError extends Error {
  override name = 'StoreError';
}

export async function loadStoredModel(
  gpu: Gpu,
  key: string,
  onTensor?: (done: number, total: number) => void,
): Promise<{ loaded: LoadedModel; manifest: Manifest; store: ModelStore }> {
  const store = ModelStore.open(key);
  const m = await store.manifest();
  if (!m) throw new StoreError(`${key} is not in this browser's storage: download it first`);
  if (!m.complete) throw new StoreError(`${m.id} is only partly downloaded: resume the download to finish it`);
  const config = parseConfigText((await store.get<string>('file:config.json'))!);
  const tensors = new GpuTensors(gpu, config, { load_in_4bit: m.load_in_4bit, blocksize: m.blocksize });
  const all = Object.values(m.tensors);
  try {
    for (const [i, t] of all.entries()) {
      if (t.kind === 'nf4') tensors.addNF4(t.name, await uploadNF4Parts(gpu, store, t));
      else {
        const h = allocHalf(gpu, t.shape, t.dtype!, tensors.maxBlockBytes);
        await writeParts(store, t.parts, (bytes, at) => writeHalf(gpu, h, bytes, at)).catch((e) => {
          releaseHalf(h);
          throw e;
        });
        tensors.addHalf(t.name, h);
      }
      onTensor?.(i + 1, all.length);
    }
    return { loaded: tensors.assemble(), manifest: m, store };
  } catch (e) {
    tensors.release();
    throw e;
  }
}

async function uploadNF4Parts(gpu: Gpu, store: ModelStore, t: StoredTensor): Promise<NF4Weight> {
  const n = t.shape[0] * t.shape[1];
  const w: NF4Weight = {
    packed: gpu.tensor([Math.ceil(n / 8)], 'u32'),
    absmax: gpu.tensor([Math.ceil(n / t.blocksize!)], 'f32'),
    shape: [t.shape[0], t.shape[1]],
    blocksize: t.blocksize!,
  };
  try {
    await writeParts(store, t.parts, (bytes, at) => gpu.write(w.packed, bytes, at));
    await writeParts(store, t.absmaxParts!, (bytes, at) => gpu.write(w.absmax, bytes, at));
  } catch (e) {
    w.packed.release();
    w.absmax.release();
    throw e;
  }
  return w;
}

/** Parts end to end, each written at its byte offset (parts are whole multiples of 4 bytes but the last). */
async function writeParts(
  store: ModelStore,
  keys: string[],
  write: (bytes: Uint8Array, at: number) => void,
): Promise<void> {
  let at = 0;
  for (const k of keys) {
    const part = await store.get<Uint8Array>(k);
    if (!part) throw new StoreError(`the store lacks ${k}: it is damaged; delete the model and download it again`);
    const data = part.length % 4 ? new Uint8Array(part.length + 4 - (part.length % 4)) : part;
    if (data !== part) data.set(part);
    write(data, at);
    at += part.length;
  }
}
