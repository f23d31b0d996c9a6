// The tokenizer fuzz suite (tests/fuzz/tokenizer.fuzz.ts): hostile and mutated tokenizer.json and
// tokenizer_config.json files, through the tokenizer's worker, end in clear errors naming the file,
// never in a hang, a crash or a raw JavaScript error, with bounded memory.
import { expect, test } from 'vitest';
import { failures, runSuite } from '../fuzz/harness';
import { freshSeed } from '../reference/random';

test('tokenizer.json and chat templates: each hostile case ends in a clear error; the next call works', async () => {
  const seed = freshSeed();
  const r = await runSuite('tests/fuzz/tokenizer.fuzz.ts', seed);
  const why = `seed ${seed}:\n${failures(r)}`;
  expect(r.cases.length, why).toBe(29 + 16 + 12);
  expect(r.counts.raw + r.counts.vague + r.counts.hang + r.counts.crash, why).toBe(0);
  expect(r.counts.clear, why).toBeGreaterThanOrEqual(25); // the hand-written hostile ones at least
  for (const c of r.cases) expect(c.peakMb, `seed ${seed}, #${c.i} ${c.what}`).toBeLessThan(600);
  // a billion-iteration loop is refused by the bounded range() at once, not stopped by the time limit
  const billion = r.cases.find((c) => c.what === 'a billion-iteration loop');
  expect(billion?.error, why).toMatch(/range\(0, 1000000000, 1\) is longer than the 100000 allowed/);
  // loops within loops (or macros) are refused by the count of loop steps over the whole render
  for (const what of ['nested loops of 10^10', 'a loop calling a macro that loops, 10^10']) {
    const nested = r.cases.find((c) => c.what === what);
    expect(nested?.error, `${why}\n${what}`).toMatch(/loops more than the 1000000 steps allowed in one render/);
  }
});
