// What a prepared data set is, for people: the numbers the page shows under Prepare and the
// command line logs (files, rows, format, tokens, blocks, padding, skipped rows, the pad token,
// evaluation data, a length histogram, the first blocks as text). One summary, two views.
import type { PreparedData } from '../data/prepare';
import {
  blockSegments,
  lengthHistogram,
  paddingSaved,
  padToken,
  type DataKind,
  type PackingStats,
  type PaddingSaved,
  type TextTokenizer,
} from '../data/sft';

export interface DataSummary {
  files: string[];
  rows: number;
  kind: DataKind;
  stats: PackingStats;
  padding: PaddingSaved;
  skipped: number;
  /** The skipped rows by reason, in words. */
  skippedWhy: string;
  skippedReasons: Record<string, number>;
  /** What a padded layout would be filled with (the tokenizer's, or EOS as the worked example sets it). */
  pad: string;
  /** Where evaluation data comes from, and how much. */
  eval: { examples: number; blocks: number; source: string } | null;
  /** Token counts of the training examples (before truncation). */
  histogram: { start: number; width: number; counts: number[] };
  /** The first blocks as text, special tokens visible, runs without a loss target marked. */
  preview: { text: string; masked: boolean; newSequence: boolean }[][];
}

/** The summary of `d`, its first `previewBlocks` blocks decoded (each run of a block at once). */
export async function dataSummary(
  d: PreparedData,
  tokenizer: TextTokenizer & { decode(ids: number[], o: { skip_special_tokens: boolean }): Promise<string> },
  previewBlocks = 3,
): Promise<DataSummary> {
  const preview = await Promise.all(
    d.train.blocks.slice(0, previewBlocks).map((b) =>
      Promise.all(
        blockSegments(b).map(async (g) => ({
          text: await tokenizer.decode(g.ids, { skip_special_tokens: false }),
          masked: g.masked,
          newSequence: g.newSequence,
        })),
      ),
    ),
  );
  return {
    files: d.files,
    rows: d.rows,
    kind: d.kind,
    stats: d.stats,
    padding: paddingSaved(d.stats),
    skipped: d.skipped.total,
    skippedWhy: String(d.skipped),
    skippedReasons: Object.fromEntries(d.skipped.reasons),
    pad: describePad(tokenizer),
    eval: d.eval ? { examples: d.eval.examples.length, blocks: d.eval.blocks.length, source: d.eval.source } : null,
    histogram: lengthHistogram(d.train.examples.map((e) => e.input_ids.length)),
    preview,
  };
}

/** The pad token in words: its text and id, and where it comes from. */
export function describePad(tokenizer: TextTokenizer): string {
  const p = padToken(tokenizer);
  const id = p.id !== null ? ` (id ${p.id})` : '';
  return `${p.token ?? 'none'}${id}${p.from === 'eos' ? ', the EOS token, as the worked example sets it' : ''}`;
}
