import { describe, expect, it } from 'vitest';
import {
  checkShardAgainstIndex,
  MAX_HEADER_BYTES,
  parseHeader,
  parseShardIndex,
  readSafetensors,
  toFloat32,
  writeSafetensors,
  type TensorToWrite,
} from '../../src/formats/safetensors';
import { freshSeed, rng } from '../reference/random';

const f32bytes = (a: number[]) => new Uint8Array(Float32Array.from(a).buffer);

function sample(): TensorToWrite[] {
  return [
    { name: 'model.layers.0.mlp.up_proj.weight', dtype: 'F32', shape: [2, 3], data: f32bytes([1, 2, 3, 4, 5, 6]) },
    {
      name: 'model.embed_tokens.weight',
      dtype: 'BF16',
      shape: [3],
      data: Uint8Array.of(0x80, 0x3f, 0x00, 0xc0, 0x49, 0x40),
    },
    { name: 'lm_head.scale', dtype: 'F16', shape: [], data: Uint8Array.of(0x00, 0x3c) },
    { name: 'model.weight.absmax', dtype: 'U8', shape: [5], data: Uint8Array.of(1, 2, 3, 4, 5) },
    { name: 'ids', dtype: 'I64', shape: [2], data: new Uint8Array(new BigInt64Array([7n, -1n]).buffer) },
  ];
}

/** A file's bytes cut into chunks of random sizes, as a network would deliver them. */
async function* chunked(bytes: Uint8Array, r: () => number): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < bytes.length; ) {
    const n = 1 + Math.floor(r() * 40);
    yield bytes.slice(i, i + n);
    i += n;
  }
}

/** Build a file from a raw header object and data, to forge bad ones. */
function forge(header: unknown, data = new Uint8Array(0), claimed?: number): Uint8Array {
  const json = new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(claimed ?? json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

describe('safetensors', () => {
  it('writes a file whose header and tensors parse back exactly', () => {
    const file = writeSafetensors(sample(), { format: 'pt' });
    const n = Number(new DataView(file.buffer).getBigUint64(0, true));
    expect(n % 8).toBe(0); // header padded with spaces to 8 bytes
    const h = parseHeader(file, file.length);
    expect(h.metadata).toEqual({ format: 'pt' });
    expect(h.tensors.map((t) => t.name)).toEqual([...sample().map((t) => t.name)].sort());
    for (const t of sample()) {
      const info = h.tensors.find((x) => x.name === t.name)!;
      expect(info.shape).toEqual(t.shape);
      expect(Array.from(file.subarray(h.dataOffset + info.begin, h.dataOffset + info.end))).toEqual(Array.from(t.data));
    }
  });

  it('streams tensors out of arbitrarily cut chunks, and they equal the written ones', async () => {
    const seed = freshSeed();
    const file = writeSafetensors(sample());
    const got = new Map<string, Uint8Array>();
    for await (const { info, data } of readSafetensors(chunked(file, rng(seed)), { fileSize: file.length }))
      got.set(info.name, data);
    for (const t of sample())
      expect(Array.from(got.get(t.name)!), `${t.name}, seed ${seed}`).toEqual(Array.from(t.data));
    // also from a web ReadableStream
    const stream = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(file.slice(0, 13));
        c.enqueue(file.slice(13));
        c.close();
      },
    });
    let count = 0;
    for await (const _ of readSafetensors(stream)) count++;
    expect(count).toBe(sample().length);
  });

  it('widens BF16 and F16 to f32', () => {
    const [, bf16, f16] = sample();
    expect(Array.from(toFloat32('BF16', bf16.data))).toEqual([1, -2, Math.fround(3.140625)]);
    expect(Array.from(toFloat32('F16', f16.data))).toEqual([1]);
    expect(Array.from(toFloat32('F16', Uint8Array.of(0x01, 0x00, 0x00, 0xfc, 0xff, 0x7b)))).toEqual([
      2 ** -24,
      -Infinity,
      65504,
    ]);
  });

  it('refuses a truncated file, naming the tensor it stopped in', async () => {
    const file = writeSafetensors(sample());
    const cut = file.slice(0, file.length - 3);
    await expect(async () => {
      for await (const _ of readSafetensors(chunked(cut, rng(1)))) {
        /* drain */
      }
    }).rejects.toThrow(/ended at byte \d+, inside tensor .*: it is truncated/);
    expect(() => parseHeader(cut, cut.length)).toThrow(/past the end of the \d+-byte file: it is truncated/);
    await expect(async () => {
      for await (const _ of readSafetensors(chunked(file.slice(0, 20), rng(1)))) {
        /* drain */
      }
    }).rejects.toThrow(/ended before its header was complete/);
  });

  it('refuses malformed headers with a message that says what is wrong', () => {
    const entry = { dtype: 'F32', shape: [2], data_offsets: [0, 8] };
    const data = new Uint8Array(16);
    expect(() => parseHeader(forge({ a: entry }, data, MAX_HEADER_BYTES + 1))).toThrow(/over the 100000000-byte limit/);
    expect(() => parseHeader(forge('{"a": ', data))).toThrow(/not valid UTF-8 JSON/);
    expect(() => parseHeader(forge('[1, 2]', data))).toThrow(/not a JSON object/);
    expect(() => parseHeader(forge({ a: { ...entry, dtype: 'F8_E4M3' } }, data))).toThrow(
      /dtype "F8_E4M3"; supported: F32, F16, BF16/,
    );
    expect(() => parseHeader(forge({ a: { ...entry, shape: [2.5] } }, data))).toThrow(/malformed shape/);
    expect(() => parseHeader(forge({ a: { ...entry, data_offsets: [8, 0] } }, data))).toThrow(/malformed data_offsets/);
    expect(() => parseHeader(forge({ a: { ...entry, shape: [3] } }, data))).toThrow(
      /needs 12 bytes, its data_offsets span 8/,
    );
    expect(() => parseHeader(forge({ a: entry, b: { ...entry, data_offsets: [4, 12] } }, data))).toThrow(/overlap/);
    expect(() => parseHeader(forge({ a: { ...entry, data_offsets: [16, 24] } }, data), 8 + 60 + 16)).toThrow(
      /truncated/,
    );
    expect(() => parseHeader(forge({ __metadata__: { a: 1 }, a: entry }, data))).toThrow(
      /__metadata__\["a"\] is 1; __metadata__ must map strings to strings/,
    );
    expect(() => parseHeader(Uint8Array.of(1, 2, 3))).toThrow(/too short to be safetensors/);
  });

  it('reads a sharded checkpoint index and refuses a bad one', () => {
    const idx = parseShardIndex(
      JSON.stringify({
        metadata: { total_size: 1234 },
        weight_map: {
          a: 'model-00001-of-00002.safetensors',
          b: 'model-00002-of-00002.safetensors',
          c: 'model-00001-of-00002.safetensors',
        },
      }),
    );
    expect(idx.totalSize).toBe(1234);
    expect(idx.shards.get('model-00001-of-00002.safetensors')).toEqual(['a', 'c']);
    expect(() => parseShardIndex('{')).toThrow(/not valid JSON/);
    expect(() => parseShardIndex('{"weight_map": {"a": "../../etc/passwd"}}')).toThrow(/not a .safetensors file name/);
    expect(() => parseShardIndex('{}')).toThrow(/no weight_map/);
  });

  it('checks a header with exact sizes, and a shard against its index', () => {
    const file = writeSafetensors(sample());
    // the data section must be exactly the tensors' bytes: a listed size that disagrees is refused
    expect(() => parseHeader(file, file.length + 4, 'x.safetensors')).toThrow(
      /x.safetensors: the header accounts for \d+ bytes but the file is \d+ bytes long/,
    );
    const h = parseHeader(file, file.length);
    const map = Object.fromEntries([...h.tensors.map((t) => [t.name, 'a.safetensors']), ['ghost', 'a.safetensors']]);
    const index = parseShardIndex(JSON.stringify({ weight_map: map }));
    expect(() => checkShardAgainstIndex(index, 'a.safetensors', h)).toThrow(
      /places 1 tensor\(s\) in a.safetensors that its header does not hold, e.g. ghost/,
    );
    expect(() => parseShardIndex('{"weight_map": {}}')).toThrow(/weight_map lists 0 tensors/);
    expect(() => parseShardIndex('null')).toThrow(/is not a JSON object/);
    expect(() => parseShardIndex('{"weight_map": {"a": "x.safetensors"}, "metadata": {"total_size": -1}}')).toThrow(
      /total_size must be a byte count/,
    );
    // names from the file are quoted with their control characters escaped
    const evil = writeSafetensors([{ name: '\u001b[2Jx', dtype: 'F32', shape: [1], data: new Uint8Array(4) }]);
    const text = new TextDecoder().decode(evil).replace('"shape":[1]', '"shape":[2]');
    expect(() => parseHeader(new TextEncoder().encode(text))).toThrow(/tensor "\\u001b\[2Jx" \[2\] F32 needs 8 bytes/);
  });
});
