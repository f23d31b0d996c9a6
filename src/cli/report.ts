// What the command line says. With --json: stdout holds one JSON object per line (data
// summary, one per logged step, the final result, or {"error": ...}) and nothing else.
// Without: a readable log on stderr, a progress bar where stderr is a terminal, and the
// result (or the generated text) on stdout.
//
// Text that came from a file or the Hub (data rows, generated text, tensor and data set names
// in messages) could hold terminal escape sequences: to retitle the window, hide or rewrite
// lines, or reverse text with bidi overrides. Everything written for people goes through
// escapeControl, and JSON lines escape the same characters as \u escapes.

import type { EvalLog, TrainLog } from '../engine/training-run';

/** Control characters a terminal acts on: C0 but \t and \n, DEL, C1, and the bidi overrides and isolates. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;

const hex = (c: string, digits: number) => c.charCodeAt(0).toString(16).padStart(digits, '0');

/** `text` with each control character shown as a visible escape (ESC as \x1b, U+202E as \u202e); \n and \t kept. */
export function escapeControl(text: string): string {
  return text.replace(CONTROL, (c) => (c.charCodeAt(0) < 0x100 ? `\\x${hex(c, 2)}` : `\\u${hex(c, 4)}`));
}

/** One JSON line: C1 controls and bidi overrides, which JSON.stringify leaves raw, as \u escapes too. */
const jsonLine = (o: object): string => JSON.stringify(o).replace(CONTROL, (c) => `\\u${hex(c, 4)}`) + '\n';

export class Reporter {
  private bar = false;
  private started = performance.now();
  private stepsAt: { time: number; step: number } | null = null;

  constructor(
    readonly json: boolean,
    private out: NodeJS.WritableStream,
    private err: NodeJS.WritableStream,
  ) {}

  private get tty(): boolean {
    return !this.json && !!(this.err as NodeJS.WriteStream).isTTY;
  }

  info(message: string): void {
    if (!this.json) this.line(message);
  }

  warn(message: string): void {
    this.line(`warning: ${message}`);
  }

  /** A machine-readable fact (JSON mode only). */
  event(o: object): void {
    if (this.json) this.out.write(jsonLine(o));
  }

  stepLog(log: Omit<TrainLog, 'max_steps'>, maxSteps: number): void {
    if (this.json) {
      this.out.write(jsonLine(log));
      return;
    }
    const now = performance.now();
    const since = this.stepsAt ?? { time: this.started, step: 0 };
    const perStep = (now - since.time) / Math.max(1, log.step - since.step);
    this.stepsAt ??= { time: now, step: log.step }; // the first steps include compiling shaders
    const left = ((maxSteps - log.step) * perStep) / 1000;
    this.line(
      `step ${log.step}/${maxSteps}  loss ${log.loss.toFixed(4)}  grad_norm ${log.grad_norm.toFixed(4)}  ` +
        `learning_rate ${log.learning_rate.toExponential(3)}  ` +
        `mean_token_accuracy ${log.mean_token_accuracy.toFixed(4)}  ` +
        `epoch ${log.epoch}  num_tokens ${log.num_tokens}`,
    );
    this.progress('training', log.step, maxSteps, `${(perStep / 1000).toFixed(2)} s/step, ${clock(left)} left`);
  }

  evalLog(log: Omit<EvalLog, 'max_steps'>, maxSteps: number): void {
    if (this.json) this.out.write(jsonLine(log));
    else
      this.line(
        `step ${log.step}/${maxSteps}  eval_loss ${log.eval_loss.toFixed(4)}  ` +
          `eval_mean_token_accuracy ${log.eval_mean_token_accuracy.toFixed(4)}  (${log.eval_runtime.toFixed(1)} s)`,
      );
  }

  /** A progress bar on a terminal; nothing elsewhere (logs stay clean). */
  progress(label: string, done: number, total: number | null, extra: string): void {
    if (!this.tty) return;
    const width = 28;
    const bar = total ? '█'.repeat(Math.round((done / total) * width)).padEnd(width, '░') : '';
    const count = total ? `${done}/${total}` : `${done}`;
    this.err.write(`\r\x1b[2K${label} ${bar} ${count} ${extra}`);
    this.bar = true;
  }

  endProgress(): void {
    if (this.bar) this.err.write('\r\x1b[2K');
    this.bar = false;
  }

  /** The command's result: a JSON line, or `text` on stdout. */
  result(o: object, text: string | null): void {
    this.endProgress();
    if (this.json) this.out.write(jsonLine(o));
    else if (text !== null) this.out.write(text + '\n');
  }

  /** Generated text as it comes (human mode), control characters escaped. */
  stream(text: string): void {
    if (!this.json) this.out.write(escapeControl(text));
  }

  /** Text whose parts from files the caller has escaped already, around styling of its own (preview's dimming). */
  streamStyled(text: string): void {
    if (!this.json) this.out.write(text);
  }

  fail(e: Error): void {
    this.endProgress();
    if (this.json) this.out.write(jsonLine({ error: e.message }));
    this.err.write(`error: ${escapeControl(e.message)}\n`);
  }

  private line(s: string): void {
    this.endProgress();
    this.err.write(escapeControl(s) + '\n');
  }
}

function clock(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600),
    m = Math.floor((s % 3600) / 60),
    r = s % 60;
  return h ? `${h}:${String(m).padStart(2, '0')}:${String(r).padStart(2, '0')}` : `${m}:${String(r).padStart(2, '0')}`;
}
