// The lines of a UTF-8 file as it streams in, in time linear in its size and with memory bounded
// by the longest line allowed. Newlines are found in the bytes (a 0x0A byte is never part of a
// multi-byte UTF-8 character), and only in each new chunk: the chunks of an unfinished line wait
// in a list and are joined once, when its newline comes. A line longer than the cap is not kept:
// it comes out as `text: null`, for the reader to skip and count.
//
// Invalid UTF-8 is refused, as `datasets` refuses it (its JSON, CSV and text readers decode
// strictly): a clear error with the line, rather than text silently changed.
import { concatBytes, streamChunks } from '../formats/streams';
import { DataError } from './data-error';
import type { DataBlob } from './read';

export interface Line {
  /** The line's text without its line end (and without a BOM on line 1); null: longer than the cap. */
  text: string | null;
  /** 1-based. */
  line: number;
}

export interface LineOptions {
  /** The longest line kept, in bytes. */
  maxBytes: number;
}

const NEWLINE = 0x0a;
export const NOT_UTF8 = `not valid UTF-8 text; save the file as UTF-8 (an editor's "Save as" or iconv does it)`;

export async function* fileLines(name: string, file: DataBlob, o: LineOptions): AsyncGenerator<Line> {
  const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  let parts: Uint8Array[] = [],
    bytes = 0,
    tooLong = false,
    line = 0;
  const finish = (): Line => {
    line++;
    if (tooLong) return { text: null, line };
    let text: string;
    try {
      text = decoder.decode(concatBytes(parts, bytes));
    } catch {
      throw new DataError(`${name}, line ${line}: ${NOT_UTF8}`);
    }
    if (line === 1 && text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    if (text.endsWith('\r')) text = text.slice(0, -1);
    return { text, line };
  };
  const reset = () => {
    parts = [];
    bytes = 0;
    tooLong = false;
  };
  for await (const chunk of streamChunks(file.stream())) {
    let from = 0;
    for (;;) {
      const nl = chunk.indexOf(NEWLINE, from);
      const end = nl < 0 ? chunk.length : nl;
      if (!tooLong && bytes + (end - from) > o.maxBytes) {
        tooLong = true;
        parts = [];
      }
      if (!tooLong && end > from) {
        parts.push(chunk.subarray(from, end));
        bytes += end - from;
      }
      if (nl < 0) break;
      yield finish();
      reset();
      from = nl + 1;
    }
  }
  if (bytes > 0 || tooLong) yield finish(); // the last line, without a newline
}
