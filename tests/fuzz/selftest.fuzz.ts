// The harness's own check: one case of each outcome, so a harness that misses a hang, a crash
// or a raw error fails its test.
import type { FuzzSuite } from './harness';
import { fuzzMain } from './child';

type Case = { what: string; kind: 'fine' | 'clear' | 'raw' | 'vague' | 'spin' | 'stall' | 'die' | 'after' };

class InputError extends Error {
  override name = 'InputError';
}

export const suite: FuzzSuite<Case> = {
  name: 'harness self-test',
  caseMs: 1000,
  cases: () =>
    (['fine', 'clear', 'raw', 'vague', 'spin', 'stall', 'die', 'after'] as const).map((kind) => ({ what: kind, kind })),
  mentions: () => 'data.jsonl',
  async run(c) {
    switch (c.kind) {
      case 'clear':
        throw new InputError('data.jsonl, line 3: not JSON');
      case 'raw':
        return (null as unknown as { x: number }).x;
      case 'vague':
        throw new InputError('something failed');
      case 'spin':
        for (;;);
      case 'stall':
        return new Promise(() => {});
      case 'die':
        return process.exit(3);
      default:
        return 'ok';
    }
  },
};

export const main = fuzzMain(suite);
