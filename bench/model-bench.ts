// The end-to-end bench: a QLoRA training step and a decoded token, timed on the shapes of real
// checkpoints with random weights made on the fly (nothing is downloaded). Each case runs on a
// device of its own, so that its memory figures are its own:
//   train     tokens/s over timed optimizer steps (one micro-batch of `tokens`, every linear
//             adapted at rank 16, LoRA dropout on), after one warm-up step
//   split     one more step with every dispatch timed (timestamp queries), summed by kernel class
//   counts    dispatches per step, and GPU buffers and bind groups created per step after the first
//             (target 0)
//   memory    the most bytes live at once and all bytes the device was given, over the engine's estimate
//   efficiency  the step's frozen products (forward, recompute, backward; the head) timed alone at the
//             step's shapes, over the step's time: how much of the step is matmul at our own speed
//   decode    tokens/s of greedy generation after the prompt, each token read back and chosen on
//             the CPU as the chat does, and its split
// Shared by the Node bench (Dawn: bench/node-bench.ts) and the page's (bench/bench.ts).
import type { Gpu, Tensor } from '../src/gpu/runtime';
import { generate, seededRandom, type GenerateSettings } from '../src/generate/generate';
import { SAMPLING_DEFAULTS } from '../src/generate/sampling';
import { Session } from '../src/engine/session';
import { hostBatch, uploadBatch } from '../src/data/batches';
import type { RawConfig } from '../src/model/config';
import { estimateTrainingMemory, lossChunkRows, parameterCount } from '../src/model/estimate';
import { GpuTensors } from '../src/model/load';
import { PRESETS } from '../src/model/presets';
import { familyOf, parseModelConfig } from '../src/model/registry';
import { halfLinear, halfLinearBackwardInput } from '../src/ops/head';
import { nf4Linear, nf4LinearBackwardInput } from '../src/ops/nf4';
import { ADAMW_DEFAULTS } from '../src/ops/optim';
import { Trainer } from '../src/train/trainer';

export interface ModelCase {
  name: string;
  /** config.json as the checkpoint has it (trimmed to what is read). */
  config: RawConfig;
  /** Tokens per training step (one sequence). */
  tokens: number;
  prompt: number;
  newTokens: number;
  /** Timed training steps after the warm-up. */
  steps: number;
  /** Recompute each layer in backward (the default); false keeps its intermediates. */
  gradient_checkpointing?: boolean;
}

// ---- the shapes (config.json values of the real checkpoints) -----------------------------

/** A ~5M-parameter Llama for CPU drivers: 4 layers of 256, GQA 4/2, a 4096-token vocabulary. */
export const LLAMA_5M: RawConfig = {
  model_type: 'llama',
  hidden_size: 256,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  num_hidden_layers: 4,
  intermediate_size: 768,
  vocab_size: 4096,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  hidden_act: 'silu',
  max_position_embeddings: 2048,
  tie_word_embeddings: false,
};

/** The page's suggested models (src/model/presets.ts) hold the real checkpoints' config.json. */
function preset(id: string): RawConfig {
  const p = PRESETS.find((x) => x.id === id);
  if (!p) throw new Error(`no preset ${id}`);
  return p.config;
}

/** What runs where: the small case on CPU drivers, the real shapes on a GPU. */
export function benchCases(size: 'small' | 'large'): ModelCase[] {
  const small: ModelCase = { name: 'llama-5m', config: LLAMA_5M, tokens: 256, prompt: 16, newTokens: 16, steps: 3 };
  // the same without gradient checkpointing: what keeping every layer's intermediates buys
  const kept: ModelCase = { ...small, name: 'llama-5m, no checkpointing', gradient_checkpointing: false, newTokens: 4 };
  if (size === 'small') return [small, kept];
  const real = (name: string, config: RawConfig): ModelCase => ({
    name,
    config,
    tokens: 512,
    prompt: 32,
    newTokens: 64,
    steps: 5,
  });
  return [
    { ...small, steps: 10, newTokens: 64 },
    real('SmolLM2-135M', preset('HuggingFaceTB/SmolLM2-135M-Instruct')),
    real('Qwen3-0.6B', preset('Qwen/Qwen3-0.6B')),
    real('Llama-3.2-1B', preset('meta-llama/Llama-3.2-1B-Instruct')),
    real('falcon-7b', preset('tiiuae/falcon-7b')),
  ];
}

// ---- what a case reports ------------------------------------------------------------------

/** GPU milliseconds per kernel class in one step (or one decoded token). */
export type Split = Record<string, number>;

export interface ModelRow {
  model: string;
  params: number;
  tokens: number;
  train_step_ms: number;
  train_tokens_per_s: number;
  /** Null where the runtime cannot say (an older commit, a device without timestamp queries). */
  dispatches_per_step: number | null;
  /** GPU buffers (storage, uniform, staging) and bind groups made per step after the first: 0 is the target. */
  buffers_created_per_step: number | null;
  bind_groups_created_per_step: number | null;
  train_split_ms: Split | null;
  /** Training's: the most bytes live at once, and all held after the steps (live and pooled). */
  peak_live_bytes: number;
  allocated_bytes: number;
  estimate_bytes: number;
  /** The step's frozen products timed alone, and that over the step's time. */
  matmul_alone_ms: number;
  step_efficiency: number;
  decode_ms_per_token: number;
  decode_tokens_per_s: number;
  dispatches_per_token: number | null;
  decode_split_ms: Split | null;
}

/** Kernel (or dispatch label) → the class the split reports. */
const CLASSES: [RegExp, string][] = [
  [/^(gemm_nf4|nf4_gemv)$/, 'frozen matmul'],
  [/^(gemm_half|gemv_half)$/, 'head'],
  [/^(lora|dropout_)/, 'lora'],
  [/^(attention|softcap)/, 'attention'],
  [/norm/, 'norms'],
  [/^rope$/, 'rope'],
  [/^(swiglu|gelu)/, 'mlp activation'],
  [/^cross_entropy$/, 'loss'],
  [/^(adamw|sumsq)/, 'optimizer'],
];

function classify(totals: Map<string, { ms: number }>): Split {
  const split: Split = {};
  for (const [label, { ms }] of totals) {
    const cls = CLASSES.find(([re]) => re.test(label))?.[1] ?? 'other';
    split[cls] = (split[cls] ?? 0) + ms;
  }
  return split;
}

// Features the harness reads only where the runtime has them, so that it also times older commits.
interface Instrumented {
  counters?: { dispatches: number; buffersCreated: number; bindGroupsCreated: number };
  canTime?: boolean;
  startTiming?(): void;
  stopTiming?(): Promise<Map<string, { ms: number; count: number }>>;
}

async function timed<T>(gpu: Gpu, run: () => Promise<T>): Promise<{ result: T; split: Split | null }> {
  const g = gpu as Gpu & Instrumented;
  if (!g.canTime || !g.startTiming || !g.stopTiming) return { result: await run(), split: null };
  g.startTiming();
  const result = await run();
  return { result, split: classify(await g.stopTiming()) };
}

const buffers = (gpu: Gpu) => (gpu as Gpu & Instrumented).counters?.buffersCreated ?? null;
const bindGroups = (gpu: Gpu) => (gpu as Gpu & Instrumented).counters?.bindGroupsCreated ?? null;
const dispatches = (gpu: Gpu) => (gpu as Gpu & Instrumented).counters?.dispatches ?? null;
const perStep = (a: number | null, b: number | null, n: number) => (a === null || b === null ? null : (b - a) / n);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

// ---- a random model of a real shape -------------------------------------------------------

/**
 * The case's network with random weights, loaded as a checkpoint is (linears quantized to NF4
 * on the GPU, the rest BF16): values are drawn from one pool and tiled, which is enough for
 * timing and fast at billions of weights.
 */
async function randomSession(gpu: Gpu, raw: RawConfig): Promise<Session> {
  const c = parseModelConfig(raw);
  const tensors = new GpuTensors(gpu, c, { load_in_4bit: true });
  const random = seededRandom(1);
  const pool = Float32Array.from({ length: 1 << 20 }, () => random() * 2 - 1);
  for (const [name, shape] of familyOf(c).tensors(c)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const values = new Float32Array(n);
    if (/norm|ln_/.test(name)) values.fill(1);
    else {
      const scale = 1 / Math.sqrt(shape[shape.length - 1]);
      const scaled = pool.map((v) => v * scale);
      for (let at = 0; at < n; at += scaled.length) values.set(scaled.subarray(0, Math.min(scaled.length, n - at)), at);
    }
    const info = { name, dtype: 'F32' as const, shape, begin: 0, end: 4 * n };
    await tensors.add(info, new Uint8Array(values.buffer), 'random');
  }
  return Session.fromLoaded(gpu, tensors.assemble(), String(raw.model_type), null);
}

/** One case on a device of its own (`makeGpu`), released at the end. */
export async function benchModel(makeGpu: () => Promise<Gpu>, k: ModelCase): Promise<ModelRow> {
  const gpu = await makeGpu();
  try {
    const session = await randomSession(gpu, k.config);
    const c = session.config;
    session.attachLora(
      { r: 16, lora_alpha: 32, lora_dropout: 0.05, target_modules: 'all-linear', use_rslora: false },
      1,
    );
    const lora = session.lora!;
    const trainer = new Trainer(gpu, session.model, lora, {
      ...ADAMW_DEFAULTS,
      learning_rate: 1e-4,
      lr_scheduler_type: 'constant',
      warmup_steps: 0,
      max_steps: 1000,
      gradient_checkpointing: k.gradient_checkpointing ?? true,
    });
    // one sequence of random tokens, every one a target
    const random = seededRandom(2);
    const ids = Array.from({ length: k.tokens }, () => Math.floor(random() * c.vocab));
    const block = { input_ids: ids, labels: ids, position_ids: ids.map((_, i) => i) };
    const batch = uploadBatch(gpu, hostBatch([block], c.slidingWindow, c.localWindow));
    const micro = [{ batch, counted: k.tokens - 1 }];

    await trainer.trainStep(micro); // warm-up: pipelines compiled, the pool filled
    const [d0, b0, g0] = [dispatches(gpu), buffers(gpu), bindGroups(gpu)];
    const times: number[] = [];
    for (let i = 0; i < k.steps; i++) {
      const t0 = performance.now();
      await trainer.trainStep(micro);
      times.push(performance.now() - t0);
    }
    const [d1, b1, g1] = [dispatches(gpu), buffers(gpu), bindGroups(gpu)];
    const stepMs = median(times);
    // what training holds on the device: live tensors and the pool's free buffers
    const [peakLive, allocated] = [gpu.memory.peak, gpu.memory.allocated];
    const { split: trainSplit } = await timed(gpu, () => trainer.trainStep(micro));

    const estimate = estimateTrainingMemory(c, {
      max_length: k.tokens,
      batch: 1,
      r: 16,
      targets: c.linearModules,
      load_in_4bit: true,
      maxBinding: gpu.maxBinding,
      gradient_checkpointing: k.gradient_checkpointing,
    }).total;
    const matmulMs = await frozenProductsAlone(gpu, session, k.tokens, k.gradient_checkpointing ?? true);

    // decoding: greedy, as the chat runs it; the clock starts at the first new token
    const prompt = ids.slice(0, k.prompt);
    const settings: GenerateSettings = {
      ...SAMPLING_DEFAULTS,
      num_return_sequences: 1,
      seed: 0,
      max_new_tokens: k.newTokens,
      eos_token_id: [], // never stop early
    };
    const d1tok = dispatches(gpu);
    await generate(session.model, prompt, { ...settings, max_new_tokens: 1 }); // warm-up: the prompt alone
    const prefillDispatches = perStep(d1tok, dispatches(gpu), 1);
    const stamps: number[] = [];
    const d2 = dispatches(gpu);
    await generate(session.model, prompt, settings, () => stamps.push(performance.now()));
    const d3 = dispatches(gpu);
    const tokenMs = (stamps[stamps.length - 1] - stamps[0]) / (stamps.length - 1);
    // the split of 9 new tokens: 10 generated, less the prompt's pass and the first token
    const { split: first } = await timed(gpu, () =>
      generate(session.model, prompt, { ...settings, max_new_tokens: 1 }),
    );
    const { split: ten } = await timed(gpu, () => generate(session.model, prompt, { ...settings, max_new_tokens: 10 }));
    const perToken =
      ten && first && Object.fromEntries(Object.entries(ten).map(([key, ms]) => [key, (ms - (first[key] ?? 0)) / 9]));

    const params = parameterCount(c);
    trainer.release();
    session.release();
    return {
      model: k.name,
      params,
      tokens: k.tokens,
      train_step_ms: stepMs,
      train_tokens_per_s: (k.tokens / stepMs) * 1000,
      dispatches_per_step: perStep(d0, d1, k.steps),
      buffers_created_per_step: perStep(b0, b1, k.steps),
      bind_groups_created_per_step: perStep(g0, g1, k.steps),
      train_split_ms: trainSplit,
      peak_live_bytes: peakLive,
      allocated_bytes: allocated,
      estimate_bytes: estimate,
      matmul_alone_ms: matmulMs,
      step_efficiency: matmulMs / stepMs,
      decode_ms_per_token: tokenMs,
      decode_tokens_per_s: 1000 / tokenMs,
      // the prompt's pass and the first token left out
      dispatches_per_token:
        prefillDispatches === null ? null : perStep(d2, d3 === null ? null : d3 - prefillDispatches, k.newTokens - 1),
      decode_split_ms: perToken,
    };
  } finally {
    gpu.destroy();
  }
}

/**
 * The step's frozen products, each timed alone at its shape: per linear, the forward (twice
 * with gradient checkpointing: once more in the recompute) and the backward to the input; the
 * head's forward and backward over every chunk of rows.
 */
async function frozenProductsAlone(gpu: Gpu, session: Session, T: number, recompute: boolean): Promise<number> {
  const reps = 3;
  const time = async (run: () => Tensor): Promise<number> => {
    (run() as Tensor).release(); // compile, and fill the pool
    await gpu.sync();
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) run().release();
    await gpu.sync();
    return (performance.now() - t0) / reps;
  };
  const byShape = new Map<string, { count: number; ms: number }>();
  for (const m of session.linears) {
    if (m.base.kind !== 'nf4') throw new Error('the bench loads every linear in NF4');
    const w = m.base.w;
    const key = w.shape.join('×');
    const seen = byShape.get(key);
    if (seen) {
      seen.count++;
      continue;
    }
    const x = gpu.tensor([T, w.shape[1]]);
    const dy = gpu.tensor([T, w.shape[0]]);
    const forwards = recompute ? 2 : 1;
    const ms =
      forwards * (await time(() => nf4Linear(gpu, x, w))) + (await time(() => nf4LinearBackwardInput(gpu, dy, w)));
    x.release();
    dy.release();
    byShape.set(key, { count: 1, ms });
  }
  const c = session.config;
  const head = session.model.weights.head;
  const rows = Math.min(T, lossChunkRows(c.vocab, gpu.maxBinding));
  const xh = gpu.tensor([rows, c.hidden]);
  const z = gpu.tensor([rows, c.vocab]);
  const headMs =
    (await time(() => halfLinear(gpu, xh, head))) + (await time(() => halfLinearBackwardInput(gpu, z, head)));
  xh.release();
  z.release();
  let total = (headMs * T) / rows;
  for (const { count, ms } of byShape.values()) total += count * ms;
  return total;
}

// ---- the table ----------------------------------------------------------------------------

const mb = (n: number) => `${(n / 1e6).toFixed(n < 1e8 ? 1 : 0)} MB`;

export function formatModelTable(rows: ModelRow[]): string {
  const head = [
    'model',
    'params',
    'train tok/s',
    'step ms',
    'efficiency',
    'dispatches',
    'new buffers / bind groups',
    'peak / allocated / estimate',
    'decode tok/s',
    'ms/token',
    'dispatches/token',
  ];
  const body = rows.map((r) => [
    r.model,
    `${(r.params / 1e6).toFixed(1)}M`,
    r.train_tokens_per_s.toFixed(1),
    r.train_step_ms.toFixed(1),
    `${(100 * r.step_efficiency).toFixed(0)}%`,
    r.dispatches_per_step?.toFixed(0) ?? '—',
    `${r.buffers_created_per_step?.toFixed(1) ?? '—'} / ${r.bind_groups_created_per_step?.toFixed(1) ?? '—'}`,
    `${mb(r.peak_live_bytes)} / ${mb(r.allocated_bytes)} / ${mb(r.estimate_bytes)}`,
    r.decode_tokens_per_s.toFixed(1),
    r.decode_ms_per_token.toFixed(1),
    r.dispatches_per_token?.toFixed(0) ?? '—',
  ]);
  return table([head, ...body]);
}

/** Each model's GPU time by kernel class, for a training step and a decoded token. */
export function formatSplitTable(rows: ModelRow[]): string {
  const classes = [...new Set(rows.flatMap((r) => Object.keys({ ...r.train_split_ms, ...r.decode_split_ms })))].sort();
  const lines: string[][] = [['model', 'what', 'wall ms', 'GPU ms', ...classes]];
  for (const r of rows) {
    for (const [what, split, wall] of [
      ['train step', r.train_split_ms, r.train_step_ms],
      ['decoded token', r.decode_split_ms, r.decode_ms_per_token],
    ] as const) {
      if (!split) continue;
      const gpuMs = Object.values(split).reduce((a, b) => a + b, 0);
      lines.push([
        r.model,
        what,
        wall.toFixed(2),
        gpuMs.toFixed(2),
        ...classes.map((k) => split[k]?.toFixed(2) ?? '—'),
      ]);
    }
  }
  return table(lines);
}

/** This tree's speed over another commit's, per model: training and decoding tokens/s. */
export function formatComparison(before: ModelRow[], after: ModelRow[]): string {
  const lines = [['model', 'train tok/s before → after', 'speed-up', 'decode tok/s before → after', 'speed-up']];
  for (const a of after) {
    const b = before.find((r) => r.model === a.model);
    if (!b) continue;
    lines.push([
      a.model,
      `${b.train_tokens_per_s.toFixed(1)} → ${a.train_tokens_per_s.toFixed(1)}`,
      `${(a.train_tokens_per_s / b.train_tokens_per_s).toFixed(2)}×`,
      `${b.decode_tokens_per_s.toFixed(1)} → ${a.decode_tokens_per_s.toFixed(1)}`,
      `${(a.decode_tokens_per_s / b.decode_tokens_per_s).toFixed(2)}×`,
    ]);
  }
  return table(lines);
}

function table(lines: string[][]): string {
  const widths = lines[0].map((_, i) => Math.max(...lines.map((l) => l[i].length)) + 2);
  return lines
    .map((l) =>
      l
        .map((cell, i) => cell.padEnd(widths[i]))
        .join('')
        .trimEnd(),
    )
    .join('\n');
}
