// `finetune`: the Node command line. The same session, data pipeline and WGSL kernels as the
// page, on Dawn (src/node/dawn.ts). Commands:
//   finetune train     QLoRA fine-tuning (flags as trl sft), the adapter written in PEFT's files
//   finetune eval      the token-weighted mean loss of a model, with or without an adapter
//   finetune generate  text from a prompt, with or without an adapter
// With --json, stdout carries one JSON object per line and nothing else.
import { openAsBlob } from 'node:fs';
import { mkdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { PreTrainedTokenizer } from '@huggingface/transformers';
import { readRows, SkipCounts, type Row } from '../data/read';
import { toBlocks, tokenizeRows, type Block } from '../data/sft';
import { Session, type TrainSummary } from '../engine/session';
import type { SchedulerType } from '../train/schedule';
import { localCheckpoint } from '../node/local-files';
import { localAdapter, localDataFiles, localTokenizer, type DataFile } from '../node/local-data';
import { cacheDataset, cacheModel, hubOptionsFromEnv } from '../node/hub-cache';
import { isRepoId, type RepoFile } from '../hub/hub';
import { nodeGpu } from '../node/dawn';
import { helpText, parseFlags, UsageError, type FlagSpecs, type FlagValues } from './args';
import { EVAL, GENERATE, TRAIN } from './commands';
import { Reporter } from './report';

const COMMANDS: Record<string, { summary: string; flags: FlagSpecs; run: (f: FlagValues, r: Reporter) => Promise<void> }> = {
  train: { summary: 'fine-tune a LoRA adapter on a data set (QLoRA)', flags: TRAIN, run: train },
  eval: { summary: 'the mean loss per token of a model on a data set', flags: EVAL, run: evaluate },
  generate: { summary: 'continue a prompt', flags: GENERATE, run: generateText },
};

const USAGE = `usage: finetune <command> [--flag value ...]

commands:
${Object.entries(COMMANDS).map(([k, c]) => `  ${k.padEnd(9)} ${c.summary}`).join('\n')}

\`finetune <command> --help\` lists a command's flags.
`;

/** Runs a command; resolves to the process's exit code (0 ok, 1 failed, 2 bad usage). */
export async function main(argv: string[], out: NodeJS.WritableStream = process.stdout, err: NodeJS.WritableStream = process.stderr): Promise<number> {
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
    flags = parseFlags(rest, command.flags, name);
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

async function openModel(f: FlagValues, r: Reporter): Promise<{ session: Session; tokenizer: PreTrainedTokenizer }> {
  const dir = await modelFolder(f.model_name_or_path as string, f.model_revision as string, r);
  const tokenizer = await localTokenizer(dir);
  const gpu = await nodeGpu();
  r.info(`device: ${gpu.info.description || gpu.info.vendor || 'WebGPU adapter'}`);
  let tensors = 0;
  const session = await Session.load(gpu, localCheckpoint(dir), {
    name: f.model_name_or_path as string, load_in_4bit: f.load_in_4bit as boolean, nested: f.use_bnb_nested_quant as boolean,
  }, () => r.progress('loading', ++tensors, null, `${tensors} tensors`));
  r.endProgress();
  const c = session.config;
  r.info(`model: ${c.modelType}, ${c.layers} layers, hidden ${c.hidden}, vocab ${c.vocab}; linear weights ${f.load_in_4bit ? 'NF4' : '16-bit'}`);
  return { session, tokenizer };
}

/** A local checkpoint folder, or a Hub id downloaded into the cache (HF_ENDPOINT, HF_TOKEN). */
async function modelFolder(name: string, revision: string, r: Reporter): Promise<string> {
  if (await stat(name).then((s) => s.isDirectory(), () => false)) return name;
  if (!isRepoId(name)) throw new UsageError(`--model_name_or_path ${name} is neither a local folder nor a Hub id (owner/name)`);
  const { dir, files } = await cacheModel(name, { ...hubOptionsFromEnv(), revision, onFile: download(r) });
  r.endProgress();
  r.info(`model files: ${files.length} from the Hub, cached in ${dir}`);
  return dir;
}

async function dataFilesFor(name: string, r: Reporter): Promise<DataFile[]> {
  if (await stat(name).then(() => true, () => false)) return localDataFiles(name);
  if (!isRepoId(name)) throw new UsageError(`--dataset_name ${name} is neither a local file or folder nor a Hub id (owner/name)`);
  const { dir, files } = await cacheDataset(name, { ...hubOptionsFromEnv(), onFile: download(r) });
  r.endProgress();
  return Promise.all(files.map(async (x) => ({ name: x.path, blob: await openAsBlob(join(dir, x.path)) })));
}

function download(r: Reporter) {
  const t0 = performance.now();
  return (file: RepoFile, done: number, total: number) => {
    const rate = done / Math.max(1e-3, (performance.now() - t0) / 1000);
    r.progress('downloading', Math.round(done / 1e6), Math.max(1, Math.round(total / 1e6)), `MB ${file.path} ${(rate / 1e6).toFixed(1)} MB/s`);
  };
}

async function loadBlocks(f: FlagValues, tokenizer: PreTrainedTokenizer, vocab: number, r: Reporter): Promise<Block[]> {
  const files = await dataFilesFor(f.dataset_name as string, r);
  const skipped = new SkipCounts();
  async function* rows(): AsyncGenerator<Row> {
    for (const file of files) yield* readRows(file.name, file.blob, skipped);
  }
  const settings = { dataset_text_field: f.dataset_text_field as string, max_length: f.max_length as number, packing: f.packing as boolean };
  const examples = await tokenizeRows(rows(), tokenizer, settings, skipped, vocab);
  const blocks = toBlocks(examples, settings);
  const tokens = examples.reduce((n, e) => n + e.input_ids.length, 0);
  r.info(`data: ${files.map((x) => x.name).join(', ')}: ${examples.length} examples, ${tokens} tokens → ${blocks.length} ${settings.packing ? `packed blocks of ${settings.max_length}` : 'sequences'}`);
  if (skipped.total) r.warn(`skipped ${skipped.total} rows: ${skipped}`);
  r.event({ dataset: files.map((x) => x.name), examples: examples.length, tokens, blocks: blocks.length, skipped: skipped.total });
  return blocks;
}

// ---- commands -----------------------------------------------------------------------------

async function train(f: FlagValues, r: Reporter): Promise<void> {
  if (!f.use_peft) throw new UsageError('--use_peft false asks for full fine-tuning; this tool trains LoRA adapters only');
  if (!f.gradient_checkpointing) r.warn('--gradient_checkpointing false is ignored: layers are always recomputed in backward');
  const { session, tokenizer } = await openModel(f, r);
  const blocks = await loadBlocks(f, tokenizer, session.config.vocab, r);
  if (f.init_adapter) {
    const config = session.loadAdapter(await localAdapter(f.init_adapter as string));
    r.info(`adapter: ${f.init_adapter} (r ${config.r}, alpha ${config.lora_alpha}, ${config.target_modules.join(' ')})`);
  } else {
    const t = f.lora_target_modules as string[] | null;
    const target_modules = t === null ? session.config.defaultLoraTargets : t.length === 1 && t[0] === 'all-linear' ? 'all-linear' : t;
    session.attachLora({ r: f.lora_r as number, lora_alpha: f.lora_alpha as number, lora_dropout: f.lora_dropout as number, target_modules, use_rslora: f.use_rslora as boolean }, f.seed as number);
  }
  const params = session.lora!.modules.reduce((n, m) => n + m.lora!.A.numel + m.lora!.B.numel, 0);
  r.info(`LoRA: ${session.lora!.modules.length} modules, ${params.toLocaleString('en')} trainable parameters`);

  const settings = {
    learning_rate: f.learning_rate as number, adam_beta1: f.adam_beta1 as number, adam_beta2: f.adam_beta2 as number,
    adam_epsilon: f.adam_epsilon as number, weight_decay: f.weight_decay as number, max_grad_norm: f.max_grad_norm as number,
    lr_scheduler_type: f.lr_scheduler_type as SchedulerType, warmup_steps: f.warmup_steps as number, max_steps: f.max_steps as number,
    num_train_epochs: f.num_train_epochs as number, per_device_train_batch_size: f.per_device_train_batch_size as number,
    gradient_accumulation_steps: f.gradient_accumulation_steps as number, seed: f.seed as number, shuffle: f.shuffle as boolean,
    logging_steps: f.logging_steps as number,
  };
  // Ctrl-C stops after the current step and still saves the adapter; a second one quits.
  const abort = new AbortController();
  const onSigint = () => {
    if (abort.signal.aborted) process.exit(130);
    r.warn('stopping after this step; the adapter trained so far will be saved (Ctrl-C again to quit now)');
    abort.abort();
  };
  process.on('SIGINT', onSigint);
  const history: object[] = [];
  let summary: TrainSummary;
  try {
    const run = session.train(blocks, settings, abort.signal);
    const { maxSteps } = Session.plannedSteps(blocks.length, settings);
    r.progress('training', 0, maxSteps, '');
    for (;;) {
      const next = await run.next();
      if (next.done) {
        summary = next.value;
        break;
      }
      const { max_steps, ...log } = next.value;
      history.push(log);
      r.stepLog(log, max_steps);
    }
  } finally {
    process.off('SIGINT', onSigint);
    r.endProgress();
  }
  const dir = f.output_dir as string;
  await mkdir(dir, { recursive: true });
  const files = await session.exportAdapter();
  for (const [name, data] of Object.entries(files)) await writeFile(join(dir, name), data);
  const state = { global_step: summary.global_step, max_steps: Session.plannedSteps(blocks.length, settings).maxSteps, log_history: history, train_loss: summary.train_loss };
  await writeFile(join(dir, 'trainer_state.json'), JSON.stringify(state, null, 2) + '\n');
  r.result({ train_loss: summary.train_loss, global_step: summary.global_step, tokens: summary.tokens, train_runtime: round(summary.train_runtime, 3), output_dir: dir },
    `trained ${summary.global_step} steps in ${summary.train_runtime.toFixed(1)} s: train_loss ${summary.train_loss.toFixed(4)}; adapter saved to ${dir}`);
}

async function evaluate(f: FlagValues, r: Reporter): Promise<void> {
  const { session, tokenizer } = await openModel(f, r);
  const blocks = await loadBlocks(f, tokenizer, session.config.vocab, r);
  await useAdapter(session, f, r);
  const batch = f.per_device_eval_batch_size as number;
  const total = Math.ceil(blocks.length / batch);
  const { eval_loss, tokens } = await session.evaluate(blocks, batch, (done) => r.progress('evaluating', done, total, ''));
  r.endProgress();
  r.result({ eval_loss, tokens, perplexity: Math.exp(eval_loss) }, `eval_loss ${eval_loss.toFixed(4)} (perplexity ${Math.exp(eval_loss).toFixed(2)}) over ${tokens} tokens`);
}

async function generateText(f: FlagValues, r: Reporter): Promise<void> {
  const { session, tokenizer } = await openModel(f, r);
  await useAdapter(session, f, r);
  const prompt = tokenizer.encode(f.prompt as string);
  const settings = {
    do_sample: f.do_sample as boolean, temperature: f.temperature as number, top_k: f.top_k as number, top_p: f.top_p as number,
    repetition_penalty: f.repetition_penalty as number, num_return_sequences: f.num_return_sequences as number, seed: f.seed as number,
    ...(f.max_new_tokens !== null ? { max_new_tokens: f.max_new_tokens as number } : { max_length: f.max_length as number }),
  };
  // stream each sequence's text as its tokens come (decoding the whole so far: tokens may
  // join into one character only together)
  const shown: string[] = [];
  const ids: number[][] = [];
  const sequences = await session.generate(prompt, settings, (n, id) => {
    if (!ids[n]) {
      ids[n] = [];
      shown[n] = '';
      r.stream(`${n ? '\n' : ''}${settings.num_return_sequences > 1 ? `--- sequence ${n + 1} ---\n` : ''}${f.prompt}`);
    }
    ids[n].push(id);
    const text = tokenizer.decode(ids[n], { skip_special_tokens: true });
    if (text.startsWith(shown[n])) r.stream(text.slice(shown[n].length));
    shown[n] = text;
  });
  r.stream('\n');
  const texts = sequences.map((s) => tokenizer.decode(s, { skip_special_tokens: true }));
  r.result({ prompt: f.prompt, texts, tokens: sequences.map((s) => s.length) }, null);
}

async function useAdapter(session: Session, f: FlagValues, r: Reporter): Promise<void> {
  if (!f.adapter) {
    r.info('adapter: none (the base model)');
    return;
  }
  const config = session.loadAdapter(await localAdapter(f.adapter as string));
  r.info(`adapter: ${f.adapter} (r ${config.r}, alpha ${config.lora_alpha}, ${config.target_modules.join(' ')})`);
}

const round = (x: number, digits: number) => Math.round(x * 10 ** digits) / 10 ** digits;
