// Models kept in IndexedDB (through idb-keyval), one database per model and revision, holding
// a manifest and the tensors as the GPU uses them: linear weights NF4 (packed bytes and block
// scales), the rest 16-bit, each in parts of at most PART_BYTES. Every write of tensor data
// goes in one transaction with the manifest that records it, so the store is consistent after
// any interruption: what the manifest lists is there, and a download resumes from it.
import { clear, createStore, del, delMany, get, getMany, keys, set, setMany, type UseStore } from 'idb-keyval';
import { HUB_ENDPOINT } from '../hub/hub';
import { checkEndpoint } from '../hub/token-policy';

export const PART_BYTES = 32 << 20;
const REGISTRY = createLazyStore('qlora-models', 'models');

export interface StoredTensor {
  name: string;
  /** The checkpoint file it came from. */
  shard: string;
  shape: number[];
  kind: 'nf4' | 'half';
  /** 16-bit tensors: their dtype. */
  dtype?: 'BF16' | 'F16';
  blocksize?: number;
  /** Keys of the parts in order; NF4 has its packed parts, then its absmax parts. */
  parts: string[];
  absmaxParts?: string[];
  bytes: number;
}

export interface StoredFile {
  path: string;
  size: number;
  sha256: string | null;
  kind: 'text' | 'shard';
  /** Bytes of the file consumed and stored: a resumed download asks for the rest. */
  offset: number;
  /** SHA-256 state over the bytes before `offset`, to check the whole file at its end. */
  hashState?: Uint8Array;
  /** The shard's header bytes, once read: a resumed download parses the rest with them. */
  header?: Uint8Array;
  done: boolean;
}

export interface Manifest {
  version: 1;
  key: string;
  id: string;
  revision: string;
  /** The Hub it came from; absent in models stored before endpoints were recorded (huggingface.co's). */
  endpoint?: string;
  commit: string;
  load_in_4bit: boolean;
  blocksize: number;
  files: StoredFile[];
  tensors: Record<string, StoredTensor>;
  storedBytes: number;
  downloadBytes: number;
  /** Shards that ended with a pre-quantized module's parts still to come (read again on resume). */
  pendingFrom?: string[];
  complete: boolean;
  createdAt: number;
}

/**
 * A stored model's key: its Hub, repo, revision and precision. huggingface.co's models keep the
 * key they always had (`owner/name@main`), so models stored before endpoints were recorded still
 * list and load as huggingface.co's; any other Hub's key starts with its endpoint, so a model
 * from a local or foreign Hub can never take a huggingface.co model's name.
 */
export function modelKey(id: string, revision: string, load_in_4bit = true, endpoint = HUB_ENDPOINT): string {
  const hub = checkEndpoint(endpoint);
  return `${hub === HUB_ENDPOINT ? '' : `${hub} `}${id}@${revision}${load_in_4bit ? '' : ':16bit'}`;
}

/** The Hub a stored model came from (models stored before endpoints were recorded: huggingface.co). */
export const manifestEndpoint = (m: Pick<Manifest, 'endpoint'>): string => m.endpoint ?? HUB_ENDPOINT;

export class StorageFullError extends Error {
  override name = 'StorageFullError';
}

const OPEN = new Map<string, ModelStore>();

/** One model's database. */
export class ModelStore {
  private constructor(
    readonly key: string,
    readonly db: UseStore,
  ) {}

  /** One store object per key: idb-keyval opens one connection per store object. */
  static open(key: string): ModelStore {
    let s = OPEN.get(key);
    if (!s) OPEN.set(key, (s = new ModelStore(key, createStore(`qlora-model:${key}`, 'data'))));
    return s;
  }

  manifest(): Promise<Manifest | undefined> {
    return get<Manifest>('manifest', this.db);
  }

  /** Writes tensor parts (or text files) and the manifest that lists them, in one transaction. */
  async commit(manifest: Manifest, values: [string, unknown][] = []): Promise<void> {
    try {
      await setMany([...values, ['manifest', manifest]], this.db);
      await set(this.key, { key: this.key, id: manifest.id }, REGISTRY());
    } catch (e) {
      if ((e as Error).name !== 'QuotaExceededError') throw e;
      throw new StorageFullError(
        `this browser's storage for the page is full, so ${manifest.id} cannot be stored; what was stored is ` +
          `kept: free some space (delete cached models) and resume`,
      );
    }
  }

  getMany<T>(ks: string[]): Promise<(T | undefined)[]> {
    return getMany<T>(ks, this.db);
  }

  get<T>(k: string): Promise<T | undefined> {
    return get<T>(k, this.db);
  }

  /** Drops keys no longer listed (parts of a shard being redone). */
  async drop(ks: string[]): Promise<void> {
    if (ks.length) await delMany(ks, this.db);
  }

  async allKeys(): Promise<string[]> {
    return (await keys(this.db)).map(String);
  }
}

/** The models in this origin's storage. */
export async function listModels(): Promise<Manifest[]> {
  const out: Manifest[] = [];
  for (const k of await keys(REGISTRY())) {
    const m = await ModelStore.open(String(k)).manifest();
    if (m) out.push(m);
  }
  return out.sort((a, b) => b.createdAt - a.createdAt);
}

/**
 * Removes a model: its data first, then its entry. The database itself stays, empty: idb-keyval
 * keeps its connection open, which would hold a deleteDatabase back until the page closes.
 */
export async function deleteModel(key: string): Promise<void> {
  await clear(ModelStore.open(key).db);
  await del(key, REGISTRY());
}

/** Split bytes into parts of at most PART_BYTES. */
export function splitParts(bytes: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i < bytes.length; i += PART_BYTES) out.push(bytes.slice(i, i + PART_BYTES));
  return out.length ? out : [new Uint8Array(0)];
}

/** idb-keyval stores created on first use, so importing this module touches no database. */
function createLazyStore(db: string, store: string): () => UseStore {
  let s: UseStore | null = null;
  return () => (s ??= createStore(db, store));
}
