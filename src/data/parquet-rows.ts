// The rows of a Parquet file, through hyparquet, after checking what its footer declares: the
// metadata's length inside the file, then num_rows, the row groups and their row counts (safe
// integers that add up), and every column chunk's bytes inside the file, all before anything is
// read or allocated for them. Row groups are read a batch at a time (many small groups in one
// read of their bytes), so a file of 100,000 tiny row groups costs what one of a few large
// groups costs, and no more than a batch of rows is held at once.
// hyparquet trusts each page header: it allocates uncompressed_page_size bytes to decompress into and
// arrays of num_values entries, so a file of a few hundred bytes could make it reserve gigabytes. The
// footer's column chunks are bounded here (values per row, bytes), every page header of a batch is
// checked against its chunk before hyparquet reads it, and every decompressor refuses an output past the cap.
import {
  parquetMetadata,
  parquetReadObjects,
  type AsyncBuffer,
  type ColumnMetaData,
  type CompressionCodec,
  type Compressors,
  type FileMetaData,
  type PageHeader,
  type RowGroup,
} from 'hyparquet';
import { parquetHeader } from 'hyparquet/src/column.js';
import { compressors, decompressZstd } from 'hyparquet-compressors';
import { DataError, megabytes } from './data-error';
import type { DataBlob, Row } from './read';

const MB = 2 ** 20;
/** Bounds on what a footer may declare: far above any data set's, far below what would exhaust memory. */
export const PARQUET_LIMITS = {
  /** Parsed metadata takes some 50 times its bytes in memory (100,000 one-column row groups: 7 MB, 400 MB). */
  footerBytes: 8 * MB,
  rowGroups: 100_000, // read in seconds, batched; more is refused
  rows: 2 ** 31 - 1,
  /** A row group is decoded whole: its rows are held at once. */
  groupRows: 2 ** 22,
  /** A column chunk's declared values (its pages' arrays hold this many entries): a list column's rows may
   * hold many values, but not more than this many each, nor more than chunkValues in all. */
  valuesPerRow: 1024,
  chunkValues: 2 ** 24,
  /** A column chunk's bytes once decompressed, and so any one page's (hyparquet allocates a page whole). */
  chunkBytes: 256 * MB,
};
/** The most a page can grow when decompressed, by the codec's format (a Snappy copy: 64 bytes from a 3-byte
 * tag; an LZ4 length byte: 255 more; a deflate symbol: 258 bytes from 2 bits). ZSTD and BROTLI have no such
 * bound (a run-length block repeats one byte 128 KB times), so only chunkBytes bounds them. */
const MAX_RATIO: Partial<Record<CompressionCodec, number>> = { SNAPPY: 22, LZ4: 256, LZ4_RAW: 256, GZIP: 1033 };
const RATIO_SLACK = 64; // headers and preambles that make tiny pages grow by more than the ratio
// One read: consecutive row groups up to these sizes.
const BATCH = { groups: 256, rows: 65_536, bytes: 16 * MB };

export async function* parquetRows(name: string, file: DataBlob): AsyncGenerator<Row> {
  const { metadata, groups } = await checkedMetadata(name, file);
  let first = 0,
    row = 0;
  while (first < groups.length) {
    let last = first,
      rows = groups[first].rows,
      bytes = groups[first].end - groups[first].start;
    while (last + 1 < groups.length && last + 1 - first < BATCH.groups) {
      const next = groups[last + 1];
      if (rows + next.rows > BATCH.rows || bytes + next.end - next.start > BATCH.bytes) break;
      last++;
      rows += next.rows;
      bytes += next.end - next.start;
    }
    const batch = groups.slice(first, last + 1);
    let read: Row[];
    try {
      read = (await parquetReadObjects({
        file: await checkedPages(name, file, batch),
        compressors: boundedCompressors(name),
        metadata: { ...metadata, row_groups: batch.map((g) => g.group), num_rows: BigInt(rows) },
      })) as Row[];
    } catch (e) {
      if (e instanceof DataError) throw e; // already names the file and what is allowed
      const [a, b] = [batch[0].index, batch[batch.length - 1].index];
      const span = a === b ? `row group ${a}` : `row groups ${a}–${b}`;
      const why = (e as Error).message;
      throw new DataError(
        `${name}: ${span} (rows ${row}–${row + rows - 1}) cannot be read (${why}); ` +
          'the file is damaged or uses a feature this reader lacks',
      );
    }
    yield* read;
    row += rows;
    first = last + 1;
  }
}

interface CheckedGroup {
  group: RowGroup;
  /** Its place in the file's list. */
  index: number;
  rows: number;
  /** The bytes its column chunks span. */
  start: number;
  end: number;
  chunks: CheckedChunk[];
}

interface CheckedChunk {
  at: string;
  start: number;
  end: number;
  codec: CompressionCodec;
  /** Its declared values and decompressed bytes, within the bounds: no page may claim more. */
  values: number;
  bytes: number;
}

type Checked = { metadata: FileMetaData; groups: CheckedGroup[] };

async function checkedMetadata(name: string, file: DataBlob): Promise<Checked> {
  const damaged = (what: string) =>
    new DataError(`${name}: ${what}; the file is damaged or not Parquet (write it again, e.g. with to_parquet)`);
  // "PAR1", the data, the metadata, its length (4 bytes), "PAR1"
  if (file.size < 12) throw damaged(`${file.size} bytes are too few for a Parquet file`);
  const tail = new DataView(await file.slice(file.size - 8).arrayBuffer());
  if (tail.getUint32(4, true) !== 0x31524150) throw damaged('it does not end with "PAR1" (was it cut short?)');
  const length = tail.getUint32(0, true);
  const dataEnd = file.size - 8 - length;
  if (length === 0 || dataEnd < 4) {
    throw damaged(`its footer declares ${length} bytes of metadata, and the file holds ${file.size - 12} before it`);
  }
  if (length > PARQUET_LIMITS.footerBytes) {
    const most = megabytes(PARQUET_LIMITS.footerBytes);
    throw new DataError(
      `${name}: its footer declares ${megabytes(length)} of metadata, more than the ${most} read; ` +
        'write it with fewer row groups',
    );
  }
  let metadata: FileMetaData;
  try {
    metadata = parquetMetadata(await file.slice(dataEnd).arrayBuffer());
  } catch (e) {
    throw damaged(`its metadata cannot be read (${(e as Error).message})`);
  }
  const rows = count(metadata.num_rows, PARQUET_LIMITS.rows);
  if (rows === null) {
    throw damaged(`num_rows is ${metadata.num_rows}; allowed: whole numbers 0 to ${PARQUET_LIMITS.rows}`);
  }
  if (!Array.isArray(metadata.row_groups)) throw damaged('its metadata lists no row groups');
  if (metadata.row_groups.length > PARQUET_LIMITS.rowGroups) {
    const n = metadata.row_groups.length;
    const most = PARQUET_LIMITS.rowGroups;
    throw new DataError(`${name} declares ${n} row groups, more than the ${most} read; write it in larger row groups`);
  }
  const groups: CheckedGroup[] = [];
  let sum = 0;
  for (const [i, group] of metadata.row_groups.entries()) {
    const n = count(group.num_rows, PARQUET_LIMITS.groupRows);
    if (n === null) {
      throw new DataError(
        `${name}: row group ${i} declares ${group.num_rows} rows; allowed: whole numbers 0 to ` +
          `${PARQUET_LIMITS.groupRows} (write the file with smaller row groups, e.g. row_group_size=100_000)`,
      );
    }
    let start = Infinity,
      end = 0;
    const chunks: CheckedChunk[] = [];
    for (const [j, column] of (group.columns ?? []).entries()) {
      const at = `row group ${i}, column chunk ${j}`;
      if (column.file_path) {
        const path = JSON.stringify(column.file_path).slice(0, 100);
        throw new DataError(`${name}: ${at} is in another file (${path}); only self-contained Parquet files are read`);
      }
      const meta = column.meta_data;
      if (!meta) throw damaged(`${at} has no metadata`);
      const from = count(meta.dictionary_page_offset || meta.data_page_offset, dataEnd);
      const size = count(meta.total_compressed_size, dataEnd);
      if (from === null || size === null || from < 4 || from + size > dataEnd) {
        const declared = `${meta.dictionary_page_offset || meta.data_page_offset}+${meta.total_compressed_size}`;
        throw damaged(`${at} declares bytes ${declared}, outside the file's data (bytes 4–${dataEnd})`);
      }
      const mostValues = Math.min(Math.max(n, 1) * PARQUET_LIMITS.valuesPerRow, PARQUET_LIMITS.chunkValues);
      const values = count(meta.num_values, mostValues);
      if (values === null) {
        throw new DataError(
          `${name}: ${at} declares ${meta.num_values} values; allowed: whole numbers 0 to ` +
            `${mostValues} (${PARQUET_LIMITS.valuesPerRow} a row, ${PARQUET_LIMITS.chunkValues} a chunk; ` +
            'write the file with smaller row groups, e.g. row_group_size=100_000)',
        );
      }
      const mostBytes = mostUncompressed(meta.codec, size);
      const bytes = count(meta.total_uncompressed_size, mostBytes);
      if (bytes === null) throw tooBig(name, at, `${meta.total_uncompressed_size}`, mostBytes, meta.codec);
      chunks.push({ at, start: from, end: from + size, codec: meta.codec, values, bytes });
      start = Math.min(start, from);
      end = Math.max(end, from + size);
    }
    if (n > 0 && end === 0) throw damaged(`row group ${i} declares ${n} rows and no column chunks`);
    groups.push({ group, index: i, rows: n, start: Math.min(start, end), end, chunks });
    sum += n;
  }
  if (sum !== rows) throw damaged(`num_rows is ${rows}, but its row groups hold ${sum}`);
  return { metadata, groups: groups.filter((g) => g.rows > 0) };
}

/** The most bytes `compressed` bytes of a codec can decompress to, within chunkBytes. */
function mostUncompressed(codec: ColumnMetaData['codec'], compressed: number): number {
  const ratio = codec === 'UNCOMPRESSED' ? 1 : MAX_RATIO[codec];
  const most = ratio === undefined ? Infinity : compressed * ratio + RATIO_SLACK;
  return Math.min(most, PARQUET_LIMITS.chunkBytes);
}

function tooBig(name: string, at: string, declared: string, most: number, codec: string): DataError {
  const cap = megabytes(PARQUET_LIMITS.chunkBytes);
  return new DataError(
    `${name}: ${at} declares ${declared} bytes decompressed (${codec}); allowed: at most ` +
      `${most} (what its compressed bytes can hold, and ${cap} a chunk; write it with smaller row groups)`,
  );
}

/**
 * The file as hyparquet reads a batch, after every page header of its column chunks is checked against the
 * chunk: hyparquet allocates what a page header declares, before decoding a byte of the page. The chunks'
 * bytes are kept for hyparquet's reads of them, so they are read once.
 */
async function checkedPages(name: string, file: DataBlob, batch: CheckedGroup[]): Promise<AsyncBuffer> {
  const base = prefetched(file, batch);
  const read = new Map<string, ArrayBuffer>();
  for (const group of batch) {
    for (const chunk of group.chunks) {
      const key = `${chunk.start}-${chunk.end}`;
      if (read.has(key)) continue; // groups may share a chunk's bytes
      const bytes = await base.slice(chunk.start, chunk.end);
      checkChunkPages(name, chunk.at, chunk, bytes);
      read.set(key, bytes);
    }
  }
  return {
    byteLength: file.size,
    slice: (a, b = file.size) => read.get(`${a}-${b}`) ?? base.slice(a, b),
  };
}

/** Each page header in a column chunk's bytes, within what the chunk declares (as hyparquet walks them). */
function checkChunkPages(name: string, at: string, chunk: CheckedChunk, bytes: ArrayBuffer): void {
  const reader = { view: new DataView(bytes), offset: 0 };
  let values = 0,
    pageAt = 0;
  const bad = (what: string) =>
    new DataError(
      `${name}: ${at}: the page header at byte ${chunk.start + pageAt} ` +
        `declares ${what}; the file is damaged or was written wrong (write it again, e.g. with to_parquet)`,
    );
  while (reader.offset < bytes.byteLength - 1) {
    pageAt = reader.offset;
    let header: PageHeader;
    try {
      header = parquetHeader(reader);
    } catch {
      return; // hyparquet, reaching these bytes, fails on them the same way, before allocating for them
    }
    const compressed = header.compressed_page_size,
      size = header.uncompressed_page_size;
    if (!(Number.isSafeInteger(compressed) && compressed >= 0)) throw bad(`${compressed} compressed bytes`);
    if (!(Number.isSafeInteger(size) && size >= 0)) throw bad(`${size} bytes decompressed`);
    const most = Math.min(chunk.bytes, mostUncompressed(chunk.codec, compressed));
    if (size > most) {
      throw bad(
        `${size} bytes decompressed from ${compressed} (${chunk.codec}); allowed: at most ${most} ` +
          `(the chunk declares ${chunk.bytes}, and ${compressed} compressed bytes can hold no more)`,
      );
    }
    const v1 = header.data_page_header,
      v2 = header.data_page_header_v2,
      dict = header.dictionary_page_header;
    const n = v1?.num_values ?? v2?.num_values ?? dict?.num_values ?? 0;
    const left = dict ? chunk.values : chunk.values - values; // a dictionary holds at most one entry a value
    if (!(Number.isSafeInteger(n) && n >= 0 && n <= left)) {
      throw bad(`${n} values; allowed: whole numbers 0 to ${left} (the chunk declares ${chunk.values} in all)`);
    }
    if (!dict) values += n;
    if (v2) {
      // hyparquet decodes num_values − num_nulls values, and decompresses what the levels leave of the page
      const { num_nulls: nulls, definition_levels_byte_length: d, repetition_levels_byte_length: r } = v2;
      if (!(Number.isSafeInteger(nulls) && nulls >= 0 && nulls <= n)) throw bad(`${nulls} nulls of ${n} values`);
      const levels = [d, r].every((x) => Number.isSafeInteger(x) && x >= 0) ? d + r : -1;
      if (levels < 0 || levels > Math.min(size, compressed)) {
        throw bad(`levels of ${d}+${r} bytes in a page of ${compressed} (${size} decompressed)`);
      }
    }
    reader.offset += compressed;
  }
}

/** hyparquet-compressors' decompressors, each refusing an output past chunkBytes before allocating it. */
function boundedCompressors(name: string): Compressors {
  const bounded: Compressors = {};
  // fzstd, given no output, allocates what the frame header declares (up to 2 GB): give it the page's
  const zstd = (input: Uint8Array, length: number) => decompressZstd(input, new Uint8Array(length));
  const codecs: Compressors = { ...compressors, ZSTD: zstd };
  for (const [codec, decompress] of Object.entries(codecs) as [CompressionCodec, Compressors[CompressionCodec]][]) {
    if (!decompress) continue;
    bounded[codec] = (input, length) => {
      if (!(Number.isSafeInteger(length) && length >= 0 && length <= PARQUET_LIMITS.chunkBytes)) {
        throw new DataError(
          `${name}: a ${codec} page declares ${length} bytes decompressed; allowed: 0 to ` +
            `${megabytes(PARQUET_LIMITS.chunkBytes)} (the file is damaged, or write it with smaller pages)`,
        );
      }
      return decompress(input, length);
    };
  }
  return bounded;
}

/** A declared count or offset as a number, if it is a whole number from 0 to `max`; null otherwise. */
function count(v: unknown, max: number): number | null {
  if (typeof v === 'bigint') return v >= 0n && v <= BigInt(max) ? Number(v) : null;
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 && v <= max ? v : null;
}

/** The file, with the bytes of a batch of row groups read once, up front (when they lie close together). */
function prefetched(file: DataBlob, batch: CheckedGroup[]): AsyncBuffer {
  const start = Math.min(...batch.map((g) => g.start)),
    end = Math.max(...batch.map((g) => g.end));
  const direct = (a: number, b?: number) => file.slice(a, b).arrayBuffer();
  if (end - start > 2 * BATCH.bytes) return { byteLength: file.size, slice: direct };
  const bytes = direct(start, end);
  return {
    byteLength: file.size,
    slice: (a, b = file.size) =>
      a >= start && b <= end ? bytes.then((buf) => buf.slice(a - start, b - start)) : direct(a, b),
  };
}
