// Data files from strangers: JSONL, JSON, CSV, TXT and Parquet, read through readRows as the
// engine reads them (a Blob, as a dropped File is). Hand-written hostile files (a 48 MB line,
// JSON nested a million deep, unterminated strings and quotes, a Parquet file of 100,000 row
// groups or claiming 2^50 rows, page headers claiming 2 GB or 2^30 values, scrambled footers,
// NUL bytes, invalid UTF-8, CRLF, a BOM, empty files) and seeded byte mutations of valid files.
// Each must give rows, or a DataError naming the file, within the case's time limit and with
// bounded memory.
import { openAsBlob } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parquetMetadata, type FileMetaData, type PageHeader } from 'hyparquet';
import { parquetHeader } from 'hyparquet/src/column.js';
import { ByteWriter, parquetWriteBuffer } from 'hyparquet-writer';
import { writePageHeader } from 'hyparquet-writer/src/datapage.js';
import { writeMetadata } from 'hyparquet-writer/src/metadata.js';
import { readRows, SkipCounts } from '../../src/data/read';
import type { FuzzSuite } from './harness';
import { fuzzMain } from './child';
import { mutateBytes, rng } from './mutate';

type Case = { what: string; name: string; make: () => (string | Uint8Array)[] };

const MB = 1 << 20;
const enc = new TextEncoder();
const bytes = (...b: number[]) => new Uint8Array(b);

// Valid files to mutate: multi-byte text, quotes, commas and newlines inside values.
const TEXTS = [
  '### Human: Say hi. ### Assistant: Hi there!',
  'Ünïcödé — 日本語 😀 text',
  'a "quoted", comma\nand a newline',
  'short',
];
const csvField = (t: string) => `"${t.replace(/"/g, '""')}"`;
const VALID: Record<string, () => Uint8Array> = {
  'rows.jsonl': () => enc.encode(TEXTS.map((text, i) => JSON.stringify({ text, id: i })).join('\n') + '\n'),
  'rows.json': () =>
    enc.encode(
      JSON.stringify(
        TEXTS.map((text, i) => ({ text, id: i })),
        null,
        1,
      ),
    ),
  'rows.csv': () => enc.encode('id,text\n' + TEXTS.map((t, i) => `${i},${csvField(t)}`).join('\r\n') + '\r\n'),
  'rows.txt': () => enc.encode(TEXTS.map((t) => t.replace(/\n/g, ' ')).join('\n') + '\n'),
  'rows.parquet': () => parquetBytes(TEXTS, 2),
};

function parquetBytes(texts: string[], rowGroupSize: number): Uint8Array {
  const ids = texts.map((_, i) => i);
  return new Uint8Array(
    parquetWriteBuffer({
      columnData: [
        { name: 'text', data: texts, type: 'STRING' },
        { name: 'id', data: ids, type: 'INT32' },
      ],
      rowGroupSize,
    }),
  );
}

/** A Parquet file with its footer's metadata edited (the data pages left as they are). */
function withMetadata(file: Uint8Array, edit: (m: FileMetaData) => void): Uint8Array {
  const view = new DataView(file.buffer, file.byteOffset, file.byteLength);
  const metaLength = view.getUint32(file.length - 8, true);
  const metadata = parquetMetadata(file);
  edit(metadata);
  const writer = new ByteWriter();
  writeMetadata(writer, metadata as never); // hyparquet-writer names its own copy of hyparquet's types
  const meta = new Uint8Array(writer.getBuffer());
  const out = new Uint8Array(file.length - 8 - metaLength + meta.length + 8);
  out.set(file.subarray(0, file.length - 8 - metaLength));
  out.set(meta, file.length - 8 - metaLength);
  new DataView(out.buffer).setUint32(out.length - 8, meta.length, true);
  out.set(enc.encode('PAR1'), out.length - 4);
  return out;
}

/**
 * A one-column Parquet file with its first page's header (and maybe its bytes) edited, and the footer made to
 * agree: what a hostile writer hands hyparquet, which allocates what a page header declares.
 */
// biome-ignore lint/suspicious/noConfusingVoidType: an edit in place returns nothing, which `undefined` refuses
function withFirstPage(file: Uint8Array, edit: (h: PageHeader, body: Uint8Array) => Uint8Array | void): Uint8Array {
  const meta = parquetMetadata(file).row_groups[0].columns[0].meta_data!;
  const start = Number(meta.dictionary_page_offset || meta.data_page_offset);
  const reader = { view: new DataView(file.buffer, file.byteOffset, file.byteLength), offset: start };
  const header = parquetHeader(reader);
  const end = reader.offset + header.compressed_page_size;
  const body = edit(header, file.slice(reader.offset, end)) ?? file.slice(reader.offset, end);
  header.compressed_page_size = body.length;
  const writer = new ByteWriter();
  writePageHeader(writer, header as never); // hyparquet-writer names its own copy of hyparquet's types
  const head = new Uint8Array(writer.getBuffer());
  const grown = head.length + body.length - (end - start);
  const out = new Uint8Array(file.length + grown);
  out.set(file.subarray(0, start));
  out.set(head, start);
  out.set(body, start + head.length);
  out.set(file.subarray(end), start + head.length + body.length);
  return withMetadata(out, (m) => {
    const chunk = m.row_groups[0].columns[0].meta_data!;
    chunk.total_compressed_size += BigInt(grown);
    if (chunk.data_page_offset > BigInt(start)) chunk.data_page_offset += BigInt(grown);
  });
}

/** A ZSTD frame header declaring a window of 1.875 GB (fzstd, given no output buffer, allocates it at once). */
const ZSTD_BIG_WINDOW = bytes(0x28, 0xb5, 0x2f, 0xfd, 0x00, (20 << 3) | 7);

/** A Parquet file with its last `n` bytes before the length and magic overwritten with noise. */
function scrambledFooter(file: Uint8Array, rand: () => number, n: number): Uint8Array {
  const out = file.slice();
  for (let i = out.length - 8 - n; i < out.length - 8; i++) out[i] = Math.floor(rand() * 256);
  return out;
}

function withFooterLength(file: Uint8Array, length: number): Uint8Array {
  const out = file.slice();
  new DataView(out.buffer).setUint32(out.length - 8, length, true);
  return out;
}

const big = (text: string) => `{"text": "${'a'.repeat(48 * MB)}${text}"}`; // one 48 MB JSON line

function handWritten(rand: () => number): Case[] {
  const pq = parquetBytes(TEXTS, 2);
  // one column, one row group: a page header can grow without moving other chunks
  const pq1 = new Uint8Array(parquetWriteBuffer({ columnData: [{ name: 'text', data: TEXTS, type: 'STRING' }] }));
  const delta = new Uint8Array(
    parquetWriteBuffer({
      columnData: [{ name: 'id', data: [1, 2, 3, 4], type: 'INT32', nullable: false, encoding: 'DELTA_BINARY_PACKED' }],
    }),
  );
  const c = (what: string, name: string, make: Case['make']): Case => ({ what, name, make });
  return [
    // one enormous line: linear time, and skipped and counted past the row cap
    c('a 48 MB JSONL line', 'big.jsonl', () => [big('')]),
    c('a 48 MB JSONL line, then a row', 'big2.jsonl', () => [big(''), '\n{"text": "after"}\n']),
    c('a 20 MB JSONL line', 'twenty.jsonl', () => [`{"text": "${'b'.repeat(20 * MB)}"}\n`]),
    c('a 48 MB JSON array element', 'big.json', () => ['[', big(''), ', {"text": "after"}]']),
    c('a 48 MB CSV field spanning lines', 'big.csv', () => ['text\n"', 'line\n'.repeat((48 * MB) / 5), '"\nafter\n']),
    c('a 48 MB CSV line', 'bigline.csv', () => ['text\n', 'c'.repeat(48 * MB), '\nafter\n']),
    c('a 48 MB TXT line', 'big.txt', () => ['d'.repeat(48 * MB), '\nafter\n']),
    c('400,000 short JSONL lines', 'many.jsonl', () => ['{"text": "row"}\n'.repeat(400_000)]),
    c('400,000 short CSV lines', 'many.csv', () => ['id,text\n', '1,row\n'.repeat(400_000)]),
    c('a JSON array of 200,000 rows', 'many.json', () => ['[', Array(200_000).fill('{"text": "row"}').join(','), ']']),
    // nesting and unterminated values
    c('JSON nested a million deep, unclosed', 'deep.json', () => ['['.repeat(1e6)]),
    c('JSON nested a million deep, closed', 'deep-closed.json', () => ['['.repeat(1e6), ']'.repeat(1e6)]),
    c('a JSON row nested 10^6 deep', 'deep-row.json', () => ['[{"text": ', '['.repeat(1e6), ']'.repeat(1e6), '}]']),
    c('a JSONL line nested a million deep', 'deep.jsonl', () => ['{"text": ', '['.repeat(1e6), ']'.repeat(1e6), '}\n']),
    c('a JSONL line of a million {', 'braces.jsonl', () => ['{"a":'.repeat(1e6), '\n']),
    c('an unterminated JSONL string', 'open.jsonl', () => ['{"text": "abc']),
    c('an unterminated JSON string', 'open.json', () => ['[{"text": "abc']),
    c('an unterminated JSON string with escapes', 'escapes.json', () => ['[{"text": "abc\\"\\\\\\"']),
    c('a JSON array never closed', 'unclosed.json', () => ['[{"text": "a"}, {"text": "b"}']),
    c('a JSON array with text after it', 'trailing.json', () => ['[{"text": "a"}] {"text": "b"}']),
    c('a JSON array with a missing comma', 'comma.json', () => ['[{"text": "a"} {"text": "b"}]']),
    c('a JSON array with a stray ]', 'stray.json', () => ['[{"text": "a"}]]']),
    c('a JSON object holding the rows', 'object.json', () => ['{"data": [{"text": "a"}, {"text": "b"}]}']),
    c('a JSON file of whitespace', 'blank.json', () => [' \n\t '.repeat(100_000)]),
    c('an unterminated CSV quote', 'open.csv', () => ['text\n"abc\nmore\n']),
    c('a CSV quote mid-field', 'midquote.csv', () => ['id,text\n1,ab"c\n2,"x"y\n']),
    c('a CSV header repeating a column', 'repeat.csv', () => ['text,text\na,b\n']),
    // encodings and control bytes
    c('NUL bytes at the start', 'nul.jsonl', () => ['\0\0\0{"text": "a"}\n']),
    c('a NUL byte past the first 4 KB', 'nul-late.jsonl', () => ['{"text": "a"}\n'.repeat(400), '{"t": "\0"}\n\0\n']),
    c('invalid UTF-8 in JSONL', 'bad.jsonl', () => ['{"text": "a"}\n{"text": "', bytes(0xff, 0xc3, 0x28), '"}\n']),
    c('invalid UTF-8 in JSON', 'bad.json', () => ['[{"text": "', new Uint8Array([0xc3]), '"}]']),
    c('invalid UTF-8 in CSV', 'bad.csv', () => ['text\n', new Uint8Array([0xed, 0xa0, 0x80]), '\n']),
    c('invalid UTF-8 in TXT', 'bad.txt', () => ['ok\n', new Uint8Array([0xf8, 0x88, 0x80, 0x80, 0x80]), '\n']),
    c('a UTF-8 sequence cut by the end', 'cut.txt', () => ['ok\n', new Uint8Array([0xe6, 0x97])]),
    c('CRLF lines', 'crlf.jsonl', () => ['{"text": "a"}\r\n{"text": "b"}\r\n']),
    c('a BOM and CRLF in CSV', 'bom.csv', () => [new Uint8Array([0xef, 0xbb, 0xbf]), 'text\r\na\r\n']),
    c('a BOM in JSON', 'bom.json', () => [new Uint8Array([0xef, 0xbb, 0xbf]), '[{"text": "a"}]']),
    c('a lone CR line end', 'cr.txt', () => ['a\rb\rc']),
    c('terminal escapes in text', 'escapes.jsonl', () => ['{"text": "\\u001b]0;pwned\\u0007\\u001b[2J\\u202e"}\n']),
    ...['jsonl', 'json', 'csv', 'txt', 'parquet'].map((ext) => c(`an empty .${ext}`, `empty.${ext}`, () => [])),
    c('Parquet bytes named .jsonl', 'liar.jsonl', () => [pq]),
    c('JSONL named .parquet', 'liar.parquet', () => ['{"text": "a"}\n'.repeat(10)]),
    // Parquet footers and what they declare
    // (each of the 100,000 groups points at the same one-row column chunk: quicker to write than 100,000 chunks)
    c('100,000 Parquet row groups', 'groups.parquet', () => [
      withMetadata(parquetBytes(['one row'], 1), (m) => {
        m.row_groups = Array(100_000).fill(m.row_groups[0]);
        m.num_rows = 100_000n;
      }),
    ]),
    c('100,001 Parquet row groups', 'groups2.parquet', () => [
      withMetadata(parquetBytes(['one row'], 1), (m) => {
        m.row_groups = Array(100_001).fill(m.row_groups[0]);
        m.num_rows = 100_001n;
      }),
    ]),
    c('Parquet num_rows 2^50', 'rows.parquet', () => [
      withMetadata(pq, (m) => {
        m.num_rows = 2n ** 50n;
      }),
    ]),
    c('Parquet row groups of 2^50 rows', 'group-rows.parquet', () => [
      withMetadata(pq, (m) => {
        m.num_rows = 2n ** 51n;
        for (const g of m.row_groups) g.num_rows = 2n ** 50n;
      }),
    ]),
    c('Parquet negative num_rows', 'negative.parquet', () => [
      withMetadata(pq, (m) => {
        m.num_rows = -4n;
      }),
    ]),
    c('Parquet row counts not adding up', 'sum.parquet', () => [
      withMetadata(pq, (m) => {
        m.num_rows = 3n;
      }),
    ]),
    c('Parquet column chunk past the end', 'offset.parquet', () => [
      withMetadata(pq, (m) => {
        m.row_groups[1].columns[0].meta_data!.data_page_offset = 2n ** 40n;
      }),
    ]),
    c('Parquet column chunk size past the end', 'size.parquet', () => [
      withMetadata(pq, (m) => {
        m.row_groups[0].columns[0].meta_data!.total_compressed_size = 2n ** 40n;
      }),
    ]),
    c('Parquet column chunk in another file', 'external.parquet', () => [
      withMetadata(pq, (m) => {
        m.row_groups[0].columns[0].file_path = '../../secret.parquet';
      }),
    ]),
    c('Parquet without row groups', 'norows.parquet', () => [
      withMetadata(pq, (m) => {
        m.row_groups = [];
        m.num_rows = 0n;
      }),
    ]),
    // Parquet page headers, which hyparquet trusts: it allocates what they declare
    c('a Parquet page claiming 2 GB decompressed', 'page-size.parquet', () => [
      withFirstPage(pq1, (h) => {
        h.uncompressed_page_size = 2 ** 31 - 1;
      }),
    ]),
    c('a Parquet page claiming 2^30 values', 'page-values.parquet', () => [
      withFirstPage(delta, (h) => {
        h.data_page_header_v2!.num_values = 2 ** 30;
        h.data_page_header_v2!.num_rows = 2 ** 30;
      }),
    ]),
    c('a Parquet page of negative nulls', 'page-nulls.parquet', () => [
      withFirstPage(delta, (h) => {
        h.data_page_header_v2!.num_nulls = -(2 ** 30);
      }),
    ]),
    c('a ZSTD Parquet page declaring a 1.9 GB window', 'zstd.parquet', () => {
      const page = withFirstPage(pq1, (h, b) => {
        const v2 = h.data_page_header_v2!; // its levels stay, uncompressed; the values become the frame
        const levels = v2.definition_levels_byte_length + v2.repetition_levels_byte_length;
        return new Uint8Array([...b.subarray(0, levels), ...ZSTD_BIG_WINDOW]);
      });
      return [
        withMetadata(page, (m) => {
          m.row_groups[0].columns[0].meta_data!.codec = 'ZSTD';
        }),
      ];
    }),
    c('a Parquet column chunk of 2^40 values', 'chunk-values.parquet', () => [
      withMetadata(pq, (m) => {
        m.row_groups[0].columns[0].meta_data!.num_values = 2n ** 40n;
      }),
    ]),
    c('a Parquet column chunk of 2^40 bytes decompressed', 'chunk-size.parquet', () => [
      withMetadata(pq, (m) => {
        m.row_groups[0].columns[0].meta_data!.total_uncompressed_size = 2n ** 40n;
      }),
    ]),
    c('Parquet footer length past the file', 'footlen.parquet', () => [withFooterLength(pq, 2 ** 31)]),
    c('Parquet footer length 0', 'foot0.parquet', () => [withFooterLength(pq, 0)]),
    c('Parquet footer length 4 GB', 'foot4g.parquet', () => [withFooterLength(pq, 2 ** 32 - 1)]),
    c('Parquet cut to its magic', 'magic.parquet', () => ['PAR1']),
    c('Parquet without its closing magic', 'tail.parquet', () => [pq.subarray(0, pq.length - 4)]),
    ...[8, 32, 200].map((n) =>
      c(`a Parquet footer scrambled (${n} bytes)`, `scrambled${n}.parquet`, () => [scrambledFooter(pq, rand, n)]),
    ),
  ];
}

function mutated(rand: () => number, perFormat: number): Case[] {
  const out: Case[] = [];
  for (const [name, make] of Object.entries(VALID)) {
    const bytes = make();
    for (let i = 0; i < perFormat; i++) {
      const m = mutateBytes(bytes, rand);
      out.push({ what: `${name}: ${m.how}`, name, make: () => [m.bytes] });
    }
  }
  return out;
}

export const suite: FuzzSuite<Case> = {
  name: 'data files',
  caseMs: 30_000, // the 100,000-row-group file takes some 10 s to write and read on a busy 2-core machine
  cases: (seed) => {
    const rand = rng(seed);
    return [...handWritten(rand), ...mutated(rand, 16)];
  },
  async run(c) {
    // a file on disk, opened as the command line opens it (streamed in 64 KB chunks, as a File in the page)
    const dir = await mkdtemp(join(tmpdir(), 'data-fuzz-'));
    const path = join(dir, c.name);
    try {
      await writeFile(path, c.make());
      const skipped = new SkipCounts();
      let rows = 0;
      for await (const _row of readRows(c.name, await openAsBlob(path), skipped)) rows++;
      return { rows, skipped: skipped.toString() };
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  },
  mentions: (c) => c.name,
};

export const main = fuzzMain(suite);
