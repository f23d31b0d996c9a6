// The hostile Hub (tests/fuzz/hub.fuzz.ts): stalls, size lies, redirect loops, 5xx storms,
// path traversal and garbage listings each end in a clear error naming the repo, within the
// case's time limit and in bounded memory.
import { expect, test } from 'vitest';
import { failures, runSuite } from '../fuzz/harness';
import { freshSeed } from '../reference/random';

const CASES = 138; // the hand-written cases and 40 random mutations of the listing

test('a hostile Hub gets clear errors: no hang, no crash, no raw error, memory bounded', async () => {
  const seed = freshSeed();
  const r = await runSuite('tests/fuzz/hub.fuzz.ts', seed);
  const bad = r.counts.raw + r.counts.vague + r.counts.hang + r.counts.crash;
  expect(bad, `seed ${seed}:\n${failures(r)}`).toBe(0);
  expect(r.cases.length, `seed ${seed}`).toBe(CASES);
  const heavy = r.cases.filter((c) => !(c.peakMb! < 600)).map((c) => `#${c.i} ${c.what}: ${c.peakMb} MiB`);
  expect(heavy, `seed ${seed}`).toEqual([]);
  // every hand-written case is hostile and must be refused (a listed size of 0 reads nothing, which is fine);
  // a random mutation may land on a field nothing reads (a git oid) and pass
  const accepted = r.cases.filter(
    (c) => c.outcome === 'ok' && !c.what.startsWith('listing mutation') && !c.what.includes(' is 0 '),
  );
  expect(
    accepted.map((c) => c.what),
    `seed ${seed}`,
  ).toEqual([]);
}, 240_000);
