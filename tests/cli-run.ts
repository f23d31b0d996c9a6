// Running `finetune` as a user runs it (node bin/finetune.mjs, a process of its own on Dawn +
// SwiftShader), for the command-line tests: its exit code, its output, and stdout's JSON lines.
import { execFile } from 'node:child_process';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';

const BIN = resolve('bin/finetune.mjs');

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
  /** stdout's JSON lines. */
  lines: Record<string, unknown>[];
}

/** A runner with the Hub at `hubUrl` (HF_ENDPOINT) and its download cache under `root`. */
export function finetuneRunner(root: string, hubUrl = 'http://127.0.0.1:9') {
  return async (...args: string[]): Promise<Run> => {
    const env = {
      ...process.env,
      VK_ICD_FILENAMES: '/usr/lib/chromium/vk_swiftshader_icd.json',
      NO_COLOR: '1',
      HF_ENDPOINT: hubUrl,
      XDG_CACHE_HOME: join(root, 'cache'),
    };
    const r = await promisify(execFile)('node', [BIN, ...args], { env, maxBuffer: 1 << 24 }).then(
      (ok) => ({ code: 0, ...ok }),
      (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
    );
    const lines = r.stdout
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l));
    return { ...r, lines };
  };
}

/** Short, fast training: 8 steps of the whole tiny data set at a high learning rate, JSON logs. */
export const TRAIN = [
  '--max_steps',
  '8',
  '--learning_rate',
  '3e-2',
  '--lora_r',
  '8',
  '--lora_alpha',
  '16',
  '--lora_dropout',
  '0',
  '--per_device_train_batch_size',
  '4',
  '--logging_steps',
  '1',
  '--lr_scheduler_type',
  'constant',
  '--json',
  'true',
];

/** TRAIN with `steps` steps instead of 8. */
export const trainSteps = (steps: number) => TRAIN.map((x) => (x === '8' ? String(steps) : x));

export const PROMPT = '### Human: Say hi. ### Assistant:';
