// The elements of a JSON file that is one array, streamed: a small scanner finds where each
// top-level element ends (following strings, their escapes and nesting, without building
// anything), and only that element's bytes are decoded and given to JSON.parse. Memory is
// bounded by the largest element allowed; a larger one is skipped, and one nested deeper than
// rows ever are (code that walks it would run out of stack) is skipped too.
import { concatBytes, streamChunks } from '../formats/streams';
import { DataError } from './data-error';
import { NOT_UTF8 } from './lines';
import type { DataBlob } from './read';

export type Element = { value: unknown } | { skipped: 'too long' | 'too deep' };

/** Nesting no data set row needs; deeper values are refused before anything recurses into them. */
export const MAX_DEPTH = 1000;

// the bytes (and characters) the scanner looks at
const NEWLINE = 0x0a,
  QUOTE = 0x22,
  COMMA = 0x2c,
  BACKSLASH = 0x5c,
  OPEN_SQUARE = 0x5b,
  CLOSE_SQUARE = 0x5d;
const OPEN_CURLY = 0x7b,
  CLOSE_CURLY = 0x7d;
const isSpace = (b: number) => b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09;
const BOM = [0xef, 0xbb, 0xbf];

export async function* jsonArrayElements(name: string, file: DataBlob, maxBytes: number): AsyncGenerator<Element> {
  const decoder = new TextDecoder('utf-8', { fatal: true });
  // where we are: before the '[', between elements, inside one, after the ']'
  let phase: 'open' | 'between' | 'inside' | 'closed' = 'open';
  let depth = 0,
    deepest = 0,
    inString = false,
    escaped = false,
    elements = 0;
  let parts: Uint8Array[] = [],
    bytes = 0,
    tooLong = false;
  let offset = 0,
    line = 1,
    startOffset = 0,
    startLine = 1; // where the file, and the element, are
  const where = (at: number, ln: number) => `${name}, line ${ln} (byte ${at})`;

  const finish = (): Element => {
    elements++;
    const element = { index: elements - 1, at: where(startOffset, startLine) };
    if (tooLong) return { skipped: 'too long' };
    if (deepest > MAX_DEPTH) return { skipped: 'too deep' };
    let text: string;
    try {
      text = decoder.decode(concatBytes(parts, bytes));
    } catch {
      throw new DataError(`${element.at}: element ${element.index} of the array is ${NOT_UTF8}`);
    }
    try {
      return { value: JSON.parse(text) };
    } catch (e) {
      const why = (e as Error).message;
      throw new DataError(`${element.at}: element ${element.index} of the array is not valid JSON (${why})`);
    }
  };

  let bomAt = 0; // bytes of a leading BOM seen
  for await (const chunk of streamChunks(file.stream())) {
    let from = 0; // where the current element's bytes begin in this chunk
    for (let i = 0; i < chunk.length; i++, offset++) {
      const b = chunk[i];
      if (b === NEWLINE) line++;
      if (phase === 'inside') {
        if (inString) {
          if (escaped) escaped = false;
          else if (b === BACKSLASH) escaped = true;
          else if (b === QUOTE) inString = false;
          continue;
        }
        if (b === QUOTE) inString = true;
        else if (b === OPEN_SQUARE || b === OPEN_CURLY) deepest = Math.max(deepest, ++depth);
        else if ((b === CLOSE_SQUARE || b === CLOSE_CURLY) && depth > 0) depth--;
        else if (depth === 0 && (b === COMMA || b === CLOSE_SQUARE)) {
          keep(chunk, from, i);
          yield finish();
          phase = b === COMMA ? 'between' : 'closed';
          continue;
        } else if (depth === 0 && b === CLOSE_CURLY) {
          throw new DataError(`${where(offset, line)}: an unmatched "}"; the file is not valid JSON`);
        }
        continue;
      }
      if (phase === 'open' && offset === bomAt && b === BOM[bomAt]) {
        bomAt++;
        continue;
      }
      if (isSpace(b)) continue;
      if (phase === 'open') {
        if (b !== OPEN_SQUARE) {
          const allowed = 'a JSON data file holds one array of rows ([{...}, ...]) or one object per line';
          throw new DataError(`${where(offset, line)}: ${allowed}`);
        }
        phase = 'between';
      } else if (phase === 'between') {
        if (b === CLOSE_SQUARE && elements === 0)
          phase = 'closed'; // []
        else {
          phase = 'inside';
          [depth, deepest, inString, escaped, parts, bytes, tooLong] = [0, 0, false, false, [], 0, false];
          [startOffset, startLine, from] = [offset, line, i];
          i--; // scan this byte as the element's first
          offset--;
        }
      } else {
        throw new DataError(`${where(offset, line)}: text after the array's closing "]"; a JSON data file is an array`);
      }
    }
    if (phase === 'inside') keep(chunk, from, chunk.length);
  }
  if (phase === 'open') throw new DataError(`${name} holds no JSON value (it is empty or all whitespace)`);
  if ((phase as string) !== 'closed') {
    const at = inString ? 'in a string' : `${depth} levels deep`;
    throw new DataError(`${name}: the file ends inside the array (${at}); it is cut short or not valid JSON`);
  }

  /** An element's bytes from this chunk, while under the cap. */
  function keep(chunk: Uint8Array, from: number, end: number): void {
    if (tooLong) return;
    if (bytes + end - from > maxBytes) {
      tooLong = true;
      parts = [];
      return;
    }
    parts.push(chunk.subarray(from, end));
    bytes += end - from;
  }
}

/** Whether JSON text nests deeper than MAX_DEPTH (only a text that long can). */
export function tooDeep(text: string): boolean {
  if (text.length <= MAX_DEPTH) return false;
  let depth = 0,
    inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === BACKSLASH) i++;
      else if (c === QUOTE) inString = false;
    } else if (c === QUOTE) inString = true;
    else if (c === OPEN_SQUARE || c === OPEN_CURLY) {
      if (++depth > MAX_DEPTH) return true;
    } else if (c === CLOSE_SQUARE || c === CLOSE_CURLY) depth--;
  }
  return false;
}
