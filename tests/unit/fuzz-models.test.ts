// The model-file fuzz suites (issue 11): config.json, safetensors headers and shard indexes,
// adapter folders and zips. Each suite runs in a child process of its own (tests/fuzz/harness.ts):
// every case must be accepted or refused with a clear error naming its file, none may hang or
// crash the process, and memory stays bounded (the zip bombs declare 64 MiB and 4 GiB).
import { describe, expect, it } from 'vitest';
import { failures, runSuite } from '../fuzz/harness';
import { freshSeed } from '../reference/random';

/** The most resident memory (MiB) a suite's process may reach: Dawn, Vite's runner and one 64 MiB inflated bomb. */
const PEAK_MB = 600;

const SUITES: [file: string, cases: number][] = [
  // 28 hand-written configs + 20 mutations of each of the 6 tiny fixtures' configs
  ['tests/fuzz/config.fuzz.ts', 28 + 6 * 20],
  // 36 hand-written headers and indexes + 11 quant_states;
  // 40 header JSON, 20 header byte, 25 index and 15 quant_state mutations
  ['tests/fuzz/safetensors.fuzz.ts', 36 + 11 + 40 + 20 + 25 + 15],
  // 24 configs, 11 weights, 15 zips by hand; 30 config, 20 weights and 20 zip mutations
  ['tests/fuzz/adapter.fuzz.ts', 24 + 11 + 15 + 30 + 20 + 20],
];

describe('model and adapter files from strangers', () => {
  for (const [file, expected] of SUITES) {
    it(`${file}: every case loads or ends in a clear error, no hang, no crash, bounded memory`, async () => {
      const seed = freshSeed();
      const report = await runSuite(file, seed);
      const { raw, vague, hang, crash } = report.counts;
      expect(raw + vague + hang + crash, `${report.name}, seed ${seed}:\n${failures(report)}`).toBe(0);
      expect(report.cases.length, `${report.name}, seed ${seed}`).toBe(expected);
      const peak = Math.max(...report.cases.map((c) => c.peakMb ?? 0));
      expect(peak, `${report.name}, seed ${seed}: peak memory`).toBeLessThan(PEAK_MB);
      // the hostile cases are refused, not waved through
      expect(report.counts.clear, `${report.name}, seed ${seed}`).toBeGreaterThan(expected / 2);
    }, 240_000);
  }
});
