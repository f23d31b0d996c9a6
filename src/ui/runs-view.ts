// The runs kept in this browser (src/store/run-store.ts), in the Train section: each listed with
// its date, model, data in numbers, last losses and state; Resume goes on with one that stopped,
// Open loads the adapter it left (both are the page's to do: they load models), Show draws its
// curves, two ticked compare theirs on one chart, Delete removes it. The line under the table
// says when a run was interrupted (its tab closed or crashed) and where Resume takes it up.
import type * as Comlink from 'comlink';
import type { RunListing } from '../engine/engine';
import type { EngineApi } from '../worker/engine.worker';
import type { LossChart } from './loss-chart';
import { plural } from './dom';

export interface RunsHost {
  engine: Comlink.Remote<EngineApi>;
  chart: LossChart;
  /** Runs an action with its button disabled meanwhile, its error shown. */
  act(button: HTMLButtonElement, f: () => Promise<void>): Promise<void>;
  /** The rows were drawn again (their buttons take the page's state). */
  rendered(): void;
  /** The Train section's status line. */
  status(text: string): void;
  resume(r: RunListing): Promise<void>;
  open(r: RunListing): Promise<void>;
}

/** A run that stopped before its end (by Stop, an error, or a tab that died) and that no tab trains now. */
const resumable = (r: RunListing) => r.state !== 'finished' && !r.live;
/** A run that was training or paused when its tab went away. */
const interrupted = (r: RunListing) => !r.live && (r.state === 'running' || r.state === 'paused');
const started = (r: RunListing) => new Date(r.createdAt).toLocaleString();

export class RunsView {
  /** The runs last listed, by id (for Compare). */
  private listed = new Map<string, RunListing>();
  private readonly table = document.getElementById('runs')!;
  private readonly line = document.getElementById('runs-status')!;

  constructor(private readonly host: RunsHost) {}

  /** Lists the runs again (another tab may have trained, finished or left one meanwhile). */
  async refresh(): Promise<void> {
    const runs = await this.host.engine.listRuns();
    this.listed = new Map(runs.map((r) => [r.id, r]));
    this.table.querySelector('tbody')!.replaceChildren(...runs.map((r) => this.row(r)));
    this.host.rendered();
    if (runs.some((r) => r.live === 'here')) return; // the status line is the training's
    const cut = runs.find(interrupted);
    const at = cut?.checkpoints.at(-1);
    this.line.textContent = cut
      ? `A run of ${cut.modelId} was interrupted at step ${cut.step} of ${cut.maxSteps}` +
        `${at === undefined ? '' : `; its last checkpoint is at step ${at}`}: Resume goes on from there.`
      : '';
  }

  /** A line under the table (a checkpoint saved, say). */
  say(text: string): void {
    this.line.textContent = text;
  }

  private row(r: RunListing): HTMLTableRowElement {
    const tr = document.createElement('tr');
    tr.dataset.run = r.id;
    const cell = (text: string) => {
      const td = document.createElement('td');
      td.textContent = text;
      tr.append(td);
    };
    const last = (key: string) => [...r.history].reverse().find((h) => key in h)?.[key];
    const lastLoss = last('loss'),
      lastEval = last('eval_loss');
    cell(started(r));
    const d = r.dataSummary;
    cell(
      `${r.modelId} on ${r.data}` +
        (d ? ` (${plural(d.rows, 'row')} → ${plural(d.blocks, 'block')}, ${d.targets} tokens with a target)` : ''),
    );
    cell(
      `step ${r.step} of ${r.maxSteps}${lastLoss === undefined ? '' : `, loss ${lastLoss.toFixed(4)}`}` +
        `${lastEval === undefined ? '' : `, eval loss ${lastEval.toFixed(4)}`}`,
    );
    cell(
      r.live === 'here'
        ? 'training here'
        : r.live
          ? 'training in another tab'
          : interrupted(r)
            ? 'interrupted'
            : r.state,
    );
    const buttons = document.createElement('td');
    const button = (label: string, f: () => Promise<void>) => {
      const b = document.createElement('button');
      b.type = 'button';
      b.textContent = label;
      b.setAttribute('aria-label', `${label} the run of ${r.modelId} started ${started(r)}`);
      b.addEventListener('click', () => void this.host.act(b, f));
      buttons.append(b);
    };
    if (resumable(r)) button('Resume', () => this.host.resume(r));
    // its adapter as the run left it, on its model: to chat with, push or export
    if (!r.live && r.checkpoints.length) button('Open', () => this.host.open(r));
    // a run training here or in another tab draws its own chart
    if (!r.live)
      button('Show', async () => {
        this.host.chart.fromHistory(r.history);
        this.host.status(`Showing the run of ${r.modelId} on ${r.data} started ${started(r)}.`);
      });
    // two runs ticked: their curves on one chart
    const compare = document.createElement('input');
    compare.type = 'checkbox';
    compare.className = 'compare';
    compare.setAttribute('aria-label', `Compare the run of ${r.modelId} started ${started(r)}`);
    compare.addEventListener('change', () => this.compareTicked(compare));
    const pick = document.createElement('label');
    pick.append(compare, ' Compare');
    buttons.append(pick);
    if (!r.live)
      button('Delete', async () => {
        await this.host.engine.deleteRun(r.id);
        await this.refresh();
      });
    tr.append(buttons);
    return tr;
  }

  /** At most two runs ticked (the earlier one unticked for a third); two ticked: both on the chart. */
  private compareTicked(box: HTMLInputElement): void {
    const ticked = [...this.table.querySelectorAll<HTMLInputElement>('input.compare:checked')];
    // the box just ticked stays, with the last other one ticked; any before those are unticked
    const others = ticked.filter((b) => b !== box);
    for (const other of others.slice(0, Math.max(0, others.length - 1))) other.checked = false;
    const ids = [...this.table.querySelectorAll<HTMLInputElement>('input.compare:checked')].map(
      (b) => (b.closest('tr') as HTMLTableRowElement).dataset.run!,
    );
    if (ids.length !== 2) return;
    const runs = ids.map((id) => this.listed.get(id)!);
    const label = (r: RunListing) => `${started(r)} ${r.modelId}`;
    this.host.chart.compare(runs.map((r) => ({ id: r.id, label: label(r), history: r.history })));
    this.host.status(`Comparing two runs: ${runs.map(label).join(' and ')}.`);
  }
}
