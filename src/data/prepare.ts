// One data set to training and evaluation blocks, the same for the page and the command line:
// the rows of a split's files (./read.ts), TRL's tokenization, truncation and packing
// (./sft.ts), an evaluation split (the data set's own, or a seeded fraction of the training
// rows held out, as datasets' train_test_split), and the numbers both show.
import { seededRandom } from '../generate/generate';
import { DataError, readRows, SkipCounts, type DataBlob, type Row } from './read';
import { configFiles, type DatasetConfig } from './dataset-configs';
import {
  countTargets,
  dropUntrainable,
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

/** A split's name: train, validation, test, or what a data set's sharded file names say (train_sft). */
export type SplitName = string;

/** A data set's files by split, named as `datasets` tells splits apart by file name. */
export type DataSplits = Partial<Record<SplitName, DataFile[]>>;

const SPLIT_WORDS: [SplitName, string][] = [
  ['train', 'train|training'],
  ['validation', 'validation|valid|val|dev'],
  ['test', 'test|testing|eval|evaluation'],
];

/** A path component naming a split by one of `datasets`' keywords, bounded by - . _ space or digits. */
function keywordSplit(part: string): SplitName | null {
  for (const [split, words] of SPLIT_WORDS)
    if (new RegExp(`(^|[-_. \\d])(${words})([-_. \\d]|$)`).test(part.toLowerCase())) return split;
  return null;
}

/** datasets' sharded layout, data/{split}-00000-of-00001.parquet: any \w+ split name. */
const SHARDED = /^data\/(\w+(?:\.\w+)*)-\d{5}-of-\d{5}[^/]*$/;

/** The split a file's folders name by keyword, the nearest first (default/validation/0000.parquet). */
function byFolder(parts: string[]): SplitName | null {
  for (const dir of parts.slice(0, -1).reverse()) {
    const split = keywordSplit(dir);
    if (split) return split;
  }
  return null;
}

/**
 * Files into splits by their paths, as `datasets` resolves a repo without a configs: section:
 * the sharded layout data/{split}-NNNNN-of-NNNNN.* first, its split names as they are
 * (train_sft, test_gen); else split keywords in folder names, else in file names; where some
 * file names a split that way, a file that names none is left out, as `datasets` leaves it;
 * where none does, every file is training data.
 */
export function splitFiles<T extends { name: string } | { path: string }>(files: T[]): Partial<Record<SplitName, T[]>> {
  const pathOf = (f: T) => ('name' in f ? f.name : f.path);
  const group = (splitOf: (f: T) => SplitName | null) => {
    const out: Partial<Record<SplitName, T[]>> = {};
    for (const f of files) {
      const split = splitOf(f);
      if (split) (out[split] ??= []).push(f);
    }
    return Object.keys(out).length ? out : null;
  };
  return (
    group((f) => pathOf(f).match(SHARDED)?.[1] ?? null) ??
    group((f) => byFolder(pathOf(f).split('/'))) ??
    group((f) => keywordSplit(pathOf(f).split('/').at(-1)!)) ?? { train: files }
  );
}

/**
 * A data set's files into splits under its config (./dataset-configs.ts): by the config's
 * data_files where it gives them, else by their names under its data_dir; with no config (a
 * repo without `configs:`), by their names. `where` names the data set in errors.
 */
export function configSplitFiles<T extends { name: string } | { path: string }>(
  files: T[],
  config: DatasetConfig | null,
  where: string,
): Partial<Record<SplitName, T[]>> {
  if (!config) return splitFiles(files);
  const pathOf = (f: T) => ('name' in f ? f.name : f.path);
  const got = configFiles(config, files, pathOf, where);
  if ('splits' in got) return got.splits;
  // split by their names inside data_dir, as datasets infers the splits there
  const dir = config.dataDir ? `${config.dataDir}/` : '';
  const inside = got.unsplit.map((f) => ({ name: pathOf(f).slice(dir.length), file: f }));
  return Object.fromEntries(Object.entries(splitFiles(inside)).map(([k, v]) => [k, v!.map((x) => x.file)]));
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
  /**
   * TRL's shuffle_dataset: each data set's examples shuffled by `seed` before packing, and its
   * blocks after, as datasets' shuffle(seed) does (with this tool's own permutation, not numpy's).
   */
  shuffle_dataset?: boolean;
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

/** Examples to blocks; with shuffle_dataset, shuffled before packing and after, as TRL shuffles a data set. */
function shuffledBlocks(examples: Example[], s: PrepareSettings): Block[] {
  if (!s.shuffle_dataset) return toBlocks(examples, s);
  return shuffled(toBlocks(s.packing ? shuffled(examples, s.seed) : examples, s), s.seed);
}

/** A copy of `xs` in an order drawn from `seed` alone (each call starts the generator afresh, as datasets does). */
export function shuffled<T>(xs: T[], seed: number): T[] {
  const out = [...xs];
  const random = seededRandom(seed);
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
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
  train = dropUntrainable(train, s, skipped);
  if (train.length === 0)
    throw new DataError(
      `no training example has a token to learn from once truncated to max_length ${s.max_length} (${skipped}): ` +
        'raise max_length, or keep the end (truncation_mode keep_end)',
    );
  if (evalExamples) evalExamples = dropUntrainable(evalExamples, s, skipped);
  const blocks = shuffledBlocks(train, s);
  const evalBlocks = evalExamples ? shuffledBlocks(evalExamples, s) : null;
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
