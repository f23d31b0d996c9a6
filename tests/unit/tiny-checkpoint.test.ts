import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AutoTokenizer, env } from '@huggingface/transformers';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Gpu } from '../../src/gpu/runtime';
import { generate } from '../../src/generate/generate';
import { SAMPLING_DEFAULTS } from '../../src/generate/sampling';
import { buildModel, loadCheckpoint } from '../../src/model/load';
import { attachLora } from '../../src/model/lora-linear';
import { localCheckpoint } from '../../src/node/local-files';
import { ADAMW_DEFAULTS } from '../../src/ops/optim';
import { Trainer } from '../../src/train/trainer';
import { testGpu } from '../gpu';
import { writeTinyCheckpoint } from '../fixtures/tiny-checkpoint';
import { rng } from '../reference/random';

let gpu: Gpu;
let root: string;
beforeAll(async () => {
  gpu = await testGpu();
  root = await mkdtemp(join(tmpdir(), 'tiny-hub-'));
  env.allowRemoteModels = false; // nothing leaves the machine; the tokenizer comes from the folder
  env.localModelPath = root;
});

describe.each(['llama', 'qwen2'] as const)('the tiny %s checkpoint, from files to generated text', (kind) => {
  it('loads with its tokenizer, learns one exchange by QLoRA, and says it back', async () => {
    await writeTinyCheckpoint(join(root, `tiny-${kind}`), kind, 3);
    const tokenizer = await AutoTokenizer.from_pretrained(`tiny-${kind}`);
    const loaded = await loadCheckpoint(gpu, localCheckpoint(join(root, `tiny-${kind}`)), { load_in_4bit: true });
    const model = buildModel(gpu, loaded);
    const lora = attachLora(gpu, loaded.linears, { r: 8, alpha: 16, dropout: 0, random: rng(5) });

    const prompt = '### Human: Say hi. ### Assistant:';
    const ids = [...tokenizer.encode(`${prompt} Hi there!`), tokenizer.eos_token_id as number];
    const T = ids.length;
    // causal LM labels: position t predicts token t + 1; the last has nothing to predict
    const batch = {
      ids: gpu.tensor([T], 'u32', Uint32Array.from(ids)),
      labels: gpu.tensor(
        [T],
        'i32',
        Int32Array.from(ids, (_, t) => (t + 1 < T ? ids[t + 1] : -100)),
      ),
      positions: gpu.tensor([T], 'u32', Uint32Array.from(ids.keys())),
      start: gpu.tensor([T], 'u32', new Uint32Array(T)),
    };
    const trainer = new Trainer(gpu, model, lora, {
      ...ADAMW_DEFAULTS,
      learning_rate: 2e-2,
      lr_scheduler_type: 'constant',
      warmup_steps: 0,
      max_steps: 25,
    });
    const losses: number[] = [];
    for (let s = 0; s < 25; s++) losses.push((await trainer.trainStep([{ batch, counted: T - 1 }])).loss);
    expect(losses[24], losses.map((l) => l.toFixed(2)).join(' ')).toBeLessThan(losses[0] / 4);

    const promptIds = tokenizer.encode(prompt);
    const [out] = await generate(model, promptIds, {
      ...SAMPLING_DEFAULTS,
      max_new_tokens: 12,
      num_return_sequences: 1,
      seed: 0,
      eos_token_id: [tokenizer.eos_token_id as number],
    });
    expect(tokenizer.decode(out, { skip_special_tokens: true })).toBe(' Hi there!');
    expect(out[out.length - 1]).toBe(tokenizer.eos_token_id);
  });
});
