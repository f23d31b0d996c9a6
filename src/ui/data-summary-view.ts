// The Data section's account of the prepared data: the status line (rows → examples → blocks,
// what was skipped), the table (format, tokens, blocks, padding at the Settings' batch size, the
// pad token, evaluation data, skipped rows), a histogram of token lengths, and the first blocks
// as the model sees them (tokens without a loss target greyed, sequence boundaries marked).
import type { PackingStats, PaddingSaved } from '../data/sft';
import type { DataSummary } from '../engine/engine';
import { plural, rows } from './dom';

const $ = (id: string) => document.getElementById(id)!;

/** The padding a trainer that pads would spend, in micro-batches of `batch` (the Settings' batch size). */
function paddingText(st: PackingStats, pad: PaddingSaved, batch: number, packing: boolean): string {
  const pct = (share: number) => `${(100 * share).toFixed(1)}%`;
  return (
    `batches of ${plural(batch, 'example')} padded to their longest: ${pad.unpacked} pad tokens ` +
    `(${pct(pad.unpackedShare)} of ${st.paddedUnpacked})` +
    (packing
      ? `; packed: ${pad.packed} (${pct(pad.packedShare)} of ${st.paddedPacked}); packing saves ${pad.saved} pad tokens`
      : '')
  );
}

export class DataSummaryView {
  /** Whether the data shown was packed; null before any is shown. */
  private packing: boolean | null = null;

  get shown(): boolean {
    return this.packing !== null;
  }

  show(s: DataSummary, o: { packing: boolean; strategy: string; maxLength: number; batch: number }): void {
    const st = s.stats;
    $('data-status').textContent =
      `${s.files.join(', ')}: ${s.rows} rows → ${st.examples} examples → ${st.blocks} ` +
      `${o.packing ? `blocks (${o.strategy} packing)` : 'sequences'}` +
      (s.skipped ? `; skipped ${s.skipped} (${s.skippedWhy})` : '');
    const table = $('data-stats');
    table.hidden = false;
    this.packing = o.packing;
    rows(table, [
      ['Format', s.kind.replace(/_/g, ' ')],
      [
        'Tokens',
        `${st.tokens} tokenized, ${st.keptTokens} kept` +
          `${st.truncated ? ` (${st.truncated} examples truncated to ${o.maxLength})` : ''}; ` +
          `${st.targets} with a loss target`,
      ],
      ['Blocks', `${st.blocks} from ${plural(st.examples, 'example')}`],
      ['Padding', paddingText(st, s.padding, o.batch, o.packing)],
      ['Pad token', `${s.pad}; batches here are laid end to end and never padded`],
      [
        'Evaluation',
        s.eval
          ? `${plural(s.eval.examples, 'example')} from ${s.eval.source} → ${plural(s.eval.blocks, 'block')}`
          : 'none',
      ],
      ['Skipped rows', s.skipped ? `${s.skipped}: ${s.skippedWhy}` : 'none'],
    ]);
    this.lengths(s);
    this.preview(s);
  }

  /** The padding line at a new batch size. */
  batchChanged(st: PackingStats, pad: PaddingSaved, batch: number): void {
    const row = [...$('data-stats').querySelectorAll('tr')].find(
      (tr) => tr.querySelector('th')?.textContent === 'Padding',
    );
    if (row && this.packing !== null) row.querySelector('td')!.textContent = paddingText(st, pad, batch, this.packing);
  }

  private lengths(s: DataSummary): void {
    const h = s.histogram;
    const top = Math.max(...h.counts);
    $('lengths-bars').replaceChildren(
      ...h.counts.map((n, i) => {
        const bar = document.createElement('div');
        bar.style.height = `${(100 * n) / top}%`;
        const from = h.start + i * h.width;
        bar.title = `${from}–${from + h.width - 1} tokens: ${plural(n, 'example')}`;
        return bar;
      }),
    );
    $('lengths-range').textContent =
      `${h.start} to ${h.start + h.counts.length * h.width - 1} tokens; ${plural(s.stats.examples, 'example')}`;
    $('lengths').hidden = false;
  }

  private preview(s: DataSummary): void {
    const preview = $('data-preview');
    preview.hidden = false;
    preview.replaceChildren(
      ...s.preview.map((segments, i) => {
        const block = document.createElement('pre');
        block.append(`— block ${i + 1} —\n`);
        for (const g of segments) {
          if (g.newSequence)
            block.append(
              Object.assign(document.createElement('span'), {
                className: 'boundary',
                textContent: ' ┃ ',
                title: 'a new sequence: attention does not cross it',
              }),
            );
          const span = Object.assign(document.createElement('span'), { textContent: g.text });
          if (g.masked) Object.assign(span, { className: 'masked', title: 'no loss taken on these tokens' });
          block.append(span);
        }
        return block;
      }),
    );
  }
}
