// From rows to training blocks, as TRL's SFTTrainer prepares a language-modelling data set:
//   tokenize   text column → input_ids (the tokenizer's special tokens, then EOS appended when
//              the text does not already end with it); rows holding input_ids pass untouched
//   packing    wrapped: every example's ids joined into one stream, cut into blocks of
//              max_length (the last one shorter), as trl.pack_dataset does
//   no packing each example truncated to max_length, one block each
// A block keeps unshifted labels (−100 where no loss is taken) and position ids; a position id
// of 0 starts a sequence, which attention does not look across (./batches.ts).
import { DataError, SkipCounts, type Row } from './read';

/** What of a tokenizer the data pipeline uses (transformers.js' PreTrainedTokenizer has it). */
export interface TextTokenizer {
  encode(text: string): number[];
  eos_token_id?: number | null;
}

export interface SftDataSettings {
  dataset_text_field: string;
  /** Block length for packing, truncation length otherwise; null keeps whole examples. */
  max_length: number | null;
  packing: boolean;
}

export interface Example {
  input_ids: number[];
}

export interface Block {
  input_ids: number[];
  labels: number[]; // unshifted: labels[t] = input_ids[t] or −100
  position_ids: number[];
}

/** Tokenize every usable row; the unusable ones are skipped and counted in `skipped`. */
export async function tokenizeRows(
  rows: AsyncIterable<Row>, tokenizer: TextTokenizer, s: SftDataSettings, skipped: SkipCounts, vocab?: number,
): Promise<Example[]> {
  const out: Example[] = [];
  const eos = tokenizer.eos_token_id ?? null;
  let seen = 0;
  for await (const row of rows) {
    seen++;
    if ('input_ids' in row) {
      const ids = tokenIds(row.input_ids, vocab);
      if (typeof ids === 'string') skipped.add(ids);
      else out.push({ input_ids: ids });
      continue;
    }
    const text = row[s.dataset_text_field];
    if (text === undefined || text === null) {
      skipped.add(`rows without a "${s.dataset_text_field}" field`);
      continue;
    }
    if (typeof text !== 'string') {
      skipped.add(`rows whose "${s.dataset_text_field}" is not a string`);
      continue;
    }
    if (text.trim() === '') {
      skipped.add(`rows whose "${s.dataset_text_field}" is empty`);
      continue;
    }
    const ids = tokenizer.encode(text);
    if (eos !== null && ids[ids.length - 1] !== eos) ids.push(eos);
    out.push({ input_ids: ids });
  }
  if (out.length === 0) {
    const why = skipped.total ? `: all ${seen} rows were skipped (${skipped})` : '';
    throw new DataError(`the data set has no usable rows${why}. Set --dataset_text_field to the column that holds the text.`);
  }
  return out;
}

/** A row's own input_ids, checked: a list of token ids inside the vocabulary. */
function tokenIds(x: unknown, vocab?: number): number[] | string {
  if (!Array.isArray(x) || x.length === 0) return 'rows whose input_ids is not a non-empty list';
  const ids = x.map(Number); // Parquet int64 columns arrive as bigint
  if (!ids.every((i) => Number.isInteger(i) && i >= 0 && (vocab === undefined || i < vocab))) {
    return `rows whose input_ids are not token ids${vocab ? ` below the vocabulary size ${vocab}` : ''}`;
  }
  return ids;
}

export function toBlocks(examples: Example[], s: SftDataSettings): Block[] {
  if (s.max_length !== null && !(Number.isInteger(s.max_length) && s.max_length >= 2)) {
    throw new DataError(`max_length must be an integer ≥ 2, not ${s.max_length}`);
  }
  if (s.packing) {
    if (s.max_length === null) throw new DataError('packing needs a max_length: the length of the packed blocks');
    return packWrapped(examples, s.max_length);
  }
  return examples.map((e) => block(s.max_length === null ? e.input_ids : e.input_ids.slice(0, s.max_length)));
}

/** trl.pack_dataset: all ids end to end, cut every `length` tokens; the last block may be short. */
export function packWrapped(examples: Example[], length: number): Block[] {
  const all = examples.flatMap((e) => e.input_ids);
  const blocks: Block[] = [];
  for (let i = 0; i < all.length; i += length) blocks.push(block(all.slice(i, i + length)));
  return blocks;
}

const block = (ids: number[]): Block => ({ input_ids: ids, labels: [...ids], position_ids: ids.map((_, t) => t) });
