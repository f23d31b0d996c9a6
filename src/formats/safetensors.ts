// safetensors: strict parsing, streamed reading and writing.
//
//   [u64 little-endian N][N bytes of JSON header, space-padded][data]
//   header: { "__metadata__"?: {string: string}, "<name>": { dtype, shape, data_offsets: [begin, end] } }
//   offsets are relative to the start of the data section.
//
// Everything a file claims is checked before it is trusted: the header length is bounded, the
// JSON is an object of well-formed entries with known dtypes, each tensor's byte length is its
// shape times its dtype size, and tensors lie inside the data without overlapping.
import { showValue } from './show';
import { halfBitsToFloat } from '../quant/half';
import { streamChunks } from './streams';

export type Dtype = 'F32' | 'F16' | 'BF16' | 'U8' | 'I8' | 'I32' | 'I64';

export const DTYPE_BYTES: Record<Dtype, number> = { F32: 4, F16: 2, BF16: 2, U8: 1, I8: 1, I32: 4, I64: 8 };

/** The safetensors library's own bound on the header. */
export const MAX_HEADER_BYTES = 100_000_000;

export interface TensorInfo {
  name: string;
  dtype: Dtype;
  shape: number[];
  /** Byte range within the data section. */
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  /** Where the data section starts in the file: 8 + header length. */
  dataOffset: number;
  /** Sorted by position in the file. */
  tensors: TensorInfo[];
  metadata: Record<string, string>;
}

export class SafetensorsError extends Error {
  override name = 'SafetensorsError';
}

/** The header length from the first 8 bytes, checked against the bound and the file size. */
export function headerLength(first8: Uint8Array, fileSize?: number, file = 'the file'): number {
  if (first8.length < 8)
    throw new SafetensorsError(`${file} is ${first8.length} bytes long: too short to be safetensors`);
  const n = new DataView(first8.buffer, first8.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES)) {
    throw new SafetensorsError(
      `${file} claims a ${n}-byte header, over the ${MAX_HEADER_BYTES}-byte limit: it is not safetensors, or it ` +
        `is corrupt`,
    );
  }
  const len = Number(n);
  if (fileSize !== undefined && 8 + len > fileSize) {
    throw new SafetensorsError(
      `${file} claims a ${len}-byte header but is only ${fileSize} bytes long: it is truncated`,
    );
  }
  return len;
}

/**
 * Parse and validate the header. `bytes` holds at least the first 8 + N bytes of the file;
 * with `fileSize`, tensors must also end inside the file.
 */
export function parseHeader(bytes: Uint8Array, fileSize?: number, file = 'the file'): SafetensorsHeader {
  const n = headerLength(bytes, fileSize, file);
  if (bytes.length < 8 + n)
    throw new SafetensorsError(`${file}: the header needs ${8 + n} bytes, only ${bytes.length} arrived`);
  const bad = (what: string) => new SafetensorsError(`${file}: ${what}`);
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + n)));
  } catch (e) {
    throw bad(`the header is not valid UTF-8 JSON (${(e as Error).message}); the file is corrupt`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw bad('the header is not a JSON object');
  const metadata: Record<string, string> = {};
  const tensors: TensorInfo[] = [];
  for (const [name, entry] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
        throw bad('__metadata__ is not an object of strings');
      }
      for (const [k, v] of Object.entries(entry)) {
        if (typeof v !== 'string') {
          throw bad(`__metadata__[${showValue(k)}] is ${showValue(v)}; __metadata__ must map strings to strings`);
        }
        metadata[k] = v;
      }
      continue;
    }
    tensors.push(parseEntry(name, entry, bad));
  }
  tensors.sort((a, b) => a.begin - b.begin || a.end - b.end);
  for (let i = 1; i < tensors.length; i++) {
    if (tensors[i].begin < tensors[i - 1].end) {
      throw bad(`tensors ${nameOf(tensors[i - 1].name)} and ${nameOf(tensors[i].name)} overlap`);
    }
  }
  const dataOffset = 8 + n;
  if (fileSize !== undefined) {
    // as the safetensors library requires: the data section is exactly the tensors' bytes, so
    // the size the listing (or the file system) gives must agree with the header
    const last = tensors[tensors.length - 1];
    const end = dataOffset + (last?.end ?? 0);
    if (end > fileSize) {
      throw bad(
        `tensor ${nameOf(last.name)} ends at byte ${end}, past the end of the ${fileSize}-byte file: ` +
          `it is truncated`,
      );
    }
    if (end < fileSize) {
      throw bad(
        `the header accounts for ${end} bytes but the file is ${fileSize} bytes long: it is corrupt, ` +
          `or its listed size is wrong`,
      );
    }
  }
  return { dataOffset, tensors, metadata };
}

/**
 * A name from a file (a tensor, a module, a zip entry) for a message: as it is when it is made of
 * the characters names are made of, else quoted with its control characters escaped, cut short.
 * What reaches a terminal is never an escape sequence.
 */
export function nameOf(name: string, max = 200): string {
  return /^[\w.\-/]{1,200}$/.test(name) ? name : showValue(name, max);
}

/** Dimensions a tensor may have; PyTorch's own limit is 64, real checkpoints use at most 4. */
const MAX_RANK = 8;

function parseEntry(name: string, entry: unknown, bad: (what: string) => SafetensorsError): TensorInfo {
  const q = nameOf(name);
  if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) throw bad(`entry ${q} is not an object`);
  const { dtype, shape, data_offsets: offsets } = entry as Record<string, unknown>;
  if (typeof dtype !== 'string' || !Object.hasOwn(DTYPE_BYTES, dtype)) {
    throw bad(`tensor ${q} has dtype ${showValue(dtype)}; supported: ${Object.keys(DTYPE_BYTES).join(', ')}`);
  }
  const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
  if (!Array.isArray(shape) || shape.length > MAX_RANK || !shape.every(isCount)) {
    throw bad(`tensor ${q} has a malformed shape ${showValue(shape)}: a list of at most ${MAX_RANK} integers ≥ 0`);
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount) || offsets[1] < offsets[0]) {
    const shown = showValue(offsets);
    throw bad(`tensor ${q} has malformed data_offsets ${shown}: [begin, end], integers with begin ≤ end`);
  }
  // exact arithmetic: a product of safe integers can pass 2^53 and round to a matching span
  const bytes = shape.reduce((a: bigint, b: number) => a * BigInt(b), 1n) * BigInt(DTYPE_BYTES[dtype as Dtype]);
  if (BigInt(offsets[1] - offsets[0]) !== bytes) {
    throw bad(
      `tensor ${q} [${shape.join(', ')}] ${dtype} needs ${bytes} bytes, ` +
        `its data_offsets span ${offsets[1] - offsets[0]}`,
    );
  }
  return { name, dtype: dtype as Dtype, shape: shape as number[], begin: offsets[0], end: offsets[1] };
}

type Chunks = AsyncIterable<Uint8Array> | ReadableStream<Uint8Array>;

async function* chunksOf(source: Chunks): AsyncGenerator<Uint8Array> {
  if (Symbol.asyncIterator in source) yield* source as AsyncIterable<Uint8Array>;
  else yield* streamChunks(source as ReadableStream<Uint8Array>);
}

/** Bytes received and not yet consumed, kept as the chunks they came in (no re-copying). */
class ByteQueue {
  private chunks: Uint8Array[] = [];
  length = 0;
  push(c: Uint8Array): void {
    if (c.length) this.chunks.push(c);
    this.length += c.length;
  }
  /** Remove and return the first n bytes as one array (n ≤ length). */
  take(n: number): Uint8Array {
    const out = new Uint8Array(n);
    let at = 0;
    while (at < n) {
      const c = this.chunks[0];
      const k = Math.min(c.length, n - at);
      out.set(c.subarray(0, k), at);
      at += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    this.length -= n;
    return out;
  }
  /** Look at the first n bytes without consuming them. */
  peek(n: number): Uint8Array {
    const out = this.take(n);
    this.chunks.unshift(out);
    this.length += n;
    return out;
  }
}

/**
 * Read a safetensors stream tensor by tensor: the header is parsed as soon as its bytes
 * arrive, then each tensor is yielded once its bytes are complete. Only the tensor being
 * assembled is held, never the whole file. Bytes between tensors are skipped.
 *
 * `resume` continues a file from a byte offset at a tensor boundary, its header known, the
 * source starting at that offset. `onBytes` sees every byte of the file in order (header, gaps,
 * tensors), each before the tensor it ends is yielded: a running checksum fed by it covers
 * exactly the bytes up to the end of the tensor just yielded.
 */
export async function* readSafetensors(
  source: Chunks,
  options: {
    fileSize?: number;
    file?: string;
    onHeader?: (h: SafetensorsHeader, bytes: Uint8Array) => void;
    resume?: { header: SafetensorsHeader; offset: number };
    onBytes?: (bytes: Uint8Array) => void;
  } = {},
): AsyncGenerator<{ info: TensorInfo; data: Uint8Array }> {
  const file = options.file ?? 'the file';
  const queue = new ByteQueue();
  const consume = (n: number) => {
    const bytes = queue.take(n);
    options.onBytes?.(bytes);
    return bytes;
  };
  let header: SafetensorsHeader | null = options.resume?.header ?? null;
  let pos = options.resume?.offset ?? 0; // file offset of the queue's first byte
  // index of the next tensor to yield: the first one that starts at or after the offset
  let next = header ? header.tensors.findIndex((t) => header!.dataOffset + t.begin >= pos) : 0;
  if (next < 0) next = header!.tensors.length;
  for await (const chunk of chunksOf(source)) {
    queue.push(chunk);
    if (!header) {
      if (queue.length < 8) continue;
      const n = headerLength(queue.peek(8), options.fileSize, file);
      if (queue.length < 8 + n) continue;
      const bytes = consume(8 + n);
      header = parseHeader(bytes, options.fileSize, file);
      pos = header.dataOffset;
      options.onHeader?.(header, bytes);
    }
    while (next < header.tensors.length) {
      const t = header.tensors[next];
      const start = header.dataOffset + t.begin;
      if (pos < start) {
        const skip = Math.min(start - pos, queue.length);
        consume(skip);
        pos += skip;
        if (pos < start) break;
      }
      const size = t.end - t.begin;
      if (queue.length < size) break;
      const data = consume(size);
      pos += size;
      next++;
      yield { info: t, data };
    }
  }
  if (!header) throw new SafetensorsError(`${file} ended before its header was complete: it is truncated`);
  if (next < header.tensors.length) {
    const t = header.tensors[next];
    throw new SafetensorsError(
      `${file} ended at byte ${pos + queue.length}, inside tensor ${nameOf(t.name)}: ` + `it is truncated`,
    );
  }
  if (queue.length) consume(queue.length); // bytes after the last tensor still count for a checksum
}

export function readSafetensorsSync(file: Uint8Array, name = 'the file'): { info: TensorInfo; data: Uint8Array }[] {
  const h = parseHeader(file, file.length, name);
  return h.tensors.map((info) => ({ info, data: file.subarray(h.dataOffset + info.begin, h.dataOffset + info.end) }));
}

export interface TensorToWrite {
  name: string;
  dtype: Dtype;
  shape: number[];
  data: Uint8Array;
}

/** Serialize tensors, sorted by name, with the header space-padded to 8 bytes. */
export function writeSafetensors(tensors: TensorToWrite[], metadata?: Record<string, string>): Uint8Array {
  const sorted = [...tensors].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length) header.__metadata__ = metadata;
  let offset = 0;
  for (const t of sorted) {
    const bytes = t.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[t.dtype];
    if (bytes !== t.data.length)
      throw new SafetensorsError(
        `tensor ${t.name} [${t.shape.join(', ')}] ${t.dtype} needs ${bytes} bytes, got ${t.data.length}`,
      );
    if (t.name in header) throw new SafetensorsError(`tensor ${t.name} appears twice`);
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8;
  if (padded !== json.length) {
    const p = new Uint8Array(padded).fill(0x20);
    p.set(json);
    json = p;
  }
  const out = new Uint8Array(8 + json.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  let at = 8 + json.length;
  for (const t of sorted) {
    out.set(t.data, at);
    at += t.data.length;
  }
  return out;
}

// ---- sharded checkpoints ------------------------------------------------------------------

export interface ShardIndex {
  /** Shard file -> the tensors it holds. */
  shards: Map<string, string[]>;
  totalSize?: number;
}

/** Tensors a shard index may list: far more than any real checkpoint (Llama 3.1 405B: 1138). */
export const MAX_INDEXED_TENSORS = 1_000_000;

/** `model.safetensors.index.json`: { metadata: { total_size }, weight_map: { tensor: file } }. */
export function parseShardIndex(text: string, file = 'model.safetensors.index.json'): ShardIndex {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new SafetensorsError(`${file} is not valid JSON (${(e as Error).message})`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new SafetensorsError(`${file} is not a JSON object`);
  }
  const map = (json as { weight_map?: unknown }).weight_map;
  if (typeof map !== 'object' || map === null || Array.isArray(map)) {
    throw new SafetensorsError(`${file} has no weight_map object (tensor name → shard file name)`);
  }
  const entries = Object.entries(map);
  if (entries.length === 0 || entries.length > MAX_INDEXED_TENSORS) {
    throw new SafetensorsError(
      `${file}: weight_map lists ${entries.length} tensors; ` + `it must list 1 to ${MAX_INDEXED_TENSORS}`,
    );
  }
  const shards = new Map<string, string[]>();
  for (const [tensor, shard] of entries) {
    // a plain file name in the same folder: no paths, so nothing outside the checkpoint is named
    const plainName = typeof shard === 'string' && shard.length <= 255 && !shard.startsWith('.');
    if (!plainName || !/^[\w.-]+\.safetensors$/.test(shard)) {
      throw new SafetensorsError(
        `${file} maps ${nameOf(tensor)} to ${showValue(shard)}, ` + `not a .safetensors file name in the same folder`,
      );
    }
    const list = shards.get(shard);
    if (list) list.push(tensor);
    else shards.set(shard, [tensor]);
  }
  const metadata = (json as { metadata?: unknown }).metadata;
  if (metadata != null && (typeof metadata !== 'object' || Array.isArray(metadata))) {
    throw new SafetensorsError(`${file}: metadata must be an object, got ${showValue(metadata)}`);
  }
  const total = (metadata as { total_size?: unknown } | null | undefined)?.total_size;
  if (total != null && !(typeof total === 'number' && Number.isSafeInteger(total) && total >= 0)) {
    throw new SafetensorsError(
      `${file}: metadata.total_size must be a byte count (an integer ≥ 0), ` + `got ${showValue(total)}`,
    );
  }
  return { shards, totalSize: typeof total === 'number' ? total : undefined };
}

/**
 * A shard's header against the index: every tensor the index places in `shard` must be in its
 * header (the index is what a loader trusts to find a tensor).
 */
export function checkShardAgainstIndex(
  index: ShardIndex,
  shard: string,
  header: SafetensorsHeader,
  file = 'model.safetensors.index.json',
): void {
  const held = new Set(header.tensors.map((t) => t.name));
  const absent = (index.shards.get(shard) ?? []).filter((n) => !held.has(n));
  if (absent.length) {
    throw new SafetensorsError(
      `${file} places ${absent.length} tensor(s) in ${shard} that its header does not hold, ` +
        `e.g. ${nameOf(absent[0])}: ` +
        'the index and the shard disagree; download the checkpoint again',
    );
  }
}

// ---- 16-bit floats ------------------------------------------------------------------------

/** Widen F32/F16/BF16 tensor bytes (little-endian) to f32. */
export function toFloat32(dtype: Dtype, data: Uint8Array): Float32Array {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const n = data.byteLength / DTYPE_BYTES[dtype];
  const out = new Float32Array(n);
  if (dtype === 'F32') {
    for (let i = 0; i < n; i++) out[i] = view.getFloat32(4 * i, true);
  } else if (dtype === 'BF16') {
    const bits = new Uint32Array(out.buffer);
    for (let i = 0; i < n; i++) bits[i] = view.getUint16(2 * i, true) << 16;
  } else if (dtype === 'F16') {
    for (let i = 0; i < n; i++) out[i] = halfBitsToFloat(view.getUint16(2 * i, true), 'F16');
  } else {
    throw new SafetensorsError(`cannot read ${dtype} as floating point`);
  }
  return out;
}
