// The data pipeline on the CPU: every file format to the same rows, malformed rows skipped and
// counted, and blocks to the model's shifted, sequence-bounded batches (TRL's tokenization and
// packing are in sft.test.ts).
import { openAsBlob } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parquetMetadata } from 'hyparquet';
import { beforeAll, describe, expect, it } from 'vitest';
import { epochOrder, hostBatch } from '../../src/data/batches';
import { DataError, readRows, SkipCounts, type Row } from '../../src/data/read';
import { SFT_DEFAULTS, tokenizeRows, type Block } from '../../src/data/sft';
import { tinyTexts, writeTinyDataset } from '../fixtures/tiny-data';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'data-'));
});

async function rowsOf(path: string, skipped = new SkipCounts()): Promise<Row[]> {
  const out: Row[] = [];
  for await (const r of readRows(path, await openAsBlob(path), skipped)) out.push(r);
  return out;
}

async function* each<T>(xs: T[]): AsyncGenerator<T> {
  yield* xs;
}

/** BOS 0, then one token per character, as a byte-level tokenizer with no merges would (EOS is "\u0001"). */
const charTokenizer = { encode: (t: string) => [0, ...[...t].map((c) => c.charCodeAt(0))], eos_token: '\u0001', eos_token_id: 1 };

describe('reading data files', () => {
  it('gives the same rows from JSONL, JSON, CSV, TXT and a Parquet file of several row groups', async () => {
    const paths = await writeTinyDataset(join(dir, 'formats'), 3);
    const meta = parquetMetadata(await (await openAsBlob(paths.parquet)).arrayBuffer());
    expect(meta.row_groups.length).toBe(2);
    const expected = tinyTexts().map((text) => ({ text }));
    for (const path of Object.values(paths)) expect(await rowsOf(path), path).toEqual(expected);
  });

  it('reads quoted CSV fields with commas, doubled quotes, newlines and CRLF line ends', async () => {
    const path = join(dir, 'quoted.csv');
    await writeFile(path, 'id,text\r\n1,"a, b"\r\n2,"say ""hi"""\r\n3,"two\nlines"\r\n4,plain\r\n');
    expect(await rowsOf(path)).toEqual([
      { id: '1', text: 'a, b' }, { id: '2', text: 'say "hi"' }, { id: '3', text: 'two\nlines' }, { id: '4', text: 'plain' },
    ]);
  });

  it('skips and counts malformed rows instead of failing', async () => {
    const path = join(dir, 'messy.jsonl');
    await writeFile(path, [
      '{"text": "good one"}', '{"text": broken', '[1, 2]', '{"other": "no text"}', '{"text": 42}', '{"text": "  "}',
      '{"input_ids": [5, 6, 7]}', '{"input_ids": [5, 99999]}', '', '{"text": "good two"}',
    ].join('\n'));
    const skipped = new SkipCounts();
    const rows = await rowsOf(path, skipped);
    expect(rows.length).toBe(7); // the broken line and the array are skipped while reading
    const { examples } = await tokenizeRows(each(rows), charTokenizer, SFT_DEFAULTS, skipped, 1000);
    expect(examples.map((e) => e.input_ids.length)).toEqual([10, 3, 10]);
    expect(examples[1].input_ids).toEqual([5, 6, 7]); // input_ids rows pass untokenised, no EOS added
    expect(skipped.total).toBe(6);
    expect(Object.fromEntries(skipped.reasons)).toEqual({
      'lines that are not valid JSON': 1, 'lines that are not JSON objects': 1, 'rows without a "text" field': 1,
      'rows whose "text" is not a string': 1, 'rows whose "text" is empty': 1, 'rows whose input_ids are not token ids below the vocabulary size 1000': 1,
    });
  });

  it('cancels the stream (and so a Hub connection) when the reader stops early', async () => {
    for (const [name, text] of [['a.jsonl', '{"text": "x"}\n'], ['a.csv', 'text\nx\n'], ['a.txt', 'x\n']]) {
      let cancelled = false;
      const bytes = new TextEncoder().encode(text.repeat(1000));
      const blob = new Blob([bytes]);
      const watched = {
        size: blob.size, slice: (a?: number, b?: number) => blob.slice(a, b), arrayBuffer: () => blob.arrayBuffer(), text: () => blob.text(),
        stream: () => new ReadableStream<Uint8Array>({
          start(c) {
            c.enqueue(bytes.subarray(0, 64)); // more stays unsent until asked
          },
          cancel() {
            cancelled = true;
          },
        }),
      };
      for await (const row of readRows(name, watched, new SkipCounts())) {
        expect(row).toEqual({ text: 'x' });
        break;
      }
      expect(cancelled, name).toBe(true);
    }
  });

  it('says clearly when no row is usable, or a file is not what its name says', async () => {
    const none = join(dir, 'none.jsonl');
    await writeFile(none, '{"content": "a"}\n{"content": "b"}\n');
    await expect(tokenizeRows(each(await rowsOf(none)), charTokenizer, SFT_DEFAULTS, new SkipCounts()))
      .rejects.toThrow(/none of the columns SFT reads \(its columns: content\)/);
    const paths = await writeTinyDataset(join(dir, 'liars'));
    const fakeJsonl = join(dir, 'fake.jsonl');
    await writeFile(fakeJsonl, new Uint8Array(await (await openAsBlob(paths.parquet)).arrayBuffer()));
    await expect(rowsOf(fakeJsonl)).rejects.toThrow(/fake.jsonl is not a JSONL text file.*it is Parquet; name it .parquet/);
    const fakeParquet = join(dir, 'fake.parquet');
    await writeFile(fakeParquet, '{"text": "hi"}\n');
    await expect(rowsOf(fakeParquet)).rejects.toThrow(/fake.parquet is not a Parquet file/);
    const xlsx = join(dir, 'data.xlsx');
    await writeFile(xlsx, 'PK');
    await expect(rowsOf(xlsx)).rejects.toThrow(DataError);
    await expect(rowsOf(xlsx)).rejects.toThrow(/unknown data file type ".xlsx"; use .jsonl, .json, .csv, .parquet or .txt/);
    const notJson = join(dir, 'prose.jsonl');
    await writeFile(notJson, 'just some words\nand more\n');
    await expect(rowsOf(notJson)).rejects.toThrow(/none of its 2 lines is a JSON object/);
  });
});

describe('blocks to batches', () => {
  it('lays blocks end to end with labels shifted inside each sequence and attention bounded', () => {
    const one: Block = { input_ids: [10, 11, 12], labels: [10, 11, 12], position_ids: [0, 1, 2] };
    // a block holding two sequences (position ids restart), the first token's label masked
    const two: Block = { input_ids: [20, 21, 22, 23, 24], labels: [-100, 21, 22, 23, 24], position_ids: [0, 1, 0, 1, 2] };
    const h = hostBatch([one, two]);
    expect([...h.ids]).toEqual([10, 11, 12, 20, 21, 22, 23, 24]);
    expect([...h.labels]).toEqual([11, 12, -100, 21, -100, 23, 24, -100]);
    expect([...h.positions]).toEqual([0, 1, 2, 0, 1, 0, 1, 2]);
    expect([...h.start]).toEqual([0, 0, 0, 3, 3, 5, 5, 5]);
    expect(h.counted).toBe(5);
  });

  it("hides keys older than a sliding window, within each sequence, as transformers' mask does", () => {
    const one: Block = { input_ids: [1, 2, 3, 4, 5], labels: [1, 2, 3, 4, 5], position_ids: [0, 1, 2, 0, 1] };
    expect([...hostBatch([one], 2).start]).toEqual([0, 0, 1, 3, 3]);
    expect([...hostBatch([one], 8).start]).toEqual([0, 0, 0, 3, 3]);
  });

  it('shuffles each epoch differently, the same way for the same seed', () => {
    const o1 = epochOrder(20, 0, 42, true), o2 = epochOrder(20, 1, 42, true);
    expect([...o1].sort((x, y) => x - y)).toEqual([...Array(20).keys()]);
    expect(o1).toEqual(epochOrder(20, 0, 42, true));
    expect(o1).not.toEqual(o2);
    expect(o1).not.toEqual(epochOrder(20, 0, 43, true));
    expect(epochOrder(5, 3, 42, false)).toEqual([0, 1, 2, 3, 4]);
  });
});
