// The fuzz harness tells each outcome apart: a case that ends, a clear error, a raw one, one
// that does not name its file, a busy loop, a promise that never settles, a dying process;
// and goes on after each.
import { expect, test } from 'vitest';
import { runSuite } from '../fuzz/harness';

test('the fuzz harness catches hangs, crashes and raw errors, and goes on after them', async () => {
  const r = await runSuite('tests/fuzz/selftest.fuzz.ts', 1, { graceMs: 3000 });
  expect(r.cases.map((c) => `${c.what}:${c.outcome}`)).toEqual([
    'fine:ok',
    'clear:clear',
    'raw:raw',
    'vague:vague',
    'spin:hang',
    'stall:hang',
    'die:crash',
    'after:ok',
  ]);
  expect(r.cases.every((c) => c.outcome === 'hang' || c.outcome === 'crash' || c.peakMb! > 0)).toBe(true);
});
