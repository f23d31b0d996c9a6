// The README.md beside an adapter: PEFT's metadata on top, and a data set listed for the Hub only when
// it is on the Hub (a local `data/train.jsonl` has the shape of an `owner/name` id).
import { describe, expect, it } from 'vitest';
import { modelCard } from '../../src/formats/model-card';

const card = (dataset: string, datasetOnHub: boolean) =>
  modelCard({
    base_model: 'tiiuae/falcon-7b',
    dataset,
    datasetOnHub,
    settings: { lora_r: 64, target_modules: ['query_key_value'], max_steps: null },
    global_step: 12,
    train_loss: 1.23456,
    eval_loss: 1.5,
    trainedWith: 'a test',
  });

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
});
