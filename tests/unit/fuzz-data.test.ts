// The data-file fuzz suite (tests/fuzz/data.fuzz.ts): every hostile or mutated JSONL, JSON,
// CSV, TXT and Parquet file gives rows or a DataError naming the file; none hangs, crashes or
// grows the reading process past a bound.
import { expect, test } from 'vitest';
import { failures, runSuite } from '../fuzz/harness';
import { freshSeed } from '../reference/random';

const HAND_WRITTEN = 70,
  MUTATED = 5 * 16;
// the process's peak resident memory: V8 and Vite's module runner, 48 MB files, and the parsed
// metadata of 100,000 Parquet row groups (some 400 MB)
const PEAK_MB = 800;

test('data files: rows or a clear error, no hang, no crash, bounded memory', async () => {
  const seed = freshSeed();
  const r = await runSuite('tests/fuzz/data.fuzz.ts', seed);
  const bad = r.counts.raw + r.counts.vague + r.counts.hang + r.counts.crash;
  expect(bad, `seed ${seed} (TEST_SEED=${seed} replays it):\n${failures(r)}`).toBe(0);
  expect(r.cases.length, `seed ${seed}`).toBe(HAND_WRITTEN + MUTATED);
  const peak = Math.max(...r.cases.map((c) => c.peakMb ?? 0));
  expect(peak, `seed ${seed}: peak memory ${peak} MB`).toBeLessThan(PEAK_MB);
}, 300_000);
