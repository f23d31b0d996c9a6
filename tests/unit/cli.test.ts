// The `finetune` command line end to end on the Llama, Qwen2 (from the local test Hub) and
// Falcon fixtures: train, then take the adapter through eval and generate; and refuse bad input
// clearly. (cli-families.test.ts: Phi-3 and Gemma 2; cli-data.test.ts: data formats, evaluation
// and preview.)
import { copyFile, mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAdapterConfig, readAdapterSafetensors, writeAdapterSafetensors } from '../../src/formats/peft';
import { readSafetensorsSync } from '../../src/formats/safetensors';
import { Session } from '../../src/engine/session';
import { localCheckpoint } from '../../src/node/local-files';
import { localTokenizer } from '../../src/node/local-data';
import { localAdapterFiles } from '../../src/node/local-files';
import { testGpu } from '../gpu';
import { finetuneRunner, PROMPT, TRAIN, trainSteps } from '../cli-run';
import { writeTinyCheckpoint } from '../fixtures/tiny-checkpoint';
import { writeTinyDataset } from '../fixtures/tiny-data';
import { startHub, type TestHub } from '../fixtures/hub-server';
import { TRAIN_LOG_KEYS } from '../python-logs';

let root: string;
let data: Awaited<ReturnType<typeof writeTinyDataset>>;
let hub: TestHub;
let finetune: ReturnType<typeof finetuneRunner>;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'finetune-cli-'));
  data = await writeTinyDataset(join(root, 'data'));
  await writeTinyCheckpoint(join(root, 'tiny-llama'), 'llama', 3);
  await writeTinyCheckpoint(join(root, 'tiny-qwen2'), 'qwen2', 4);
  await writeTinyCheckpoint(join(root, 'tiny-falcon'), 'falcon', 5);
  // a data set repo laid out as the Hub's Parquet conversion lays one out
  await mkdir(join(root, 'hub-data', 'data'), { recursive: true });
  await copyFile(data.parquet, join(root, 'hub-data', 'data', 'train-00000-of-00001.parquet'));
  await writeFile(join(root, 'hub-data', 'README.md'), '# tiny guanaco\n');
  hub = await startHub([
    { type: 'model', id: 'tiny-random/qwen2', dir: join(root, 'tiny-qwen2') },
    { type: 'dataset', id: 'tiny-random/guanaco', dir: join(root, 'hub-data') },
  ]);
  finetune = finetuneRunner(root, hub.url);
});
afterAll(() => hub.close());

const CASES: [string, () => string, () => string, string[], string[]][] = [
  // kind, --model_name_or_path, --dataset_name, LoRA flags, data flags
  ['llama', () => join(root, 'tiny-llama'), () => data.jsonl, ['--lora_target_modules', 'q_proj', 'v_proj'], []],
  // from the (local test) Hub: a model id and a data set id
  [
    'qwen2',
    () => 'tiny-random/qwen2',
    () => 'tiny-random/guanaco',
    ['--lora_target_modules', 'all-linear'],
    ['--packing', 'true', '--max_length', '48'],
  ],
  [
    'falcon',
    () => join(root, 'tiny-falcon'),
    () => data.csv,
    ['--lora_target_modules', 'query_key_value,dense,dense_h_to_4h,dense_4h_to_h'],
    [],
  ],
];

describe.each(CASES)('finetune on the tiny %s checkpoint', (kind, modelOf, dataOf, loraFlags, dataFlags) => {
  it('trains, and its adapter round-trips through eval and generate', async () => {
    const [model, dataset] = [modelOf(), dataOf()];
    const out = join(root, `out-${kind}`);
    const t = await finetune(
      'train',
      '--model_name_or_path',
      model,
      '--dataset_name',
      dataset,
      '--output_dir',
      out,
      ...TRAIN,
      ...loraFlags,
      ...dataFlags,
    );
    expect(t.code, t.stderr).toBe(0);
    const [summary, ...rest] = t.lines;
    expect(summary).toMatchObject({ examples: 4, skipped: 0 });
    const steps = rest.filter((l) => 'step' in l);
    expect(steps.map((s) => s.step)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    for (const s of steps) {
      // transformers' log and TRL's metrics, under their names
      expect(Object.keys(s)).toEqual(TRAIN_LOG_KEYS);
      expect(s.learning_rate).toBe(3e-2);
      expect(s.grad_norm as number).toBeGreaterThan(0);
    }
    const losses = steps.map((s) => s.loss as number);
    expect(losses[7], losses.join(' ')).toBeLessThan(losses[0] * 0.8);
    const final = rest[rest.length - 1];
    expect(final.train_loss).toBeCloseTo(losses.reduce((a, b) => a + b) / 8, 5);
    expect(final.global_step).toBe(8);

    // PEFT's files, named and shaped as PEFT writes them
    const config = parseAdapterConfig(await readFile(join(out, 'adapter_config.json'), 'utf8'));
    expect(config).toMatchObject({ r: 8, lora_alpha: 16, base_model_name_or_path: model });
    const expectedTargets = {
      llama: ['q_proj', 'v_proj'],
      qwen2: ['down_proj', 'gate_proj', 'k_proj', 'o_proj', 'q_proj', 'up_proj', 'v_proj'],
      falcon: ['dense', 'dense_4h_to_h', 'dense_h_to_4h', 'query_key_value'],
    }[kind]!;
    expect(config.target_modules).toEqual(expectedTargets);
    const tensors = readSafetensorsSync(new Uint8Array(await readFile(join(out, 'adapter_model.safetensors'))));
    expect(tensors.length).toBe(2 * 2 * expectedTargets.length);
    expect(tensors.map((x) => x.info.name)).toContain(
      kind === 'falcon'
        ? 'base_model.model.transformer.h.1.self_attention.query_key_value.lora_B.weight'
        : 'base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight',
    );

    // eval with the adapter: the loss it was trained to (one micro-batch holds the whole data set
    // and dropout is 0, so its first step's loss is the eval loss of the start)
    const evalArgs = ['--model_name_or_path', model, '--dataset_name', dataset, '--json', 'true', ...dataFlags];
    const tuned = await finetune('eval', ...evalArgs, '--adapter', out);
    expect(tuned.code, tuned.stderr).toBe(0);
    const tunedLoss = tuned.lines.at(-1)!.eval_loss as number;
    expect(tunedLoss, losses.join(' ')).toBeLessThan(losses[0] * 0.8);
    if (kind === 'llama') {
      // the base model's loss is the first step's, and resuming from the adapter starts where it ended
      const base = await finetune('eval', ...evalArgs);
      expect(base.code, base.stderr).toBe(0);
      expect(base.lines.at(-1)!.eval_loss as number).toBeCloseTo(losses[0], 4);
      // and so are its token accuracy (a ratio of counts) and its entropy
      expect(base.lines.at(-1)!.eval_mean_token_accuracy).toBe(steps[0].mean_token_accuracy);
      expect(base.lines.at(-1)!.eval_entropy as number).toBeCloseTo(steps[0].entropy as number, 5);
      const resumed = await finetune(
        'train',
        '--model_name_or_path',
        model,
        '--dataset_name',
        dataset,
        '--output_dir',
        join(out, 'resumed'),
        '--init_adapter',
        out,
        ...trainSteps(1),
        ...dataFlags,
      );
      expect(resumed.code, resumed.stderr).toBe(0);
      expect(resumed.lines.find((l) => l.step === 1)!.loss as number).toBeCloseTo(tunedLoss, 4);
    }

    // generate: the command's greedy text is the library's with the same adapter
    const g = await finetune(
      'generate',
      '--model_name_or_path',
      model,
      '--adapter',
      out,
      '--prompt',
      PROMPT,
      '--max_new_tokens',
      '10',
      '--json',
      'true',
    );
    expect(g.code, g.stderr).toBe(0);
    const texts = g.lines.at(-1)!.texts as string[];
    const gpu = await testGpu();
    const dir = join(root, `tiny-${kind}`); // the same files the Hub served
    const session = await Session.load(gpu, localCheckpoint(dir), { name: model, load_in_4bit: true });
    session.loadAdapter(await localAdapterFiles(out));
    const tokenizer = await localTokenizer(dir);
    const greedy = {
      do_sample: false,
      temperature: 1,
      top_k: 50,
      top_p: 1,
      repetition_penalty: 1,
      max_new_tokens: 10,
      num_return_sequences: 1,
      seed: 0,
    };
    const [ids] = await session.generate(await tokenizer.encode(PROMPT), greedy);
    expect(texts).toEqual([await tokenizer.decode(ids, { skip_special_tokens: true })]);
    session.setAdapterEnabled(false);
    const [plain] = await session.generate(await tokenizer.encode(PROMPT), greedy);
    expect(plain).not.toEqual(ids); // the adapter changed what the model says
    if (kind === 'qwen2') {
      // the Hub was asked once for each file: eval and generate ran from the cache
      const shards = hub.log.filter((l) => l.endsWith('.safetensors all') || l.includes('.safetensors bytes'));
      expect(shards.map((l) => l.split(' ')[0]).sort()).toEqual([
        'tiny-random/qwen2/model-00001-of-00002.safetensors',
        'tiny-random/qwen2/model-00002-of-00002.safetensors',
      ]);
    }
  });
});

describe('finetune refuses bad input clearly', () => {
  it('names an unknown flag, a bad value and a missing requirement, with exit code 2', async () => {
    const a = await finetune('train', '--model_name_or_path', 'x', '--dataset_name', 'y', '--max_step', '3');
    expect(a.code).toBe(2);
    expect(a.stderr).toMatch(/train has no flag --max_step \(did you mean --max_steps\?\)/);
    const b = await finetune('train', '--model_name_or_path', 'x', '--dataset_name', 'y', '--packing', 'maybe');
    expect(b.stderr).toMatch(/--packing takes true or false, not "maybe"/);
    const c = await finetune('generate', '--model_name_or_path', 'x');
    expect(c.stderr).toMatch(/generate needs --prompt/);
    const d = await finetune('fly');
    expect(d.code).toBe(2);
    expect(d.stderr).toMatch(/unknown command "fly"/);
  });

  it('reports a truncated shard, an unknown model type and an adapter that does not fit, as JSON too', async () => {
    const model = join(root, 'tiny-llama');
    const broken = join(root, 'broken');
    await writeTinyCheckpoint(broken, 'llama', 3);
    const shard = join(broken, 'model-00002-of-00002.safetensors');
    const bytes = await readFile(shard);
    await writeFile(shard, bytes.subarray(0, bytes.length - 100));
    const a = await finetune('eval', '--model_name_or_path', broken, '--dataset_name', data.jsonl, '--json', 'true');
    expect(a.code).toBe(1);
    expect(a.lines.at(-1)!.error).toMatch(/model-00002-of-00002.safetensors/);
    expect(a.stderr).toMatch(/^error: .*model-00002-of-00002.safetensors/m);

    const config = JSON.parse(await readFile(join(broken, 'config.json'), 'utf8'));
    await writeFile(join(broken, 'config.json'), JSON.stringify({ ...config, model_type: 'mamba' }));
    const b = await finetune('eval', '--model_name_or_path', broken, '--dataset_name', data.jsonl);
    expect(b.code).toBe(1);
    expect(b.stderr).toMatch(/mamba/);

    // an adapter made for a wider model: lora_A has 96 input features where q_proj has 64
    const wrong = join(root, 'wrong-adapter');
    await finetune(
      'train',
      '--model_name_or_path',
      model,
      '--dataset_name',
      data.jsonl,
      '--output_dir',
      wrong,
      '--max_steps',
      '1',
      '--json',
      'true',
    );
    const layers = readAdapterSafetensors(
      new Uint8Array(await readFile(join(wrong, 'adapter_model.safetensors'))),
      16,
    ).map((l) => ({ ...l, inFeatures: 96, A: new Float32Array(16 * 96) }));
    await writeFile(join(wrong, 'adapter_model.safetensors'), writeAdapterSafetensors(layers));
    const c = await finetune('generate', '--model_name_or_path', model, '--adapter', wrong, '--prompt', 'hi');
    expect(c.code).toBe(1);
    expect(c.stderr).toMatch(/q_proj: the adapter's A is \[16, 96\].*another base model or rank/);

    const d = await finetune('train', '--model_name_or_path', join(root, 'nowhere'), '--dataset_name', data.jsonl);
    expect(d.code).toBe(2);
    expect(d.stderr).toMatch(/nowhere is neither a local folder nor a Hub id/);
  });
});
