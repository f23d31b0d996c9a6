// The README.md beside an adapter: PEFT's metadata on top, and a data set listed for the Hub only when
// it is on the Hub (a local `data/train.jsonl` has the shape of an `owner/name` id).
import { describe, expect, it } from 'vitest';
import { modelCard } from '../../src/formats/model-card';

const base = {
  base_model: 'tiiuae/falcon-7b',
  dataset: 'timdettmers/openassistant-guanaco',
  datasetOnHub: true,
  settings: { lora_r: 64, target_modules: ['query_key_value'], max_steps: null },
  global_step: 12,
  train_loss: 1.23456,
  eval_loss: 1.5,
  trainedWith: 'a test',
};
const card = (dataset: string, datasetOnHub: boolean) => modelCard({ ...base, dataset, datasetOnHub });

describe('modelCard', () => {
  it("writes PEFT's metadata and lists a Hub data set with a link", () => {
    const c = card('timdettmers/openassistant-guanaco', true);
    const front = c.split('---\n')[1];
    expect(front).toBe(
      [
        'base_model: "tiiuae/falcon-7b"',
        'library_name: peft',
        'pipeline_tag: text-generation',
        'tags:',
        '- "base_model:adapter:tiiuae/falcon-7b"',
        '- lora',
        '- qlora',
        '- sft',
        '- transformers',
        'datasets:',
        '- "timdettmers/openassistant-guanaco"',
        '',
      ].join('\n'),
    );
    expect(c).toContain(
      '[timdettmers/openassistant-guanaco](https://huggingface.co/datasets/timdettmers/openassistant-guanaco)',
    );
    expect(c).toContain('| target_modules | query_key_value |');
    expect(c).toContain('| max_steps | unset |');
    expect(c).toContain('| train_loss (mean over all steps) | 1.2346 |');
    expect(c).toContain('| eval_loss (last) | 1.5000 |');
  });

  it('names a local file without claiming it is on the Hub', () => {
    const c = card('data/train.jsonl', false);
    expect(c).not.toContain('datasets:');
    expect(c).not.toContain('huggingface.co/datasets');
    expect(c).toContain('`data/train.jsonl`');
  });

  it('draws the loss curve as a table: every logged step of a short run, 20 evenly spaced of a long one', () => {
    const history = (steps: number): Record<string, number>[] => [
      ...Array.from({ length: steps }, (_, i) => ({ step: i + 1, loss: 3 - i / 100, learning_rate: 1e-3 })),
      { step: steps, eval_loss: 2.5 },
      { step: steps, train_loss: 2.9, train_runtime: 10 }, // the closing entry: no row of its own
    ];
    const short = modelCard({ ...base, history: history(3) });
    expect(short).toContain(
      '## Loss curve\n\n| step | loss | eval_loss |\n|---|---|---|\n' +
        '| 1 | 3.0000 |  |\n| 2 | 2.9900 |  |\n| 3 | 2.9800 | 2.5000 |\n',
    );
    // an evaluation off the even grid (step 40) keeps its row
    const long = modelCard({ ...base, history: [...history(77), { step: 40, eval_loss: 2.7 }] });
    expect(long).toContain('## Loss curve (21 of the 77 logged steps)');
    expect(long).toContain('| 40 | 2.6100 | 2.7000 |');
    const rows = long
      .split('## Loss curve')[1]
      .split('## Settings')[0]
      .match(/^\| \d+ \|/gm)!;
    const steps = rows.map((r) => Number(r.slice(2, -2)));
    expect(steps.length).toBe(21);
    expect(steps[0]).toBe(1);
    expect(steps[20]).toBe(77); // the last log, with its eval_loss
    expect(long).toContain('| 77 | 2.2400 | 2.5000 |');
    // evenly spaced, 76 / 19 = 4 steps apart, and the evaluation's step
    expect(steps).toEqual([...Array.from({ length: 20 }, (_, i) => 1 + 4 * i), 40].sort((a, b) => a - b));
  });
});
