// Rows of a data set file, as Hugging Face `datasets` reads them: JSON Lines, JSON (an array
// of rows, or JSON Lines under a .json name), CSV with a header, Parquet, and plain text (one
// row per line, in a `text` column). The file is a Blob: a File in the page, `openAsBlob` in
// Node, a HubBlob for a Hub file (src/hub/hub-blob.ts). Every format is streamed, in time
// linear in the file and memory bounded by the largest row allowed: text line by line
// (./lines.ts, ./csv.ts), a JSON array element by element (./json-array.ts), Parquet a batch of
// row groups at a time after its footer is checked (./parquet-rows.ts). A malformed or
// oversized row is skipped and counted; a file that cannot be read is a DataError naming it.
import { csvRecords } from './csv';
import { DataError, megabytes, SkipCounts } from './data-error';
import { jsonArrayElements, MAX_DEPTH, tooDeep } from './json-array';
import { fileLines } from './lines';
import { parquetRows } from './parquet-rows';

export { DataError, SkipCounts };

export type Row = Record<string, unknown>;

/** What of a Blob the reader uses; a File, a Blob and a HubBlob all have it. */
export interface DataBlob {
  readonly size: number;
  slice(start?: number, end?: number): DataBlob;
  arrayBuffer(): Promise<ArrayBuffer>;
  text(): Promise<string>;
  stream(): ReadableStream<Uint8Array>;
}
export type DataFormat = 'jsonl' | 'json' | 'csv' | 'parquet' | 'txt';

export interface ReadOptions {
  /** The longest row read (a line, a CSV record, a JSON array element), in bytes; longer ones are skipped, counted. */
  maxRowBytes?: number;
}

/** Rows longer than this are skipped: far above any training example, well below what would exhaust memory. */
export const MAX_ROW_BYTES = 32 * 2 ** 20;

const EXTENSIONS: Record<string, DataFormat> = {
  jsonl: 'jsonl',
  ndjson: 'jsonl',
  json: 'json',
  csv: 'csv',
  parquet: 'parquet',
  txt: 'txt',
  text: 'txt',
};

export function dataFormat(name: string): DataFormat {
  const ext = name.toLowerCase().match(/\.([a-z]+)$/)?.[1] ?? '';
  const f = EXTENSIONS[ext];
  if (!f) throw new DataError(`${name}: unknown data file type ".${ext}"; use .jsonl, .json, .csv, .parquet or .txt`);
  return f;
}

export async function* readRows(
  name: string,
  file: DataBlob,
  skipped: SkipCounts,
  o: ReadOptions = {},
): AsyncGenerator<Row> {
  const format = dataFormat(name);
  const maxBytes = o.maxRowBytes ?? MAX_ROW_BYTES;
  if (file.size === 0) throw new DataError(`${name} is empty (0 bytes): give a file that holds rows`);
  const head = new Uint8Array(await file.slice(0, 4).arrayBuffer());
  const isParquet = head.length === 4 && String.fromCharCode(...head) === 'PAR1';
  if (format === 'parquet' && !isParquet)
    throw new DataError(`${name} is not a Parquet file: it does not start with "PAR1"`);
  if (format !== 'parquet' && (isParquet || (await looksBinary(file)))) {
    const why = isParquet ? ' (it is Parquet; name it .parquet)' : ' (a NUL byte in its first 4 KB)';
    throw new DataError(`${name} is not a ${format.toUpperCase()} text file: it holds binary data${why}`);
  }
  const tooLong = `rows longer than ${megabytes(maxBytes)}`; // a reason rows are skipped
  if (format === 'parquet') yield* parquetRows(name, file);
  else if (format === 'csv') yield* csvRows(name, file, skipped, maxBytes, tooLong);
  else if (format === 'txt') {
    for await (const { text } of fileLines(name, file, { maxBytes })) {
      if (text === null) skipped.add(tooLong);
      else if (text.trim() === '') skipped.add('empty lines');
      else yield { text };
    }
  } else if (format === 'json' && (await firstByte(file)) === 0x5b) {
    for await (const element of jsonArrayElements(name, file, maxBytes)) {
      if ('skipped' in element) skipped.add(element.skipped === 'too long' ? tooLong : TOO_DEEP);
      else if (isRow(element.value)) yield element.value;
      else skipped.add('rows that are not JSON objects');
    }
  } else yield* jsonLines(name, file, skipped, maxBytes, tooLong);
}

async function looksBinary(file: DataBlob): Promise<boolean> {
  const bytes = new Uint8Array(await file.slice(0, 4096).arrayBuffer());
  return bytes.includes(0);
}

/** The file's first byte that is not whitespace or a BOM (a JSON file's "[" or "{"), looked for in its first 1 MB. */
async function firstByte(file: DataBlob): Promise<number | undefined> {
  const bytes = new Uint8Array(await file.slice(0, 2 ** 20).arrayBuffer());
  const from = bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf ? 3 : 0;
  for (let i = from; i < bytes.length; i++) if (![0x20, 0x0a, 0x0d, 0x09].includes(bytes[i])) return bytes[i];
  return undefined;
}

// JSON Lines, one object per line (a .json file that is not one array is read this way too, as
// `datasets` does).
async function* jsonLines(
  name: string,
  file: DataBlob,
  skipped: SkipCounts,
  maxBytes: number,
  tooLong: string,
): AsyncGenerator<Row> {
  let n = 0,
    parsed = 0,
    long = 0;
  for await (const { text } of fileLines(name, file, { maxBytes })) {
    n++;
    if (text === null) {
      long++;
      skipped.add(tooLong);
      continue;
    }
    if (text.trim() === '') continue;
    if (tooDeep(text)) {
      skipped.add(TOO_DEEP);
      continue;
    }
    let row: unknown;
    try {
      row = JSON.parse(text);
    } catch {
      skipped.add('lines that are not valid JSON');
      continue;
    }
    if (!isRow(row)) {
      skipped.add('lines that are not JSON objects');
      continue;
    }
    parsed++;
    yield row;
  }
  if (n > 0 && parsed === 0) {
    const why = long ? ` (${long} longer than ${megabytes(maxBytes)} skipped)` : '';
    const allowed = 'a JSON Lines file holds one {"text": ...} object per line';
    throw new DataError(`${name}: none of its ${n} lines is a JSON object${why}; ${allowed}`);
  }
}

const TOO_DEEP = `rows nested deeper than ${MAX_DEPTH} levels`;

const isRow = (x: unknown): x is Row => typeof x === 'object' && x !== null && !Array.isArray(x);

// CSV with a header row (./csv.ts reads the records).
async function* csvRows(
  name: string,
  file: DataBlob,
  skipped: SkipCounts,
  maxBytes: number,
  tooLong: string,
): AsyncGenerator<Row> {
  let header: string[] | null = null;
  for await (const { fields, line } of csvRecords(name, file, maxBytes)) {
    if (!header) {
      if (!fields) throw new DataError(`${name}, line ${line}: the header row is longer than ${megabytes(maxBytes)}`);
      header = fields;
      const repeated = header.find((h, i) => header!.indexOf(h) !== i);
      if (repeated !== undefined) {
        const column = JSON.stringify(repeated.slice(0, 100));
        throw new DataError(`${name}: the header row repeats the column name ${column}; give each column its name`);
      }
      continue;
    }
    if (!fields) {
      skipped.add(tooLong);
      continue;
    }
    if (fields.length === 1 && fields[0] === '') continue; // a blank line
    if (fields.length !== header.length) {
      skipped.add(`CSV rows without ${header.length} fields`);
      continue;
    }
    const row: Row = {};
    for (const [i, h] of header.entries()) row[h] = fields[i];
    yield row;
  }
  if (!header) throw new DataError(`${name} is empty: a CSV file needs a header row`);
}
