// One fuzz process (see harness.ts): runs a suite's cases from `from` on, one JSON line before
// and after each, so the parent can tell which case hung or crashed the process. A suite file
// ends with `export const main = fuzzMain(suite)`, and the harness runs it through bin/ts.mjs.
import { resourceUsage } from 'node:process';
import { RAW_ERRORS, type CaseResult, type FuzzCase, type FuzzSuite, type Outcome } from './harness';

const say = (m: unknown) => process.stdout.write(`${JSON.stringify({ fuzz: m })}\n`);

export const fuzzMain =
  <C extends FuzzCase>(suite: FuzzSuite<C>) =>
  ([seedText, fromText]: string[]) =>
    runCases(suite, seedText, fromText);

async function runCases<C extends FuzzCase>(suite: FuzzSuite<C>, seedText: string, fromText: string): Promise<number> {
  const cases = await suite.cases(Number(seedText));
  const caseMs = suite.caseMs ?? 10_000;
  say({ suite: suite.name, total: cases.length, caseMs });
  for (let i = Number(fromText); i < cases.length; i++) {
    const c = cases[i];
    say({ start: i, what: c.what });
    const t0 = performance.now();
    let outcome: Outcome = 'ok',
      error: string | undefined;
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        suite.run(c),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new HangError()), caseMs);
        }),
      ]);
    } catch (e) {
      outcome = classify(e, suite.mentions?.(c));
      error = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
    } finally {
      clearTimeout(timer);
    }
    const result: CaseResult = {
      i,
      what: c.what,
      outcome,
      error,
      ms: Math.round(performance.now() - t0),
      peakMb: Math.round(resourceUsage().maxRSS / 1024),
    };
    say({ result });
  }
  // handles a case left open (a stalled socket, a worker) must not keep the process alive
  setTimeout(() => process.exit(0), 100).unref();
  return 0;
}

class HangError extends Error {
  override name = 'HangError';
}

function classify(e: unknown, mentions: string | string[] | undefined): Outcome {
  if (e instanceof HangError) return 'hang';
  if (!(e instanceof Error) || RAW_ERRORS.includes(e.name) || e.message.trim() === '') return 'raw';
  for (const m of [mentions ?? []].flat()) if (!e.message.includes(m)) return 'vague';
  return 'clear';
}
