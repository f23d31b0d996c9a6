// Rows of a data set file, as Hugging Face `datasets` reads them: JSON Lines, JSON (an array
// of rows, or JSON Lines under a .json name), CSV with a header, Parquet, and plain text (one
// row per line, in a `text` column). The file is a Blob: a File in the page, `openAsBlob` in
// Node, a HubBlob for a Hub file (src/hub/hub-blob.ts). Text formats are streamed line by
// line and Parquet row group by row group, so a large file is never held whole. A malformed
// row is skipped and counted, never a crash.
import { parquetMetadataAsync, parquetReadObjects, type AsyncBuffer } from 'hyparquet';
import { compressors } from 'hyparquet-compressors';
import { streamChunks } from '../formats/streams';

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

export class DataError extends Error {
  override name = 'DataError';
}

/** Why rows were skipped, with how many each. */
export class SkipCounts {
  readonly reasons = new Map<string, number>();
  add(reason: string): void {
    this.reasons.set(reason, (this.reasons.get(reason) ?? 0) + 1);
  }
  get total(): number {
    let n = 0;
    for (const k of this.reasons.values()) n += k;
    return n;
  }
  toString(): string {
    return [...this.reasons].map(([r, n]) => `${n} ${r}`).join(', ');
  }
}

const EXTENSIONS: Record<string, DataFormat> = {
  jsonl: 'jsonl', ndjson: 'jsonl', json: 'json', csv: 'csv', parquet: 'parquet', txt: 'txt', text: 'txt',
};

export function dataFormat(name: string): DataFormat {
  const ext = name.toLowerCase().match(/\.([a-z]+)$/)?.[1] ?? '';
  const f = EXTENSIONS[ext];
  if (!f) throw new DataError(`${name}: unknown data file type ".${ext}"; use .jsonl, .json, .csv, .parquet or .txt`);
  return f;
}

export async function* readRows(name: string, file: DataBlob, skipped: SkipCounts): AsyncGenerator<Row> {
  const format = dataFormat(name);
  const head = new Uint8Array(await file.slice(0, 4).arrayBuffer());
  const isParquet = head.length === 4 && String.fromCharCode(...head) === 'PAR1';
  if (format === 'parquet' && !isParquet) throw new DataError(`${name} is not a Parquet file: it does not start with "PAR1"`);
  if (format !== 'parquet' && (isParquet || (await looksBinary(file)))) {
    throw new DataError(`${name} is not a ${format.toUpperCase()} text file: it holds binary data${isParquet ? ' (it is Parquet; name it .parquet)' : ''}`);
  }
  if (format === 'parquet') yield* parquetRows(name, file);
  else if (format === 'csv') yield* csvRows(name, file, skipped);
  else if (format === 'txt') {
    for await (const line of lines(file)) {
      if (line.trim() === '') skipped.add('empty lines');
      else yield { text: line };
    }
  } else yield* jsonRows(name, file, format, skipped);
}

/** The file's text as it streams in (UTF-8); a reader that stops early cancels the stream (and a Hub connection). */
function textChunks(file: DataBlob): AsyncGenerator<string> {
  return streamChunks((file.stream() as ReadableStream<BufferSource>).pipeThrough(new TextDecoderStream()));
}

async function looksBinary(file: DataBlob): Promise<boolean> {
  const bytes = new Uint8Array(await file.slice(0, 4096).arrayBuffer());
  return bytes.includes(0);
}

/** Lines of a UTF-8 file, streamed (\n or \r\n). */
async function* lines(file: DataBlob): AsyncGenerator<string> {
  let rest = '';
  for await (const value of textChunks(file)) {
    rest += value;
    let from = 0, nl: number;
    while ((nl = rest.indexOf('\n', from)) >= 0) {
      yield rest.slice(from, nl).replace(/\r$/, '');
      from = nl + 1;
    }
    rest = rest.slice(from); // only the unfinished line is carried to the next chunk
  }
  if (rest !== '') yield rest.replace(/\r$/, '');
}

// JSON Lines, one object per line; a .json file that is one array is read whole (JSON arrays
// cannot be streamed without a streaming parser, and data sets that large ship as JSONL).
async function* jsonRows(name: string, file: DataBlob, format: DataFormat, skipped: SkipCounts): AsyncGenerator<Row> {
  const first = (await file.slice(0, 1024).text()).trimStart()[0];
  if (format === 'json' && first === '[') {
    let all: unknown;
    try {
      all = JSON.parse(await file.text());
    } catch (e) {
      throw new DataError(`${name} is not valid JSON (${(e as Error).message})`);
    }
    for (const row of all as unknown[]) {
      if (isRow(row)) yield row;
      else skipped.add('rows that are not JSON objects');
    }
    return;
  }
  let n = 0, parsed = 0;
  for await (const line of lines(file)) {
    n++;
    if (line.trim() === '') continue;
    let row: unknown;
    try {
      row = JSON.parse(line);
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
    throw new DataError(`${name}: none of its ${n} lines is a JSON object; a JSON Lines file holds one {"text": ...} object per line`);
  }
}

const isRow = (x: unknown): x is Row => typeof x === 'object' && x !== null && !Array.isArray(x);

// CSV as RFC 4180 writes it (and pandas' to_csv): a header row, fields separated by commas,
// quoted fields may hold commas, doubled quotes and newlines. Streamed field by field.
async function* csvRows(name: string, file: DataBlob, skipped: SkipCounts): AsyncGenerator<Row> {
  let header: string[] | null = null;
  for await (const record of csvRecords(file)) {
    if (!header) {
      header = record;
      if (new Set(header).size !== header.length) throw new DataError(`${name}: the header row repeats a column name`);
      continue;
    }
    if (record.length === 1 && record[0] === '') continue; // a blank line
    if (record.length !== header.length) {
      skipped.add(`CSV rows without ${header.length} fields`);
      continue;
    }
    yield Object.fromEntries(header.map((h, i) => [h, record[i]]));
  }
  if (!header) throw new DataError(`${name} is empty: a CSV file needs a header row`);
}

async function* csvRecords(file: DataBlob): AsyncGenerator<string[]> {
  let record: string[] = [];
  let field = '';
  let quoted = false; // inside quotes
  let pendingQuote = false; // a quote seen inside quotes: its end, or the first of a doubled pair
  let any = false;
  for await (const value of textChunks(file)) {
    for (const ch of value) {
      any = true;
      if (pendingQuote) {
        pendingQuote = false;
        if (ch === '"') {
          field += '"';
          continue;
        }
        quoted = false;
      }
      if (quoted) {
        if (ch === '"') pendingQuote = true;
        else field += ch;
      } else if (ch === '"' && field === '') quoted = true;
      else if (ch === ',') {
        record.push(field);
        field = '';
      } else if (ch === '\n') {
        record.push(field.replace(/\r$/, ''));
        yield record;
        record = [];
        field = '';
      } else field += ch;
    }
  }
  if (any && (field !== '' || record.length > 0)) {
    record.push(field.replace(/\r$/, ''));
    yield record;
  }
}

async function* parquetRows(name: string, file: DataBlob): AsyncGenerator<Row> {
  const buffer: AsyncBuffer = { byteLength: file.size, slice: (start, end) => file.slice(start, end).arrayBuffer() };
  let metadata;
  try {
    metadata = await parquetMetadataAsync(buffer);
  } catch (e) {
    throw new DataError(`${name} is not a readable Parquet file (${(e as Error).message})`);
  }
  let start = 0;
  for (const group of metadata.row_groups) {
    const end = start + Number(group.num_rows);
    const rows = await parquetReadObjects({ file: buffer, metadata, rowStart: start, rowEnd: end, compressors });
    for (const row of rows) yield row as Row;
    start = end;
  }
}
