// CSV records as RFC 4180 writes them (and pandas' to_csv): fields separated by commas; a field
// that starts with a quote may hold commas, doubled quotes and line ends (a quote elsewhere is
// an ordinary character, as pandas takes it). A scanner follows the quotes in the bytes as they
// stream in, to find where each record ends, so a quoted field spanning many lines costs time
// linear in its size; only then is the record decoded (strictly, as UTF-8) and split into
// fields. A record longer than the cap is followed to its end but not kept: `fields: null`.
import { concatBytes, streamChunks } from '../formats/streams';
import { DataError } from './data-error';
import { NOT_UTF8 } from './lines';
import type { DataBlob } from './read';

export interface CsvRecord {
  /** null: longer than the cap. */
  fields: string[] | null;
  /** The line it starts on (1-based). */
  line: number;
}

const NEWLINE = 0x0a,
  QUOTE = 0x22,
  COMMA = 0x2c;

export async function* csvRecords(name: string, file: DataBlob, maxBytes: number): AsyncGenerator<CsvRecord> {
  const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  let quoted = false,
    fieldStart = true,
    justClosed = false; // the scanner's state
  let parts: Uint8Array[] = [],
    bytes = 0,
    tooLong = false,
    line = 1,
    start = 1,
    first = true;

  const finish = (): CsvRecord => {
    const record = { line: start };
    if (tooLong) return { ...record, fields: null };
    let text: string;
    try {
      text = decoder.decode(concatBytes(parts, bytes));
    } catch {
      throw new DataError(`${name}, line ${start}: ${NOT_UTF8}`);
    }
    if (text.endsWith('\r')) text = text.slice(0, -1);
    return { ...record, fields: splitFields(text) };
  };
  const keep = (chunk: Uint8Array, from: number, end: number) => {
    if (tooLong || end === from) return;
    if (bytes + end - from > maxBytes) {
      tooLong = true;
      parts = [];
    } else {
      parts.push(chunk.subarray(from, end));
      bytes += end - from;
    }
  };

  for await (const chunk of streamChunks(file.stream())) {
    // a BOM is not part of the first field (whose quote may come right after it)
    let from = first && chunk[0] === 0xef && chunk[1] === 0xbb && chunk[2] === 0xbf ? 3 : 0;
    first = false;
    for (let i = from; i < chunk.length; i++) {
      const b = chunk[i];
      if (b === NEWLINE) line++;
      if (quoted) {
        if (b === QUOTE) {
          quoted = false;
          justClosed = true;
        }
        continue;
      }
      if (b === QUOTE) {
        if (justClosed || fieldStart) quoted = true; // a doubled quote inside quotes, or an opening one
        fieldStart = false;
        justClosed = false;
      } else if (b === NEWLINE) {
        keep(chunk, from, i);
        yield finish();
        [parts, bytes, tooLong, start, from, fieldStart, justClosed] = [[], 0, false, line, i + 1, true, false];
      } else {
        // (two assignments, not a destructuring: this runs for every byte of the file)
        fieldStart = b === COMMA;
        justClosed = false;
      }
    }
    keep(chunk, from, chunk.length);
  }
  if (quoted) {
    const fix = 'close its quote (") or remove it';
    throw new DataError(`${name}, line ${start}: a quoted field starts in this record and is never closed; ${fix}`);
  }
  if (bytes > 0 || tooLong) yield finish(); // the last record, without a line end
}

/** A record's fields (its quotes already known to be balanced). */
function splitFields(s: string): string[] {
  const fields: string[] = [];
  let field = '',
    quoted = false,
    i = 0;
  while (i < s.length) {
    if (quoted) {
      const q = s.indexOf('"', i);
      if (q < 0) {
        // (the scanner saw the closing quote; this is only a guard)
        field += s.slice(i);
        break;
      }
      field += s.slice(i, q);
      if (s.charCodeAt(q + 1) === QUOTE)
        field += '"'; // a doubled quote
      else quoted = false;
      i = q + (quoted ? 2 : 1);
    } else if (field === '' && s.charCodeAt(i) === QUOTE) {
      quoted = true;
      i++;
    } else {
      const comma = s.indexOf(',', i);
      if (comma < 0) {
        field += s.slice(i);
        break;
      }
      fields.push(field + s.slice(i, comma));
      field = '';
      i = comma + 1;
    }
  }
  fields.push(field);
  return fields;
}
