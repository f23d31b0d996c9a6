// `finetune`: the Node command line. The same session, data pipeline and WGSL kernels as the
// page, on Dawn (src/node/dawn.ts). Commands:
//   finetune train     QLoRA fine-tuning (flags as trl sft), the adapter written in PEFT's files
//   finetune eval      the token-weighted mean loss of a model, with or without an adapter
//   finetune generate  text from a prompt, with or without an adapter
//   finetune preview   the first training blocks exactly as the model will see them
// With --json, stdout carries one JSON object per line and nothing else.
import { openAsBlob } from 'node:fs';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { TokenizerClient } from '../engine/tokenizer-client';
import {
  prepareData,
  configSplitFiles,
  type DataSplits,
  type PreparedData,
  type PrepareSettings,
  type SplitName,
} from '../data/prepare';
import { blockSegments, sequenceLengths, type Block, type PackingStrategy } from '../data/sft';
import { dataSummary } from '../engine/data-summary';
import { streamGeneration } from '../engine/stream-generation';
import { Session, type LoraSettings } from '../engine/session';
import {
  TrainingRun,
  type EvalLog,
  type RunSettings,
  type SaveStrategy,
  type TrainLog,
  type TrainSummary,
} from '../engine/training-run';
import { checkpointName } from '../train/checkpoint';
import { modelCard } from '../formats/model-card';
import { describeTargets } from '../model/target-modules';
import { CheckpointFolder, checkpointToResume, readCheckpointFolder } from '../node/checkpoint-folder';
import { parseConfigText } from '../model/load';
import type { SchedulerKwargs, SchedulerType } from '../train/schedule';
import { localAdapterFiles, localCheckpoint, localGenerationConfig } from '../node/local-files';
import { chatPrompt } from '../engine/tokenizer';
import {
  describeGeneration,
  fieldsSet,
  generationSettings,
  type GenerationConfig,
} from '../generate/generation-config';
import { localDataSplits, localTokenizer } from '../node/local-data';
import { takeConfig } from './config-file';
import { cacheDataset, cacheModel, hubOptionsFromEnv } from '../node/hub-cache';
import { isRepoId, type RepoFile } from '../hub/hub';
import { nodeGpu } from '../node/dawn';
import { helpText, parseFlags, UsageError, type FlagSpecs, type FlagValues } from './args';
import { EVAL, GENERATE, PREVIEW, TRAIN } from './commands';
import { escapeControl, Reporter } from './report';

const COMMANDS: Record<
  string,
  { summary: string; flags: FlagSpecs; run: (f: FlagValues, r: Reporter) => Promise<void> }
> = {
  train: { summary: 'fine-tune a LoRA adapter on a data set (QLoRA)', flags: TRAIN, run: train },
  eval: { summary: 'the mean loss per token of a model on a data set', flags: EVAL, run: evaluate },
  generate: { summary: 'continue a prompt', flags: GENERATE, run: generateText },
  preview: { summary: 'the first training blocks, as the model will see them', flags: PREVIEW, run: preview },
};

const USAGE = `usage: finetune <command> [--flag value ...]

commands:
${Object.entries(COMMANDS)
  .map(([k, c]) => `  ${k.padEnd(9)} ${c.summary}`)
  .join('\n')}

\`finetune <command> --help\` lists a command's flags. \`--config file.yaml\` reads them from a YAML
file of the same names, as trl sft reads one (an \`env:\` mapping sets variables); flags given win.
`;

/** Runs a command; resolves to the process's exit code (0 ok, 1 failed, 2 bad usage). */
export async function main(
  argv: string[],
  out: NodeJS.WritableStream = process.stdout,
  err: NodeJS.WritableStream = process.stderr,
): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    out.write(USAGE);
    return name ? 0 : 2;
  }
  const command = COMMANDS[name];
  if (!command) {
    err.write(`finetune: unknown command "${name}"\n\n${USAGE}`);
    return 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    out.write(helpText(name, command.summary, command.flags));
    return 0;
  }
  let flags: FlagValues;
  try {
    const { argv, config } = await takeConfig(rest);
    flags = parseFlags(argv, command.flags, name, config);
  } catch (e) {
    err.write(`finetune ${name}: ${(e as Error).message}\n`);
    return 2;
  }
  const reporter = new Reporter(flags.json as boolean, out, err);
  try {
    await command.run(flags, reporter);
    return 0;
  } catch (e) {
    reporter.fail(e as Error);
    return e instanceof UsageError ? 2 : 1;
  }
}

// ---- shared steps -------------------------------------------------------------------------

/** The model and its tokenizer, on the GPU; with `o.generation`, its generation_config.json too (read first). */
async function openModel(
  f: FlagValues,
  r: Reporter,
  o: { generation?: boolean } = {},
): Promise<{ session: Session; tokenizer: TokenizerClient; generation: GenerationConfig }> {
  const dir = await modelFolder(f.model_name_or_path as string, f.model_revision as string, r);
  const { vocab } = parseConfigText(await readFile(join(dir, 'config.json'), 'utf8'));
  const generation = o.generation ? await localGenerationConfig(dir) : {};
  const tokenizer = await localTokenizer(dir, { vocabSize: vocab, chatTemplatePath: f.chat_template_path as string });
  const gpu = await nodeGpu();
  r.info(`device: ${gpu.info.description || gpu.info.vendor || 'WebGPU adapter'}`);
  let tensors = 0;
  const session = await Session.load(
    gpu,
    localCheckpoint(dir),
    {
      name: f.model_name_or_path as string,
      load_in_4bit: f.load_in_4bit as boolean,
      nested: f.use_bnb_nested_quant as boolean,
    },
    () => r.progress('loading', ++tensors, null, `${tensors} tensors`),
  );
  r.endProgress();
  const c = session.config;
  r.info(
    `model: ${c.modelType}, ${c.layers} layers, hidden ${c.hidden}, vocab ${c.vocab}; linear weights ` +
      `${f.load_in_4bit ? 'NF4' : '16-bit'}`,
  );
  return { session, tokenizer, generation };
}

/** --enable_thinking as the chat template's variable; unset, the template's default. */
function templateKwargs(f: FlagValues) {
  return f.enable_thinking === null ? undefined : { enable_thinking: f.enable_thinking as boolean };
}

/** A local checkpoint folder, or a Hub id downloaded into the cache (HF_ENDPOINT, HF_TOKEN). */
async function modelFolder(name: string, revision: string, r: Reporter): Promise<string> {
  if (
    await stat(name).then(
      (s) => s.isDirectory(),
      () => false,
    )
  )
    return name;
  if (!isRepoId(name))
    throw new UsageError(`--model_name_or_path ${name} is neither a local folder nor a Hub id (owner/name)`);
  const { dir, files } = await cacheModel(name, { ...hubOptionsFromEnv(), revision, onFile: download(r) });
  r.endProgress();
  r.info(`model files: ${files.length} from the Hub, cached in ${dir}`);
  return dir;
}

/** Whether --dataset_name names a local file or folder (else it is a Hub id). */
const isLocalPath = (name: string) =>
  stat(name).then(
    () => true,
    () => false,
  );

async function dataSplitsFor(name: string, config: string | null, r: Reporter): Promise<DataSplits> {
  if (await isLocalPath(name)) return localDataSplits(name, config);
  if (!isRepoId(name))
    throw new UsageError(`--dataset_name ${name} is neither a local file or folder nor a Hub id (owner/name)`);
  const got = await cacheDataset(name, { ...hubOptionsFromEnv(), config, onFile: download(r) });
  r.endProgress();
  const files = await Promise.all(
    got.files.map(async (x) => ({ name: x.path, blob: await openAsBlob(join(got.dir, x.path)) })),
  );
  return configSplitFiles(files, got.config, name);
}

function download(r: Reporter) {
  const t0 = performance.now();
  return (file: RepoFile, done: number, total: number) => {
    const rate = done / Math.max(1e-3, (performance.now() - t0) / 1000);
    r.progress(
      'downloading',
      Math.round(done / 1e6),
      Math.max(1, Math.round(total / 1e6)),
      `MB ${file.path} ${(rate / 1e6).toFixed(1)} MB/s`,
    );
  };
}

/** The data set, prepared as the flags say (`split`: the one to read; evaluation data when asked for). */
async function loadData(
  f: FlagValues,
  tokenizer: TokenizerClient,
  vocab: number,
  r: Reporter,
  o: { split?: SplitName; evaluate?: boolean } = {},
): Promise<PreparedData> {
  const splits = await dataSplitsFor(f.dataset_name as string, f.dataset_config as string | null, r);
  const s: PrepareSettings = {
    dataset_text_field: f.dataset_text_field as string,
    max_length: f.max_length as number,
    packing: f.packing as boolean,
    packing_strategy: f.packing_strategy as PackingStrategy,
    truncation_mode: f.truncation_mode as 'keep_start' | 'keep_end',
    completion_only_loss: f.completion_only_loss as boolean | null,
    assistant_only_loss: f.assistant_only_loss as boolean,
    chat_template_kwargs: templateKwargs(f),
    dataset_train_split: o.split ?? (f.dataset_train_split as SplitName),
    dataset_test_split: f.dataset_test_split as SplitName,
    evaluate: !!o.evaluate,
    test_size: (f.test_size as number | null) ?? null,
    seed: (f.seed as number | undefined) ?? 42,
    shuffle_dataset: f.shuffle_dataset as boolean,
    batch: (f.per_device_train_batch_size ?? f.per_device_eval_batch_size ?? 8) as number,
  };
  const d = await prepareData(splits, tokenizer, s, vocab);
  const sum = await dataSummary(d, tokenizer, 0);
  const st = sum.stats;
  const layout = s.packing
    ? `${st.blocks} blocks of up to ${s.max_length} (${s.packing_strategy} packing)`
    : `${st.blocks} sequences`;
  r.info(
    `data: ${sum.files.join(', ')}: ${st.examples} examples (${sum.kind.replace(/_/g, ' ')}), ${st.keptTokens} ` +
      `tokens → ${layout}; ${st.targets} tokens with a loss target`,
  );
  if (st.truncated)
    r.info(
      `data: ${st.truncated} examples longer than ${s.max_length} tokens truncated ` +
        `(${st.tokens - st.keptTokens} tokens dropped)`,
    );
  const padding = sum.padding;
  r.info(
    `data: micro-batches of ${s.batch} examples padded to their longest would hold ${padding.unpacked} pad ` +
      `tokens of ${st.paddedUnpacked}` +
      (s.packing ? `; packed, ${padding.packed} of ${st.paddedPacked} (packing saves ${padding.saved})` : ''),
  );
  r.info(`data: pad token ${sum.pad}; batches are laid end to end, never padded`);
  if (sum.eval) {
    const e = sum.eval;
    r.info(`evaluation: ${e.examples} examples from ${e.source} → ${e.blocks} blocks`);
  }
  if (sum.skipped) r.warn(`skipped ${sum.skipped} rows: ${sum.skippedWhy}`);
  r.event({
    dataset: sum.files,
    format: sum.kind,
    rows: sum.rows,
    ...st,
    skipped: sum.skipped,
    skipped_why: sum.skippedReasons,
    ...(sum.eval
      ? { eval_examples: sum.eval.examples, eval_blocks: sum.eval.blocks, eval_source: sum.eval.source }
      : {}),
  });
  return d;
}

// ---- commands -----------------------------------------------------------------------------

async function train(f: FlagValues, r: Reporter): Promise<void> {
  if (!f.use_peft)
    throw new UsageError('--use_peft false asks for full fine-tuning; this tool trains LoRA adapters only');
  if (f.resume_from_checkpoint && f.init_adapter)
    throw new UsageError(
      '--init_adapter and --resume_from_checkpoint both give the adapter: a checkpoint holds its own',
    );
  const dir = f.output_dir as string;
  // the checkpoint is found and read before the model loads: a wrong path fails at once
  const resumeDir = f.resume_from_checkpoint ? await checkpointToResume(f.resume_from_checkpoint as string, dir) : null;
  const resume = resumeDir ? await readCheckpointFolder(resumeDir) : undefined;
  const { session, tokenizer } = await openModel(f, r);
  const evaluate = f.eval_strategy !== 'no';
  const data = await loadData(f, tokenizer, session.config.vocab, r, { evaluate });
  const blocks = data.train.blocks;
  if (f.init_adapter) {
    const files = await localAdapterFiles(f.init_adapter as string, (c) => session.adapterWeightsBound(c));
    const config = session.loadAdapter(files);
    r.info(
      `adapter: ${f.init_adapter} (r ${config.r}, alpha ${config.lora_alpha}, ` +
        `${describeTargets(config.target_modules)})`,
    );
  } else if (!resume) session.attachLora(loraSettings(f, session), f.seed as number);

  const settings = trainSettings(f);
  const run = new TrainingRun(session, blocks, settings, {
    eval: data.eval?.blocks,
    store: new CheckpointFolder(dir),
    resume,
  });
  if (resumeDir) r.info(`resuming from ${resumeDir}: step ${run.step} of ${run.maxSteps}, epoch ${run.epoch}`);
  const params = session.lora!.modules.reduce((n, m) => n + m.lora!.A.numel + m.lora!.B.numel, 0);
  r.info(`LoRA: ${session.lora!.modules.length} modules, ${params.toLocaleString('en')} trainable parameters`);

  // Ctrl-C stops after the current step and saves a checkpoint and the adapter; a second one quits.
  const onSigint = () => {
    if (stopping) process.exit(130);
    stopping = true;
    r.warn('stopping after this step; a checkpoint and the adapter will be saved (Ctrl-C again to quit now)');
    run.stop();
  };
  let stopping = false;
  process.on('SIGINT', onSigint);
  const save = async (extra: Record<string, unknown> = {}) => {
    await mkdir(dir, { recursive: true });
    const files = await session.exportAdapter();
    for (const [name, data] of Object.entries(files)) await writeFile(join(dir, name), data);
    await writeFile(
      join(dir, 'trainer_state.json'),
      JSON.stringify({ ...run.trainerState(), ...extra }, null, 2) + '\n',
    );
  };
  let summary: TrainSummary;
  try {
    const events = run.events();
    r.progress('training', run.step, run.maxSteps, '');
    for (;;) {
      const next = await events.next();
      if (next.done) {
        summary = next.value;
        break;
      }
      const e = next.value;
      if (e.type === 'train' || e.type === 'eval') {
        const { max_steps: _, ...log } = e.log; // the logs as transformers' log_history has them
        if (e.type === 'train') r.stepLog(log as Omit<TrainLog, 'max_steps'>, run.maxSteps);
        else r.evalLog(log as Omit<EvalLog, 'max_steps'>, run.maxSteps);
      } else if (e.type === 'save') {
        const at = join(dir, checkpointName(e.step));
        const removed = e.pruned.map((s) => join(dir, checkpointName(s)));
        r.info(`checkpoint: ${at}${removed.length ? `; removed ${removed.join(', ')}` : ''}`);
        r.event({ checkpoint: at, reason: e.reason, removed });
      }
    }
  } catch (e) {
    // what was trained is not lost: the adapter as it stood when the error came is saved
    if (run.step > 0) {
      await save({ stopped_by: (e as Error).message }).then(
        () =>
          r.warn(
            `training stopped by an error (after step ${run.step}); the adapter trained so far is saved in ${dir}`,
          ),
        (saveError: Error) =>
          r.warn(`training stopped by an error, and the adapter could not be saved either (${saveError.message})`),
      );
    }
    throw e;
  } finally {
    process.off('SIGINT', onSigint);
    r.endProgress();
  }
  // the closing entry of log_history, as transformers appends it after training
  run.history.push({
    epoch: run.epoch,
    step: summary.global_step,
    train_loss: summary.train_loss,
    train_runtime: round(summary.train_runtime, 4),
  });
  await save();
  const lastEval = [...run.history].reverse().find((h) => 'eval_loss' in h);
  await writeFile(
    join(dir, 'README.md'),
    modelCard({
      base_model: f.model_name_or_path as string,
      dataset: f.dataset_name as string,
      datasetOnHub: !(await isLocalPath(f.dataset_name as string)),
      settings: cardSettings(f, session),
      global_step: summary.global_step,
      train_loss: summary.train_loss,
      eval_loss: lastEval?.eval_loss ?? null,
      trainedWith: 'the `finetune` command line of webgpu-qlora',
      history: run.history,
    }),
  );
  r.result(
    {
      train_loss: summary.train_loss,
      global_step: summary.global_step,
      tokens: summary.tokens,
      train_runtime: round(summary.train_runtime, 3),
      output_dir: dir,
    },
    `trained ${summary.steps_this_session} steps in ${summary.train_runtime.toFixed(1)} s` +
      `${summary.steps_this_session !== summary.global_step ? ` (to step ${summary.global_step})` : ''}: train_loss ` +
      `${summary.train_loss.toFixed(4)}; adapter saved to ${dir}`,
  );
}

/** LoRA's settings from the flags; PEFT's default modules for the model where none are given. */
function loraSettings(f: FlagValues, session: Session): LoraSettings {
  const t = f.lora_target_modules as string[] | null;
  const defaults = session.config.defaultLoraTargets;
  if (t === null && defaults === null)
    throw new UsageError(
      `PEFT has no default LoRA target modules for model_type ${session.config.modelType} ` +
        '(it raises "Please specify `target_modules` in `peft_config`"): pass --lora_target_modules, ' +
        `all-linear or some of ${session.config.linearModules.join(', ')}`,
    );
  // one value is one string, as TRL's ModelConfig makes it: a regular expression for PEFT (or all-linear)
  const target_modules = t === null ? defaults! : t.length === 1 ? t[0] : t;
  return {
    r: f.lora_r as number,
    lora_alpha: f.lora_alpha as number,
    lora_dropout: f.lora_dropout as number,
    target_modules,
    use_rslora: f.use_rslora as boolean,
  };
}

/** --lr_scheduler_kwargs: a JSON object, as HfArgumentParser reads a dict flag (checkSchedule checks its values). */
function schedulerKwargs(json: string | null): SchedulerKwargs | undefined {
  if (json === null) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(json);
  } catch {
    throw new UsageError(`--lr_scheduler_kwargs ${json} is not JSON: write it as '{"num_cycles": 2}'`);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v))
    throw new UsageError(`--lr_scheduler_kwargs ${json} is not a JSON object: write it as '{"num_cycles": 2}'`);
  return v as SchedulerKwargs;
}

function trainSettings(f: FlagValues): RunSettings {
  return {
    learning_rate: f.learning_rate as number,
    adam_beta1: f.adam_beta1 as number,
    adam_beta2: f.adam_beta2 as number,
    adam_epsilon: f.adam_epsilon as number,
    weight_decay: f.weight_decay as number,
    max_grad_norm: f.max_grad_norm as number,
    lr_scheduler_type: f.lr_scheduler_type as SchedulerType,
    lr_scheduler_kwargs: schedulerKwargs(f.lr_scheduler_kwargs as string | null),
    warmup_steps: f.warmup_steps as number,
    warmup_ratio: f.warmup_ratio as number,
    logging_first_step: f.logging_first_step as boolean,
    logging_strategy: f.logging_strategy as 'steps' | 'epoch' | 'no',
    max_steps: f.max_steps as number,
    num_train_epochs: f.num_train_epochs as number,
    per_device_train_batch_size: f.per_device_train_batch_size as number,
    gradient_accumulation_steps: f.gradient_accumulation_steps as number,
    seed: f.seed as number,
    shuffle: f.shuffle as boolean,
    logging_steps: f.logging_steps as number,
    gradient_checkpointing: f.gradient_checkpointing as boolean,
    eval_strategy: f.eval_strategy === 'epoch' ? 'epoch' : 'steps',
    eval_steps: f.eval_steps as number | null,
    per_device_eval_batch_size: f.per_device_eval_batch_size as number,
    save_strategy: f.save_strategy as SaveStrategy,
    save_steps: f.save_steps as number,
    save_total_limit: f.save_total_limit as number | null,
  };
}

/** The model card's settings: every train flag but the paths and switches of this tool's own. */
function cardSettings(f: FlagValues, session: Session): Record<string, FlagValues[string]> {
  const own = new Set(['model_name_or_path', 'dataset_name', 'output_dir', 'json', 'resume_from_checkpoint']);
  const lora = session.lora!;
  const targets = [...new Set(lora.modules.map((m) => m.path.slice(m.path.lastIndexOf('.') + 1)))];
  const given = f.lora_target_modules as string[] | null;
  const regex = given?.length === 1 && given[0] !== 'all-linear' ? given[0] : null; // PEFT keeps a regex as given
  return {
    ...Object.fromEntries(Object.entries(f).filter(([k]) => !own.has(k) && k in TRAIN)),
    lora_target_modules: regex ?? targets,
  };
}

async function evaluate(f: FlagValues, r: Reporter): Promise<void> {
  const { session, tokenizer } = await openModel(f, r);
  // the test split where the data set has one, else its training files
  const splits = await dataSplitsFor(f.dataset_name as string, f.dataset_config as string | null, r);
  const split = splits[f.dataset_test_split as SplitName]
    ? (f.dataset_test_split as SplitName)
    : (f.dataset_train_split as SplitName);
  const blocks = (await loadData(f, tokenizer, session.config.vocab, r, { split })).train.blocks;
  await useAdapter(session, f, r);
  const batch = f.per_device_eval_batch_size as number;
  const total = Math.ceil(blocks.length / batch);
  const e = await session.evaluate(blocks, batch, (done) => r.progress('evaluating', done, total, ''));
  const { eval_loss, tokens } = e;
  r.endProgress();
  r.result(
    {
      eval_loss,
      eval_entropy: e.entropy,
      eval_mean_token_accuracy: e.mean_token_accuracy,
      tokens,
      perplexity: Math.exp(eval_loss),
    },
    `eval_loss ${eval_loss.toFixed(4)} (perplexity ${Math.exp(eval_loss).toFixed(2)}) over ${tokens} tokens`,
  );
}

async function generateText(f: FlagValues, r: Reporter): Promise<void> {
  if (f.enable_thinking !== null && !f.chat) {
    throw new UsageError("--enable_thinking switches the chat template's thinking: it needs --chat true");
  }
  const { session, tokenizer, generation } = await openModel(f, r, { generation: true });
  await useAdapter(session, f, r);
  // what the flags leave unset (null) comes from the model: generation_config.json, then config.json
  const settings = generationSettings(
    {
      do_sample: f.do_sample as boolean | null,
      temperature: f.temperature as number | null,
      top_k: f.top_k as number | null,
      top_p: f.top_p as number | null,
      repetition_penalty: f.repetition_penalty as number | null,
      max_new_tokens: f.max_new_tokens as number | null,
      max_length: f.max_length as number | null,
      num_return_sequences: f.num_return_sequences as number,
      seed: f.seed as number,
    },
    generation,
    session.config,
  );
  const fromFile = fieldsSet(generation);
  const defaults = fromFile.length ? ` (the model's generation_config.json sets ${fromFile.join(', ')})` : '';
  r.info(`generation: ${describeGeneration(settings)}${defaults}`);
  r.event({ generation: settings, from_generation_config: fromFile });
  // with --chat, the text the model continues is the template's rendering of the message
  const chat = f.chat ? await chatPrompt(tokenizer, f.prompt as string, templateKwargs(f)) : null;
  const shownPrompt = chat ? chat.text : (f.prompt as string);
  const prompt = chat ? chat.ids : await tokenizer.encode(f.prompt as string);
  // each sequence's text streamed as its tokens come: what is new since the last
  const shown: string[] = [];
  const { texts, ids: sequences } = await streamGeneration(session, tokenizer, prompt, settings, (n, text) => {
    if (shown[n] === undefined) {
      shown[n] = '';
      const head = settings.num_return_sequences > 1 ? `--- sequence ${n + 1} ---\n` : '';
      r.stream(`${n ? '\n' : ''}${head}${shownPrompt}`);
    }
    if (text.startsWith(shown[n])) r.stream(text.slice(shown[n].length));
    shown[n] = text;
  });
  r.stream('\n');
  r.result({ prompt: shownPrompt, texts, tokens: sequences.map((s) => s.length) }, null);
}

async function preview(f: FlagValues, r: Reporter): Promise<void> {
  const dir = await modelFolder(f.model_name_or_path as string, f.model_revision as string, r);
  const { vocab } = parseConfigText(await readFile(join(dir, 'config.json'), 'utf8'));
  const tokenizer = await localTokenizer(dir, { vocabSize: vocab, chatTemplatePath: f.chat_template_path as string });
  const data = await loadData(f, tokenizer, vocab, r);
  const shown = data.train.blocks.slice(0, f.num_blocks as number);
  const texts = await Promise.all(shown.map((b) => renderBlock(b, tokenizer, isTty())));
  shown.forEach((b, i) => {
    const lengths = sequenceLengths(b);
    r.event({
      block: i,
      input_ids: b.input_ids,
      labels: b.labels,
      position_ids: b.position_ids,
      sequence_lengths: lengths,
    });
    const head = `--- block ${i}: ${b.input_ids.length} tokens, sequences of ${lengths.join(', ')} ---`;
    if (!r.json) r.streamStyled(`${head}\n${texts[i]}\n`);
  });
  r.result(
    { format: data.kind, ...data.stats },
    `${data.stats.blocks} blocks in all; ${shown.length} shown. ${isTty() ? 'Dim' : 'Text in «»'}: no loss ` +
      `taken; ┃ : a new sequence (attention does not cross it).`,
  );
}

const isTty = () => !!process.stdout.isTTY;

/** A block's text with special tokens as they are, tokens without a target dimmed (or in «»), sequences apart. */
async function renderBlock(b: Block, tokenizer: TokenizerClient, tty: boolean): Promise<string> {
  const parts = await Promise.all(
    blockSegments(b).map(async (g) => {
      // the data's text, escaped: a file's control characters never reach the terminal
      const text = escapeControl(await tokenizer.decode(g.ids, { skip_special_tokens: false }));
      return (g.newSequence ? ' ┃ ' : '') + (g.masked ? (tty ? `\x1b[2m${text}\x1b[22m` : `«${text}»`) : text);
    }),
  );
  return parts.join('');
}

async function useAdapter(session: Session, f: FlagValues, r: Reporter): Promise<void> {
  if (!f.adapter) {
    r.info('adapter: none (the base model)');
    return;
  }
  const files = await localAdapterFiles(f.adapter as string, (c) => session.adapterWeightsBound(c));
  const config = session.loadAdapter(files);
  r.info(
    `adapter: ${f.adapter} (r ${config.r}, alpha ${config.lora_alpha}, ${describeTargets(config.target_modules)})`,
  );
}

const round = (x: number, digits: number) => Math.round(x * 10 ** digits) / 10 ** digits;
