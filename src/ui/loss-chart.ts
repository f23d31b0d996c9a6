// The Train section's chart (uPlot): a run's loss, learning rate and evaluation loss by step, as
// it trains or from a kept run's log_history; or two kept runs' curves compared. The element's
// data-losses, data-eval-losses and data-compare attributes hold what is drawn, for a script or a
// test to read.
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

/** A kept run as the comparison draws it. */
export interface ChartedRun {
  id: string;
  label: string;
  history: Record<string, number>[];
}

export class LossChart {
  private chart: uPlot | null = null;
  /** step, loss, learning rate, eval loss (null on steps without one) */
  private readonly series: [number[], number[], number[], (number | null)[]] = [[], [], [], []];

  constructor(private readonly el: HTMLElement) {}

  /** An empty chart for a new run. */
  reset(): void {
    for (const s of this.series) s.length = 0;
    this.draw(
      {
        scales: { x: { time: false }, lr: { auto: true } },
        series: [
          { label: 'step' },
          { label: 'loss', stroke: '#d9480f', width: 2 },
          { label: 'learning rate', stroke: '#1971c2', scale: 'lr' },
          { label: 'eval loss', stroke: '#2b8a3e', width: 2, spanGaps: true, points: { show: true, size: 7 } },
        ],
        axes: [
          { label: 'step' },
          { label: 'loss' },
          { side: 1, scale: 'lr', label: 'learning rate', grid: { show: false } },
        ],
      },
      this.series,
    );
    this.record();
  }

  /** A training log's point. */
  addStep(step: number, loss: number, learningRate: number): void {
    this.series[0].push(step);
    this.series[1].push(loss);
    this.series[2].push(learningRate);
    this.series[3].push(null);
    this.chart?.setData(this.series);
    this.record();
  }

  /** An evaluation: it comes after its step's own log, so its point goes on the last step drawn. */
  addEval(evalLoss: number): void {
    this.series[3][this.series[3].length - 1] = evalLoss;
    this.chart?.setData(this.series);
    this.record();
  }

  /** The last step drawn. */
  lastStep(): number | undefined {
    return this.series[0].at(-1);
  }

  /** A run's curves from its log_history (a reopened run, or one carried on after a lost GPU). */
  fromHistory(history: Record<string, number>[]): void {
    this.reset();
    for (const h of history) {
      if ('eval_loss' in h) this.series[3][this.series[3].length - 1] = h.eval_loss;
      else if ('loss' in h) {
        this.series[0].push(h.step);
        this.series[1].push(h.loss);
        this.series[2].push(h.learning_rate);
        this.series[3].push(null);
      }
    }
    this.chart?.setData(this.series);
    this.record();
  }

  /** Two runs' losses (and evaluation losses) on one chart, by step. */
  compare(runs: ChartedRun[]): void {
    const steps = [...new Set(runs.flatMap((r) => r.history.filter((h) => 'loss' in h).map((h) => h.step)))].sort(
      (a, b) => a - b,
    );
    const at = (r: ChartedRun, key: string) =>
      steps.map((step) => r.history.find((h) => h.step === step && key in h)?.[key] ?? null);
    const data = [steps, ...runs.map((r) => at(r, 'loss')), ...runs.map((r) => at(r, 'eval_loss'))];
    const colors = ['#d9480f', '#7048e8'];
    this.draw(
      {
        scales: { x: { time: false } },
        series: [
          { label: 'step' },
          ...runs.map((r, i) => ({ label: `loss, ${r.label}`, stroke: colors[i], width: 2, spanGaps: true })),
          ...runs.map((r, i) => ({
            label: `eval loss, ${r.label}`,
            stroke: colors[i],
            dash: [6, 4],
            spanGaps: true,
            points: { show: true, size: 6 },
          })),
        ],
        axes: [{ label: 'step' }, { label: 'loss' }],
      },
      data as uPlot.AlignedData,
    );
    this.el.dataset.compare = JSON.stringify({ runs: runs.map((r) => r.id), losses: data.slice(1, 3) });
  }

  private draw(o: Omit<uPlot.Options, 'width' | 'height'>, data: uPlot.AlignedData): void {
    this.chart?.destroy();
    this.chart = new uPlot({ width: Math.min(760, this.el.clientWidth || 760), height: 260, ...o }, data, this.el);
  }

  /** What is drawn, on the element. */
  private record(): void {
    this.el.dataset.losses = JSON.stringify(this.series[1]);
    this.el.dataset.evalLosses = JSON.stringify(this.series[3].filter((v) => v !== null));
  }
}
