// A Hub model into the store, streamed: each shard's header is parsed as soon as its bytes
// arrive, each tensor is taken as it completes, linear weights are quantized to NF4 on the GPU
// as they arrive, and every tensor is written to IndexedDB with the manifest that records it.
// No shard is ever held whole. An interrupted download resumes with a Range request at the end
// of the last stored tensor, the shard's SHA-256 state restored, so the whole file is still
// checked; a file that fails its check is discarded from the store, never kept.
import type { Gpu } from '../gpu/runtime';
import {
  checkShardAgainstIndex,
  parseHeader,
  parseShardIndex,
  readSafetensors,
  type ShardIndex,
  type TensorInfo,
} from '../formats/safetensors';
import { fileUrl, HubError, repoSnapshot, type RepoFile, type RepoSnapshot } from '../hub/hub';
import { modelFiles } from '../hub/select';
import { Checksum, fetchWhole, fileBytes, verifySha256, type TransferOptions } from '../hub/transfer';
import { GpuTensors, parseConfigText } from '../model/load';
import { readHalf } from '../ops/half-matrix';
import { readNF4Bytes } from '../ops/nf4';
import { estimateStoreBytes, formatBytes } from '../model/estimate';
import { HUB_ENDPOINT } from '../hub/hub';
import { checkEndpoint } from '../hub/token-policy';
import { modelKey, ModelStore, splitParts, type Manifest, type StoredFile, type StoredTensor } from './model-store';

export interface DownloadProgress {
  file: string;
  /** Bytes received across the whole download, of `total`. */
  done: number;
  total: number;
  bytesPerSecond: number;
}

export interface DownloadOptions extends TransferOptions {
  revision?: string;
  load_in_4bit?: boolean;
  blocksize?: number;
  onProgress?: (p: DownloadProgress) => void;
  /** Free bytes in this origin's storage (by default from `storage`'s estimate, where there is one). */
  freeBytes?: () => Promise<number | null>;
  /** The browser's storage manager (navigator.storage, passed by the page's worker): the quota. */
  storage?: Pick<StorageManager, 'estimate'>;
}

export class QuotaError extends Error {
  override name = 'QuotaError';
}

/** Downloads what is missing of a model; resolves to its complete manifest. */
export async function downloadModel(gpu: Gpu, id: string, o: DownloadOptions = {}): Promise<Manifest> {
  const revision = o.revision ?? 'main';
  const load_in_4bit = o.load_in_4bit ?? true;
  // part of the key: a foreign Hub's model never takes a trusted name
  const endpoint = checkEndpoint(o.endpoint ?? HUB_ENDPOINT);
  const store = ModelStore.open(modelKey(id, revision, load_in_4bit, endpoint));
  let m = await store.manifest();
  if (m?.complete) return m;
  const snapshot = await repoSnapshot(id, 'model', { ...o, revision });
  const files = modelFiles(snapshot.files, id);
  if (!m || m.commit !== snapshot.commit) {
    if (m) await store.drop((await store.allKeys()).filter((k) => k !== 'manifest')); // the revision moved: start over
    m = {
      version: 1,
      key: store.key,
      id,
      revision,
      endpoint,
      commit: snapshot.commit,
      load_in_4bit,
      blocksize: o.blocksize ?? 64,
      files: files.map((f) => ({
        path: f.path,
        size: f.size,
        sha256: f.sha256,
        kind: f.path.endsWith('.safetensors') ? 'shard' : 'text',
        offset: 0,
        done: false,
      })),
      tensors: {},
      storedBytes: 0,
      downloadBytes: files.reduce((n, f) => n + f.size, 0),
      complete: false,
      createdAt: Date.now(),
    };
  }
  const manifest = m;
  const t0 = performance.now();
  let received = manifest.files.reduce((n, f) => n + f.offset, 0);
  const startedAt = received;
  const progress = (file: string) =>
    o.onProgress?.({
      file,
      done: received,
      total: manifest.downloadBytes,
      bytesPerSecond: (received - startedAt) / Math.max(1e-3, (performance.now() - t0) / 1000),
    });

  // before anything is stored: config.json says how much the store will hold
  const stored = await store.get<string>('file:config.json');
  const configText = stored ?? (await fetchText(snapshot, manifest.files.find((f) => f.path === 'config.json')!, o));
  const config = parseConfigText(configText);
  const textBytes = manifest.files.filter((f) => f.kind === 'text' && !f.done).reduce((n, f) => n + f.size, 0);
  const need = estimateStoreBytes(config, load_in_4bit) + textBytes - manifest.storedBytes;
  const free = await (o.freeBytes ?? (() => freeStorageBytes(o.storage)))();
  if (free !== null && need > free) {
    throw new QuotaError(
      `${id} needs ${formatBytes(need)} of storage and this browser allows ${formatBytes(free)} more: free some ` +
        `space (delete cached models) or pick a smaller model`,
    );
  }
  for (const f of manifest.files.filter((x) => x.kind === 'text' && !x.done)) {
    const text = f.path === 'config.json' ? configText : await fetchText(snapshot, f, o);
    f.offset = f.size;
    f.done = true;
    received += f.size;
    await store.commit(manifest, [[`file:${f.path}`, text]]);
    progress(f.path);
  }

  const indexText = await store.get<string>('file:model.safetensors.index.json');
  const index = indexText ? parseShardIndex(indexText) : null;
  const order = shardOrder(manifest, index);
  const tensors = new GpuTensors(gpu, config, { load_in_4bit, blocksize: manifest.blocksize });
  // A pre-quantized module's parts may span shards and are held in memory until whole: a
  // download resumed in a new session must read again the shards that left parts pending.
  for (const path of manifest.pendingFrom ?? []) {
    const f = manifest.files.find((x) => x.path === path)!;
    Object.assign(f, { offset: 0, hashState: undefined, header: undefined, done: false });
    for (const t of Object.values(manifest.tensors)) {
      if (t.shard !== path) continue;
      manifest.storedBytes -= t.bytes;
      delete manifest.tensors[t.name];
    }
  }
  manifest.pendingFrom = [];
  try {
    for (const f of order) {
      if (f.done) continue;
      await downloadShard(gpu, store, manifest, snapshot, f, tensors, index, o, (n) => {
        received += n;
        progress(f.path);
      });
      if (tensors.pendingParts) manifest.pendingFrom.push(f.path);
    }
    const missing = tensors.missing(Object.keys(manifest.tensors));
    if (missing.length)
      throw new HubError(
        `${id}'s shards lack ${missing.length} tensor(s) the config needs, e.g. ${missing[0]}: the checkpoint ` +
          `is incomplete`,
      );
  } finally {
    tensors.release();
  }
  manifest.complete = true;
  manifest.pendingFrom = [];
  await store.commit(manifest);
  return manifest;
}

async function downloadShard(
  gpu: Gpu,
  store: ModelStore,
  m: Manifest,
  snapshot: RepoSnapshot,
  f: StoredFile,
  tensors: GpuTensors,
  index: ShardIndex | null,
  o: DownloadOptions,
  onBytes: (n: number) => void,
): Promise<void> {
  const file: RepoFile = { path: f.path, size: f.size, sha256: f.sha256 };
  const sum = await Checksum.create(f.hashState);
  const resume =
    f.header && f.offset > 0 ? { header: parseHeader(f.header, f.size, f.path), offset: f.offset } : undefined;
  if (!resume && f.offset > 0) f.offset = 0; // nothing usable stored yet
  const url = fileUrl(snapshot, f.path, o);
  const source = fileBytes(url, file, f.offset, o);
  let counted = f.offset;
  try {
    for await (const { info, data } of readSafetensors(source, {
      fileSize: f.size,
      file: f.path,
      resume,
      // the whole header is checked (against the index and the config) before any tensor's bytes are read
      onHeader: (h, bytes) => {
        if (index) checkShardAgainstIndex(index, f.path, h);
        tensors.checkHeader(h, f.path);
        f.header = bytes;
      },
      onBytes: (bytes) => {
        sum.update(bytes);
        counted += bytes.length;
        onBytes(bytes.length);
      },
    })) {
      const values = await storedForm(gpu, tensors, info, data, f.path, m);
      // a resumable point: the parts of a pre-quantized module stay in memory until it is whole
      if (tensors.pendingParts === 0) {
        f.offset = counted;
        f.hashState = sum.save();
      }
      await store.commit(m, values);
    }
    verifySha256(file, sum.hex(), url);
  } catch (e) {
    if (e instanceof HubError && /is corrupt/.test(e.message)) await discardShard(store, m, f);
    else if ((e as Error).name === 'SafetensorsError' || (e as Error).name === 'CheckpointError')
      await discardShard(store, m, f);
    throw e;
  }
  f.done = true;
  await store.commit(m);
}

/** A tensor as the store keeps it: NF4 bytes read back from the GPU quantizer, or 16-bit. */
async function storedForm(
  gpu: Gpu,
  tensors: GpuTensors,
  info: TensorInfo,
  data: Uint8Array,
  file: string,
  m: Manifest,
): Promise<[string, unknown][]> {
  const name = await tensors.add(info, data, file);
  if (name === null) return [];
  try {
    return await readBack(gpu, tensors, name, info, file, m);
  } finally {
    tensors.release(); // the GPU copy was only for quantizing: the model loads from the store
  }
}

async function readBack(
  gpu: Gpu,
  tensors: GpuTensors,
  name: string,
  info: TensorInfo,
  file: string,
  m: Manifest,
): Promise<[string, unknown][]> {
  const frozen = tensors.frozen(name);
  const half = tensors.half(name);
  const values: [string, unknown][] = [];
  let t: StoredTensor;
  if (frozen?.kind === 'nf4') {
    const packed = splitParts(await readNF4Bytes(gpu, frozen.w));
    const absmax = splitParts(new Uint8Array(await gpu.readBytes(frozen.w.absmax)));
    t = {
      name,
      shard: file,
      shape: frozen.w.shape,
      kind: 'nf4',
      blocksize: frozen.w.blocksize,
      parts: packed.map((_, i) => `t:${name}:packed:${i}`),
      absmaxParts: absmax.map((_, i) => `t:${name}:absmax:${i}`),
      bytes: packed.reduce((n, p) => n + p.length, 0) + absmax.reduce((n, p) => n + p.length, 0),
    };
    for (const [i, p] of packed.entries()) values.push([t.parts[i], p]);
    for (const [i, p] of absmax.entries()) values.push([t.absmaxParts![i], p]);
  } else {
    const h = frozen?.kind === 'half' ? frozen.w : half!;
    const bytes = await readHalf(gpu, h);
    const parts = splitParts(bytes);
    t = {
      name,
      shard: file,
      shape: info.shape,
      kind: 'half',
      dtype: h.dtype,
      parts: parts.map((_, i) => `t:${name}:half:${i}`),
      bytes: bytes.length,
    };
    for (const [i, p] of parts.entries()) values.push([t.parts[i], p]);
  }
  m.tensors[name] = t;
  m.storedBytes += t.bytes;
  return values;
}

/** Forget everything stored of a shard: its next download starts at byte 0. */
async function discardShard(store: ModelStore, m: Manifest, f: StoredFile): Promise<void> {
  const header = f.header ? parseHeader(f.header, f.size, f.path) : null;
  const names = new Set(header?.tensors.map((t) => t.name) ?? []);
  const dropped: string[] = [];
  for (const t of Object.values(m.tensors)) {
    if (!names.has(t.name)) continue;
    dropped.push(...t.parts, ...(t.absmaxParts ?? []));
    m.storedBytes -= t.bytes;
    delete m.tensors[t.name];
  }
  Object.assign(f, { offset: 0, hashState: undefined, header: undefined, done: false });
  await store.commit(m);
  await store.drop(dropped);
}

async function fetchText(snapshot: RepoSnapshot, f: StoredFile, o: TransferOptions): Promise<string> {
  return new TextDecoder().decode(await fetchWhole(fileUrl(snapshot, f.path, o), f, o));
}

/** Shards in the index's order (or the one model.safetensors). */
function shardOrder(m: Manifest, index: ShardIndex | null): StoredFile[] {
  const shards = m.files.filter((f) => f.kind === 'shard');
  if (!index) return shards;
  const names = [...index.shards.keys()];
  const missing = names.filter((n) => !shards.some((s) => s.path === n));
  if (missing.length) throw new HubError(`the shard index names ${missing.join(', ')}, which the repo does not have`);
  return names.map((n) => shards.find((s) => s.path === n)!);
}

/** What the storage manager says is free for this origin; null where it says nothing. */
export async function freeStorageBytes(storage?: Pick<StorageManager, 'estimate'>): Promise<number | null> {
  const e = await storage?.estimate();
  return e?.quota !== undefined ? e.quota - (e.usage ?? 0) : null;
}
