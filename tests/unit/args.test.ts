// The command line's flags against `trl sft`'s: what it takes as HfArgumentParser does, and the
// flags of trl sft it does not take, each refused with why (src/cli/args.ts NOT_HERE).
import { describe, expect, it } from 'vitest';
import { NOT_HERE, parseFlags, UsageError } from '../../src/cli/args';
import { TRAIN } from '../../src/cli/commands';

const train = (...argv: string[]) =>
  parseFlags(['--model_name_or_path', 'm', '--dataset_name', 'd', ...argv], TRAIN, 'train');

describe('train flags as trl sft takes them', () => {
  it('takes warmup as steps or as a share, the schedule with its kwargs, and logging_first_step', () => {
    const f = train(
      '--warmup_steps',
      '0.03',
      '--warmup_ratio',
      '0.1',
      '--lr_scheduler_type',
      'cosine_with_min_lr',
      '--lr_scheduler_kwargs',
      '{"min_lr_rate": 0.1}',
      '--logging_first_step',
    );
    expect(f).toMatchObject({
      warmup_steps: 0.03,
      warmup_ratio: 0.1,
      lr_scheduler_type: 'cosine_with_min_lr',
      lr_scheduler_kwargs: '{"min_lr_rate": 0.1}',
      logging_first_step: true,
    });
    for (const type of ['cosine_with_restarts', 'polynomial', 'inverse_sqrt', 'warmup_stable_decay'])
      expect(train('--lr_scheduler_type', type).lr_scheduler_type).toBe(type);
  });

  it('refuses each trl sft flag it does not take, saying why, never as a typo', () => {
    for (const [name, why] of Object.entries(NOT_HERE)) {
      expect(() => train(`--${name}`, 'x'), name).toThrow(UsageError);
      expect(() => train(`--${name}`, 'x'), name).toThrow(
        `--${name} is a flag of trl sft that this tool does not take: ${why}`,
      );
    }
    expect(Object.keys(NOT_HERE).filter((k) => k in TRAIN)).toEqual([]); // none is also taken
    expect(() => train('--use-dora', 'true')).toThrow('--use_dora is a flag of trl sft'); // dashes as underscores
  });
});
