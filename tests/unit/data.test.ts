// The data pipeline on the CPU: every file format to the same rows, malformed rows skipped and
// counted, and blocks to the model's shifted, sequence-bounded batches (TRL's tokenization and
// packing are in sft.test.ts).
import { openAsBlob } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parquetMetadata } from 'hyparquet';
import { parquetWriteBuffer } from 'hyparquet-writer';
import { beforeAll, describe, expect, it } from 'vitest';
import { epochOrder, hostBatch } from '../../src/data/batches';
import { escapeControl, Reporter } from '../../src/cli/report';
import { DataError, readRows, SkipCounts, type Row } from '../../src/data/read';
import { SFT_DEFAULTS, tokenizeRows, type Block } from '../../src/data/sft';
import { tinyTexts, writeTinyDataset } from '../fixtures/tiny-data';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'data-'));
});

async function rowsOf(path: string, skipped = new SkipCounts(), maxRowBytes?: number): Promise<Row[]> {
  const out: Row[] = [];
  for await (const r of readRows(path, await openAsBlob(path), skipped, { maxRowBytes })) out.push(r);
  return out;
}

async function* each<T>(xs: T[]): AsyncGenerator<T> {
  yield* xs;
}

/** BOS 0, then one token per character, as a byte-level tokenizer with no merges would (EOS is "\u0001"). */
const charTokenizer = {
  encode: async (t: string) => [0, ...[...t].map((c) => c.charCodeAt(0))],
  eos_token: '\u0001',
  eos_token_id: 1,
};

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
      { id: '1', text: 'a, b' },
      { id: '2', text: 'say "hi"' },
      { id: '3', text: 'two\nlines' },
      { id: '4', text: 'plain' },
    ]);
  });

  it('skips and counts malformed rows instead of failing', async () => {
    const path = join(dir, 'messy.jsonl');
    await writeFile(
      path,
      [
        '{"text": "good one"}',
        '{"text": broken',
        '[1, 2]',
        '{"other": "no text"}',
        '{"text": 42}',
        '{"text": "  "}',
        '{"input_ids": [5, 6, 7]}',
        '{"input_ids": [5, 99999]}',
        '',
        '{"text": "good two"}',
      ].join('\n'),
    );
    const skipped = new SkipCounts();
    const rows = await rowsOf(path, skipped);
    expect(rows.length).toBe(7); // the broken line and the array are skipped while reading
    const { examples } = await tokenizeRows(each(rows), charTokenizer, SFT_DEFAULTS, skipped, 1000);
    // a blank text is kept, as TRL keeps it (BOS, the two spaces, EOS)
    expect(examples.map((e) => e.input_ids.length)).toEqual([10, 4, 3, 10]);
    expect(examples[2].input_ids).toEqual([5, 6, 7]); // input_ids rows pass untokenised, no EOS added
    expect(skipped.total).toBe(5);
    expect(Object.fromEntries(skipped.reasons)).toEqual({
      'lines that are not valid JSON': 1,
      'lines that are not JSON objects': 1,
      'rows without a "text" field': 1,
      'rows whose "text" is not a string': 1,
      'rows whose input_ids are not token ids below the vocabulary size 1000': 1,
    });
  });

  it('cancels the stream (and so a Hub connection) when the reader stops early', async () => {
    for (const [name, text] of [
      ['a.jsonl', '{"text": "x"}\n'],
      ['a.csv', 'text\nx\n'],
      ['a.txt', 'x\n'],
    ]) {
      let cancelled = false;
      const bytes = new TextEncoder().encode(text.repeat(1000));
      const blob = new Blob([bytes]);
      const watched = {
        size: blob.size,
        slice: (a?: number, b?: number) => blob.slice(a, b),
        arrayBuffer: () => blob.arrayBuffer(),
        text: () => blob.text(),
        stream: () =>
          new ReadableStream<Uint8Array>({
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
    await expect(tokenizeRows(each(await rowsOf(none)), charTokenizer, SFT_DEFAULTS, new SkipCounts())).rejects.toThrow(
      /none of the columns SFT reads \(its columns: content\)/,
    );
    const paths = await writeTinyDataset(join(dir, 'liars'));
    const fakeJsonl = join(dir, 'fake.jsonl');
    await writeFile(fakeJsonl, new Uint8Array(await (await openAsBlob(paths.parquet)).arrayBuffer()));
    await expect(rowsOf(fakeJsonl)).rejects.toThrow(
      /fake.jsonl is not a JSONL text file.*it is Parquet; name it .parquet/,
    );
    const fakeParquet = join(dir, 'fake.parquet');
    await writeFile(fakeParquet, '{"text": "hi"}\n');
    await expect(rowsOf(fakeParquet)).rejects.toThrow(/fake.parquet is not a Parquet file/);
    const xlsx = join(dir, 'data.xlsx');
    await writeFile(xlsx, 'PK');
    await expect(rowsOf(xlsx)).rejects.toThrow(DataError);
    await expect(rowsOf(xlsx)).rejects.toThrow(
      /unknown data file type ".xlsx"; use .jsonl, .json, .csv, .parquet or .txt/,
    );
    const notJson = join(dir, 'prose.jsonl');
    await writeFile(notJson, 'just some words\nand more\n');
    await expect(rowsOf(notJson)).rejects.toThrow(/none of its 2 lines is a JSON object/);
  });
});

describe('reading hostile data files: linear, bounded, clear', () => {
  it('skips and counts rows over the cap (lines, CSV records, JSON array elements), keeps the rest', async () => {
    const long = 'x'.repeat(3000);
    const files: [string, string, Row[]][] = [
      ['cap.jsonl', `{"text": "${long}"}\n{"text": "kept"}\n`, [{ text: 'kept' }]],
      ['cap.txt', `${long}\nkept\n`, [{ text: 'kept' }]],
      [
        'cap.csv',
        `text\n"${long}\n${long}"\n"kept, with ""quotes""\nand a line"\n`,
        [{ text: 'kept, with "quotes"\nand a line' }],
      ],
      ['cap.json', `[{"text": "${long}"}, {"text": "kept"}]`, [{ text: 'kept' }]],
    ];
    for (const [name, text, rows] of files) {
      const path = join(dir, name);
      await writeFile(path, text);
      const skipped = new SkipCounts();
      expect(await rowsOf(path, skipped, 2000), name).toEqual(rows);
      expect(Object.fromEntries(skipped.reasons), name).toEqual({ 'rows longer than 2000 bytes': 1 });
    }
  });

  it('reads CRLF, a BOM and a quote inside an unquoted CSV field as datasets does', async () => {
    const bom = '\ufeff';
    const cases: [string, string, Row[]][] = [
      ['crlf.jsonl', `${bom}{"text": "a"}\r\n{"text": "b"}\r\n`, [{ text: 'a' }, { text: 'b' }]],
      [
        'crlf.csv',
        `${bom}"text",n\r\n"two\r\nlines",1\r\nHe is 5'10" tall,2\r\n`,
        [
          { text: 'two\r\nlines', n: '1' },
          { text: 'He is 5\'10" tall', n: '2' },
        ],
      ],
      ['bom.json', `${bom} [ {"text": "a\\"]"} , {"text": "b"} ] `, [{ text: 'a"]' }, { text: 'b' }]],
      ['crlf.txt', `${bom}a\r\nb`, [{ text: 'a' }, { text: 'b' }]],
    ];
    for (const [name, text, rows] of cases) {
      const path = join(dir, name);
      await writeFile(path, text);
      expect(await rowsOf(path), name).toEqual(rows);
    }
  });

  it('refuses bad UTF-8, empty files, broken JSON arrays, open CSV quotes, naming the file and line', async () => {
    const cases: [string, Uint8Array | string, RegExp][] = [
      [
        'bad.jsonl',
        new Uint8Array([...new TextEncoder().encode('{"text": "a"}\n'), 0xff, 0x0a]),
        /bad.jsonl, line 2: not valid UTF-8/,
      ],
      ['empty.txt', '', /empty.txt is empty/],
      [
        'broken.json',
        '[{"text": "a"},\n {"text": }]',
        /broken.json, line 2 \(byte 17\): element 1 of the array is not valid JSON/,
      ],
      ['cut.json', '[{"text": "a"}, {"te', /cut.json: the file ends inside the array \(in a string\)/],
      ['after.json', '[{"text": "a"}] x', /after.json, line 1 \(byte 16\): text after the array's closing "]"/],
      ['open.csv', 'text\nok\n"never closed\n', /open.csv, line 3: a quoted field starts in this record and is never/],
    ];
    for (const [name, bytes, error] of cases) {
      const path = join(dir, name);
      await writeFile(path, bytes);
      await expect(rowsOf(path), name).rejects.toThrow(DataError);
      await expect(rowsOf(path), name).rejects.toThrow(error);
    }
  });

  it('reads a Parquet file of many row groups in order, a batch of groups at a time; checks its footer', async () => {
    const texts = Array.from({ length: 1500 }, (_, i) => `row ${i}`);
    const path = join(dir, 'groups.parquet');
    const parquet = (data: string[], rowGroupSize?: number) =>
      new Uint8Array(parquetWriteBuffer({ columnData: [{ name: 'text', data, type: 'STRING' }], rowGroupSize }));
    await writeFile(path, parquet(texts, 1));
    expect((await rowsOf(path)).map((r) => r.text)).toEqual(texts);
    const bytes = parquet(texts.slice(0, 3));
    new DataView(bytes.buffer).setUint32(bytes.length - 8, 2 ** 31, true);
    const broken = join(dir, 'footer.parquet');
    await writeFile(broken, bytes);
    await expect(rowsOf(broken)).rejects.toThrow(/footer.parquet: its footer declares 2147483648 bytes of metadata/);
  });

  it('escapes control characters and bidi overrides for the terminal, keeping newlines and tabs', () => {
    expect(escapeControl('a\x1b]0;title\x07b\r\n\tc\u202ed\u009be\x7f')).toBe(
      'a\\x1b]0;title\\x07b\\x0d\n\tc\\u202ed\\x9be\\x7f',
    );

    // the command line's log, errors and JSON lines: nothing a terminal acts on gets through
    let out = '',
      err = '';
    type Sink = NodeJS.WritableStream;
    const sink = (add: (s: string) => void) =>
      ({
        write: (s: string) => {
          add(s);
          return true;
        },
      }) as unknown as Sink;
    const human = new Reporter(
      false,
      sink((s) => (out += s)),
      sink((s) => (err += s)),
    );
    human.info('data: \x1b[2Jevil.jsonl');
    human.fail(new DataError('model.safetensors: tensor "\u202eevil\x1b]0;x\x07" is not in the checkpoint'));
    human.stream('generated \x9b31m text\n');
    expect(err.split('\n')).toEqual([
      'data: \\x1b[2Jevil.jsonl',
      'error: model.safetensors: tensor "\\u202eevil\\x1b]0;x\\x07" is not in the checkpoint',
      '',
    ]);
    expect(out).toBe('generated \\x9b31m text\n');
    out = '';
    new Reporter(
      true,
      sink((s) => (out += s)),
      sink(() => {}),
    ).result({ text: '\x1b\x9b\u2066' }, null);
    expect(out).toBe('{"text":"\\u001b\\u009b\\u2066"}\n');
    expect(JSON.parse(out)).toEqual({ text: '\x1b\x9b\u2066' });
  });
});

describe('blocks to batches', () => {
  it('lays blocks end to end with labels shifted inside each sequence and attention bounded', () => {
    const one: Block = { input_ids: [10, 11, 12], labels: [10, 11, 12], position_ids: [0, 1, 2] };
    // a block holding two sequences (position ids restart), the first token's label masked
    const two: Block = {
      input_ids: [20, 21, 22, 23, 24],
      labels: [-100, 21, 22, 23, 24],
      position_ids: [0, 1, 0, 1, 2],
    };
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
    const o1 = epochOrder(20, 0, 42, true),
      o2 = epochOrder(20, 1, 42, true);
    expect([...o1].sort((x, y) => x - y)).toEqual([...Array(20).keys()]);
    expect(o1).toEqual(epochOrder(20, 0, 42, true));
    expect(o1).not.toEqual(o2);
    expect(o1).not.toEqual(epochOrder(20, 0, 43, true));
    expect(epochOrder(5, 3, 42, false)).toEqual([0, 1, 2, 3, 4]);
  });
});
