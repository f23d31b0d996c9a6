// One data set to training and evaluation blocks, the same for the page and the command line:
// the rows of a split's files (./read.ts), TRL's tokenization, truncation and packing
// (./sft.ts), an evaluation split (the data set's own, or a seeded fraction of the training
// rows held out, as datasets' train_test_split), and the numbers both show.
import { seededRandom } from '../generate/generate';
import { DataError, readRows, SkipCounts, type DataBlob, type Row } from './read';
import {
  countTargets,
  holdOut,
  packingStats,
  toBlocks,
  tokenizeRows,
  type Block,
  type DataKind,
  type Example,
  type PackingStats,
  type SftDataSettings,
  type TextTokenizer,
} from './sft';

export interface DataFile {
  name: string;
  blob: DataBlob;
}

export type SplitName = 'train' | 'validation' | 'test';

/** A data set's files by split, named as `datasets` tells splits apart by file name. */
export type DataSplits = Partial<Record<SplitName, DataFile[]>>;

const SPLIT_WORDS: [SplitName, string][] = [
  ['train', 'train|training'],
  ['validation', 'validation|valid|val|dev'],
  ['test', 'test|testing|eval|evaluation'],
];

/**
 * The split a file's path names (…_train.jsonl, data/test-00000-of-00001.parquet,
 * default/validation/0000.parquet), or null: the file name first, then its folders from the
 * nearest (a train_sub/test/0000.parquet is test).
 */
export function splitOfPath(path: string): SplitName | null {
  for (const part of path.toLowerCase().split('/').reverse()) {
    for (const [split, words] of SPLIT_WORDS)
      if (new RegExp(`(^|[-_. ])(${words})([-_. \\d]|$)`).test(part)) return split;
  }
  return null;
}

/**
 * Files into splits by their names. Files that name no split are training files, as `datasets`
 * takes them; a file named for another split never is.
 */
export function splitFiles<T extends { name: string } | { path: string }>(files: T[]): Partial<Record<SplitName, T[]>> {
  const out: Partial<Record<SplitName, T[]>> = {};
  const nameOf = (f: T) => ('name' in f ? f.name : f.path);
  for (const f of files) (out[splitOfPath(nameOf(f)) ?? 'train'] ??= []).push(f);
  return out;
}

export interface PrepareSettings extends SftDataSettings {
  /** The split to train on, and the one to evaluate on (when evaluating). */
  dataset_train_split: SplitName;
  dataset_test_split: SplitName;
  /**
   * Evaluate: on the test split if the data set has one, else on this fraction of the training rows
   * held out (null: no held-out rows).
   */
  evaluate: boolean;
  test_size: number | null;
  seed: number;
  /** Blocks per micro-batch: for the padding numbers. */
  batch: number;
}

export interface Prepared {
  examples: Example[];
  blocks: Block[];
}

export interface PreparedData {
  kind: DataKind;
  files: string[];
  /** Rows read of the training split. */
  rows: number;
  skipped: SkipCounts;
  train: Prepared;
  eval: (Prepared & { source: string }) | null;
  stats: PackingStats;
}

export async function prepareData(
  splits: DataSplits,
  tokenizer: TextTokenizer,
  s: PrepareSettings,
  vocab?: number,
): Promise<PreparedData> {
  const trainFiles = splits[s.dataset_train_split];
  if (!trainFiles?.length)
    throw new DataError(
      `the data set has no "${s.dataset_train_split}" split (it has ` +
        `${Object.keys(splits).join(', ') || 'no data files'})`,
    );
  const skipped = new SkipCounts();
  let rows = 0; // of the training split
  const read = async function* (files: DataFile[], counted: boolean): AsyncGenerator<Row> {
    for (const f of files) {
      for await (const r of readRows(f.name, f.blob, skipped)) {
        if (counted) rows++;
        yield r;
      }
    }
  };
  const { examples: all, kind } = await tokenizeRows(read(trainFiles, true), tokenizer, s, skipped, vocab);
  let train = all,
    evalExamples: Example[] | null = null,
    source = '';
  const testFiles = s.evaluate ? splits[s.dataset_test_split] : undefined;
  if (testFiles?.length) {
    evalExamples = (await tokenizeRows(read(testFiles, false), tokenizer, s, skipped, vocab)).examples;
    source = `the "${s.dataset_test_split}" split`;
  } else if (s.evaluate) {
    if (s.test_size === null)
      throw new DataError(
        `the data set has no "${s.dataset_test_split}" split to evaluate on: hold out part of the training rows ` +
          `(test_size, e.g. 0.1)`,
      );
    ({ train, test: evalExamples } = holdOut(all, s.test_size, seededRandom(s.seed)));
    source = `a held-out ${s.test_size} of the training split`;
  }
  const blocks = toBlocks(train, s);
  const evalBlocks = evalExamples ? toBlocks(evalExamples, s) : null;
  if (evalBlocks && countTargets(evalBlocks) === 0) {
    throw new DataError(
      `the evaluation data (${source}) has no token with a loss target: its examples are all prompt, or ` +
        `truncated to max_length before their completion`,
    );
  }
  return {
    kind,
    rows,
    skipped,
    files: [...trainFiles, ...(testFiles ?? [])].map((f) => f.name),
    train: { examples: train, blocks },
    eval: evalBlocks ? { examples: evalExamples!, blocks: evalBlocks, source } : null,
    stats: packingStats(train, blocks, s, s.batch),
  };
}
