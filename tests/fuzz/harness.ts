// The fuzz suites' harness. Hostile inputs may hang a thread (a backtracking regex, a loop a
// config asks for) or exhaust memory, which no in-process timeout can stop; so each suite runs
// in a process of its own (child.ts), case after case, and this side watches it: a case that
// says nothing for its time limit is a hang (the process is killed and the rest go on in a new
// one), a process that dies is a crash, and the peak memory of each case is read back.
//
// A suite module exports `main = fuzzMain(suite)` (child.ts), with the suite: cases drawn from a
// seed (replay one with TEST_SEED), and a run for each that must end either normally (the
// input was fine) or in a clear error: an Error of the project's (not a TypeError, RangeError
// and the like from deep inside), whose message names what the case says it must (the file,
// the field).
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { resolve } from 'node:path';

export interface FuzzCase {
  /** What the case is, in a few words (shown in the table and in failures). */
  what: string;
}

export interface FuzzSuite<C extends FuzzCase> {
  /** The input class, as the closing table names it. */
  name: string;
  /** The cases for one seed: hand-written hostile ones and random mutations. */
  cases(seed: number): C[] | Promise<C[]>;
  /** Runs one case; resolves (the input was acceptable) or throws (it was not). */
  run(c: C): Promise<unknown>;
  /** Text a clear error for this case must contain (its file name, its field), if any. */
  mentions?(c: C): string | string[] | undefined;
  /** Milliseconds one case may take (default 10 s). */
  caseMs?: number;
}

export type Outcome = 'ok' | 'clear' | 'raw' | 'vague' | 'hang' | 'crash';

export interface CaseResult {
  i: number;
  what: string;
  outcome: Outcome;
  error?: string;
  ms?: number;
  /** The process's peak resident memory after the case, in MiB. */
  peakMb?: number;
}

export interface SuiteReport {
  name: string;
  seed: number;
  cases: CaseResult[];
  counts: Record<Outcome, number>;
}

/** JavaScript's own error classes: one of these reaching the user is not a clear error. */
export const RAW_ERRORS = [
  'TypeError',
  'RangeError',
  'SyntaxError',
  'ReferenceError',
  'EvalError',
  'URIError',
  'AggregateError',
];

/**
 * Runs the suite in `file` (relative to the repository) in child processes with `heapMb` of
 * V8 heap; `graceMs` is added to each case's limit for the process's own start-up and pauses.
 * Writes the report to test-results/fuzz/<name>.json.
 */
export async function runSuite(
  file: string,
  seed: number,
  o: { heapMb?: number; graceMs?: number } = {},
): Promise<SuiteReport> {
  const results: CaseResult[] = [];
  let from = 0,
    name = file,
    total = Infinity;
  while (from < total) {
    const r = await runChild(file, seed, from, o.heapMb ?? 768, o.graceMs ?? 20_000);
    name = r.name ?? name;
    total = r.total ?? total;
    results.push(...r.results);
    if (r.stuck) {
      results.push(r.stuck);
      from = r.stuck.i + 1;
    } else if (r.total === undefined) {
      throw new Error(`${file}: the fuzz process ended before listing its cases:\n${r.stderr.slice(-2000)}`);
    } else from = total;
  }
  const counts = { ok: 0, clear: 0, raw: 0, vague: 0, hang: 0, crash: 0 } as Record<Outcome, number>;
  for (const c of results) counts[c.outcome]++;
  const report = { name, seed, cases: results, counts };
  mkdirSync('test-results/fuzz', { recursive: true });
  writeFileSync(`test-results/fuzz/${name.replace(/[^\w.-]+/g, '-')}.json`, JSON.stringify(report, null, 1));
  return report;
}

/** The cases that did not end well, one line each, for a failure message. */
export function failures(r: SuiteReport): string {
  return r.cases
    .filter((c) => c.outcome !== 'ok' && c.outcome !== 'clear')
    .map((c) => `  #${c.i} ${c.what}: ${c.outcome}${c.error ? ` (${c.error.slice(0, 300)})` : ''}`)
    .join('\n');
}

interface ChildRun {
  name?: string;
  total?: number;
  results: CaseResult[];
  /** The case that hung or crashed the process, if one did. */
  stuck?: CaseResult;
  stderr: string;
}

function runChild(file: string, seed: number, from: number, heapMb: number, graceMs: number): Promise<ChildRun> {
  return new Promise((done) => {
    const args = [`--max-old-space-size=${heapMb}`, resolve('bin/ts.mjs'), file, String(seed), String(from)];
    const env = { ...process.env, VK_ICD_FILENAMES: '/usr/lib/chromium/vk_swiftshader_icd.json' };
    const child = spawn('node', args, { stdio: ['ignore', 'pipe', 'pipe'], env });
    const run: ChildRun = { results: [], stderr: '' };
    let current: { i: number; what: string } | null = null;
    let caseMs = 10_000,
      timer: NodeJS.Timeout | undefined,
      hung = false;
    const arm = (ms: number) => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        hung = true;
        child.kill('SIGKILL');
      }, ms);
    };
    arm(graceMs + 60_000); // start-up: Vite's module runner and the suite's imports
    child.stderr.on('data', (d) => {
      run.stderr = (run.stderr + d).slice(-20_000);
    });
    createInterface({ input: child.stdout }).on('line', (line) => {
      if (!line.startsWith('{"fuzz"')) return;
      const m = JSON.parse(line).fuzz;
      if (m.suite) {
        run.name = m.suite;
        run.total = m.total;
        caseMs = m.caseMs;
      } else if (m.start !== undefined) {
        current = { i: m.start, what: m.what };
        arm(caseMs + graceMs);
      } else if (m.result) {
        run.results.push(m.result);
        current = null;
        arm(graceMs + caseMs);
      }
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (current) {
        const why = hung
          ? `no answer within ${caseMs} ms (+${graceMs} ms grace)`
          : `the process died (${signal ?? `exit ${code}`}): ${run.stderr.slice(-300)}`;
        run.stuck = { ...current, outcome: hung ? 'hang' : 'crash', error: why };
      }
      done(run);
    });
  });
}
