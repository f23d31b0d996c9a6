// What runs inside the tokenizer's own worker (./tokenizer-client.ts starts it and talks to it).
// tokenizer.json and tokenizer_config.json come from strangers: a pre-tokenizer regex may
// backtrack for ever, a chat template may loop a billion times or print gigabytes. Here they
// can only stall this worker, which the client stops after its time budget; the page's engine
// and the command line's main thread stay free.
//
// The tokenizer is built from the files' text alone (transformers.js' PreTrainedTokenizer
// from the JSON objects), never through from_pretrained: that path asks the Hub whether
// tokenizer_config.json exists, a request that can go to the network and hang.
import * as transformers from '@huggingface/transformers';
import { sha256 } from 'hash-wasm';
import { conversationChars, type ChatTemplateKwargs, type Message } from '../data/sft';
import { checkTemplateKwargs } from './template-kwargs';
import { GENERATION_BLOCK, knownTemplate, NOT_TRAINABLE } from './training-templates';

/**
 * The files a tokenizer is made of, as text (tokenizer_config.json may be missing). Newer
 * checkpoints keep the chat template in a file of its own, chat_template.jinja, which
 * transformers prefers to tokenizer_config.json's "chat_template": so does this worker.
 */
export interface TokenizerFiles {
  'tokenizer.json': string;
  'tokenizer_config.json'?: string;
  'chat_template.jinja'?: string;
}

/** The file the chat template comes from: errors in rendering name it. */
export type TemplateFile = 'chat_template.jinja' | 'tokenizer_config.json';

/** What the client needs to know of the tokenizer without asking again. */
export interface TokenizerInfo {
  eos_token: string | null;
  eos_token_id: number | null;
  pad_token: string | null;
  pad_token_id: number | null;
  bos_token: string | null;
  /** The largest token id the tokenizer can give. */
  maxId: number;
  hasChatTemplate: boolean;
  /** The chat template reads `enable_thinking` (Qwen3's and other reasoning templates switch thinking with it). */
  thinking: boolean;
  /**
   * The family whose TRL training template assistant_only_loss renders with, in place of the
   * model's own (./training-templates.ts); null where the template is used as it is, or cannot be.
   */
  trainingTemplate: string | null;
}

export type Op =
  | { op: 'encode'; text: string; add_special_tokens: boolean }
  | {
      op: 'render';
      messages: Message[];
      add_generation_prompt: boolean;
      maxChars: number;
      /** Variables the template reads besides the conversation (`enable_thinking`), as transformers passes them. */
      kwargs?: ChatTemplateKwargs;
      /** The row's tools (function schemas), as apply_chat_template(tools=…) takes them. */
      tools?: unknown[];
      /**
       * Rendered with the template assistant_only_loss trains with: the model's own where it has
       * {% generation %} blocks, else TRL's training version of it, else refused (./training-templates.ts).
       */
      training?: boolean;
      /**
       * Also where the template's {% generation %} blocks put text: [start, end) character spans,
       * as transformers' return_assistant_tokens_mask reads them (null: the template has none).
       */
      spans?: boolean;
    }
  | { op: 'decode'; ids: number[]; skip_special_tokens: boolean };

export type Request = { id: number; load: TokenizerFiles; vocabSize?: number } | { id: number; ops: Op[] };

/** An op's answer, or why it failed: `file` is the file to blame, `message` says what went wrong. */
export type OpResult = { ok: number[] | string | Rendered } | { error: string; file: string };

export type Reply =
  | { id: number; info: TokenizerInfo }
  | { id: number; results: OpResult[] }
  | { id: number; error: string; file: string };

/** An input file that is not what it must be. */
class FileProblem extends Error {
  constructor(
    readonly file: string,
    message: string,
  ) {
    super(message);
  }
}

/** The longest a chat template's range() may be: no chat renders more turns, and a billion would fill the memory. */
export const MAX_TEMPLATE_RANGE = 100_000;
/**
 * The most loop steps and range() numbers one render may take, all loops together: the bound on
 * range() is per call, and two nested loops over range(100000) would otherwise run 10^10 times.
 */
export const MAX_TEMPLATE_STEPS = 1_000_000;

const TOKENIZER_MODELS = ['BPE', 'WordPiece', 'Unigram', 'WordLevel'];
const TOKEN_FIELDS = ['bos_token', 'eos_token', 'unk_token', 'sep_token', 'pad_token', 'cls_token', 'mask_token'];

/**
 * How far past config.json's vocab_size added tokens may go. Gemma 3's text checkpoints
 * (gemma-3-270m, gemma-3-1b: vocab_size 262144) ship the multimodal models' tokenizer, whose
 * <image_soft_token> is id 262144, a token their embedding has no row for; transformers loads
 * them all the same. A tokenizer further off than this is another model's.
 */
const MAX_IDS_PAST_VOCAB = 1024;

let tokenizer: transformers.PreTrainedTokenizer | null = null;
let maxId = 0;
/** Ids from here to maxId are added tokens the model's embedding has no row for (Gemma 3's <image_soft_token>). */
let firstUnembedded = Infinity;
let templateFile: TemplateFile = 'tokenizer_config.json';

/**
 * The model's own template (a string without blocks), and the training version assistant_only_loss
 * renders with instead (TRL's swap): family null where TRL knows none, `problem` where it could not be told.
 */
let training: { original: string; source: string; family: string | null; problem?: string } | null = null;

/**
 * Answers the client's requests on `port` (the worker's global scope, or Node's parentPort), one
 * after the other: loading is asynchronous (a digest of the template), and no request overtakes it.
 */
export function serveTokenizer(port: { postMessage(m: Reply): void; onMessage(handle: (r: Request) => void): void }) {
  let queue = Promise.resolve();
  port.onMessage((r) => {
    // a reply that cannot be posted leaves that request to the client's time limit, not the queue stuck
    queue = queue.then(async () => port.postMessage(await answer(r))).catch(() => {});
  });
}

async function answer(r: Request): Promise<Reply> {
  try {
    if ('load' in r) return { id: r.id, info: await load(r.load, r.vocabSize) };
    return { id: r.id, results: r.ops.map(run) };
  } catch (e) {
    return { id: r.id, ...blame(e, 'tokenizer.json') };
  }
}

function blame(e: unknown, file: string): { error: string; file: string } {
  if (e instanceof FileProblem) return { error: e.message, file: e.file };
  const m = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
  return { error: `failed (${m.slice(0, 500)})`, file };
}

async function load(files: TokenizerFiles, vocabSize?: number): Promise<TokenizerInfo> {
  tokenizer = null;
  training = null;
  const json = parseObject('tokenizer.json', files['tokenizer.json']);
  const configText = files['tokenizer_config.json'];
  const config = configText === undefined ? {} : parseObject('tokenizer_config.json', configText);
  checkTokenizerJson(json);
  checkTokenizerConfig(config);
  const jinja = files['chat_template.jinja'];
  if (jinja !== undefined) {
    if (typeof jinja !== 'string') throw new FileProblem('chat_template.jinja', 'is not text');
    config.chat_template = jinja;
  }
  templateFile = jinja !== undefined ? 'chat_template.jinja' : 'tokenizer_config.json';
  // before anything is built: transformers.js lays the vocabulary out as an array indexed by id
  const ids = largestIds(json);
  maxId = ids.all;
  firstUnembedded = vocabSize ?? Infinity;
  if (vocabSize !== undefined && (ids.vocab >= vocabSize || maxId >= vocabSize + MAX_IDS_PAST_VOCAB)) {
    const why = `config.json's vocab_size is ${vocabSize}: the two files are not of the same model`;
    const what =
      ids.vocab >= vocabSize ? `its vocabulary has token ids up to ${ids.vocab}` : `has token ids up to ${maxId}`;
    throw new FileProblem('tokenizer.json', `${what}, but ${why}`);
  }
  // the class tokenizer_config.json names (LlamaTokenizerFast → LlamaTokenizer), as AutoTokenizer picks it
  const name = typeof config.tokenizer_class === 'string' ? config.tokenizer_class.replace(/Fast$/, '') : '';
  const named = (transformers as Record<string, unknown>)[name];
  const Class =
    typeof named === 'function' && named.prototype instanceof transformers.PreTrainedTokenizer
      ? (named as typeof transformers.PreTrainedTokenizer)
      : transformers.PreTrainedTokenizer;
  let tok: transformers.PreTrainedTokenizer;
  try {
    tok = new Class(json, config);
  } catch (e) {
    throw new FileProblem('tokenizer.json', `does not make a tokenizer (${(e as Error).message})`);
  }
  tokenizer = tok;
  // TRL knows a template by its exact text: one of a model's several named templates is not compared
  const own = tok.chat_template;
  if (typeof own === 'string' && !GENERATION_BLOCK.test(own)) {
    // a digest that cannot be taken costs assistant_only_loss alone, not the tokenizer
    const digest = await sha256(own).catch((e: Error) => e);
    const known = typeof digest === 'string' ? knownTemplate(digest) : null;
    training = { original: own, source: known ? known.training(own) : own, family: known?.family ?? null };
    if (digest instanceof Error) training.problem = `its SHA-256 could not be taken (${digest.message})`;
  }
  const token = (t: unknown) => (typeof t === 'string' ? t : null);
  const id = (t: unknown) => (Number.isInteger(t) ? (t as number) : null);
  return {
    eos_token: token(tok.eos_token),
    eos_token_id: id(tok.eos_token_id),
    pad_token: token(tok.pad_token),
    pad_token_id: id(tok.pad_token_id),
    bos_token: token(tok.bos_token),
    maxId,
    hasChatTemplate: !!tok.chat_template,
    thinking: readsThinking(tok),
    trainingTemplate: training?.family ?? null,
  };
}

/** Whether the template a conversation is rendered with mentions enable_thinking. */
function readsThinking(tok: transformers.PreTrainedTokenizer): boolean {
  try {
    const source = tok.chat_template ? tok.get_chat_template() : null;
    return typeof source === 'string' && /\benable_thinking\b/.test(source);
  } catch {
    return false; // several named templates and no default: rendering says so
  }
}

function parseObject(file: string, text: unknown): Record<string, unknown> {
  if (typeof text !== 'string') throw new FileProblem(file, 'is missing');
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new FileProblem(file, `is not JSON (${(e as Error).message})`);
  }
  if (!isObject(v)) throw new FileProblem(file, `must hold a JSON object, not ${describe(v)}`);
  return v as Record<string, unknown>;
}

const describe = (v: unknown) => {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  return typeof v === 'string' ? `a string "${v.slice(0, 40)}"` : `a ${typeof v}`;
};
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The parts every fast tokenizer has, with the types transformers.js reads them as. */
function checkTokenizerJson(j: Record<string, unknown>): void {
  const fail = (field: string, allowed: string, v: unknown) => {
    throw new FileProblem('tokenizer.json', `"${field}" must be ${allowed}, not ${describe(v)}`);
  };
  const m = j.model;
  if (!isObject(m)) fail('model', 'an object', m);
  const model = m as Record<string, unknown>;
  // older files name no type: transformers.js infers it from the vocabulary's shape, as we let it
  const untyped = model.type === undefined || model.type === null;
  if (!untyped && (typeof model.type !== 'string' || !TOKENIZER_MODELS.includes(model.type))) {
    fail('model.type', `one of ${TOKENIZER_MODELS.join(', ')} (or absent)`, model.type);
  }
  if (!isObject(model.vocab) && !Array.isArray(model.vocab)) fail('model.vocab', 'an object or a list', model.vocab);
  if (model.merges !== undefined && !Array.isArray(model.merges)) fail('model.merges', 'a list', model.merges);
  for (const part of ['normalizer', 'pre_tokenizer', 'post_processor', 'decoder']) {
    const v = j[part];
    if (v === null || v === undefined) continue;
    if (!isObject(v) || typeof v.type !== 'string') fail(part, 'null or an object with a "type"', v);
  }
  if (j.added_tokens !== undefined && j.added_tokens !== null) {
    if (!Array.isArray(j.added_tokens)) fail('added_tokens', 'a list', j.added_tokens);
    (j.added_tokens as unknown[]).forEach((t, i) => {
      if (!isObject(t) || !Number.isInteger(t.id) || (t.id as number) < 0 || typeof t.content !== 'string') {
        fail(`added_tokens[${i}]`, 'an object with an integer "id" ≥ 0 and a string "content"', t);
      }
    });
  }
}

/** No model's vocabulary comes near this many tokens (the largest are about 260,000). */
const MAX_VOCAB = 1 << 22;

/**
 * The largest token id of the vocabulary alone and with the added tokens, each checked to be an
 * integer in bounds.
 */
function largestIds(j: Record<string, unknown>): { vocab: number; all: number } {
  const vocab = (j.model as Record<string, unknown>).vocab;
  let max = -1;
  const see = (where: string, id: unknown) => {
    if (!Number.isInteger(id) || (id as number) < 0 || (id as number) >= MAX_VOCAB) {
      const shown = JSON.stringify(id)?.slice(0, 40);
      throw new FileProblem('tokenizer.json', `${where} has the id ${shown}: ids are integers, 0 to ${MAX_VOCAB - 1}`);
    }
    max = Math.max(max, id as number);
  };
  // a Unigram vocabulary is a list of [piece, score], its ids the positions; the others map token → id
  if (Array.isArray(vocab)) max = vocab.length - 1;
  else {
    for (const [token, id] of Object.entries(vocab as object)) {
      see(`"model.vocab" entry ${JSON.stringify(token.slice(0, 40))}`, id);
    }
  }
  if (max < 0) throw new FileProblem('tokenizer.json', 'its vocabulary ("model.vocab") is empty');
  if (max >= MAX_VOCAB) {
    throw new FileProblem('tokenizer.json', `its vocabulary has ${max + 1} tokens, more than any model's ${MAX_VOCAB}`);
  }
  const inVocab = max;
  for (const [i, t] of ((j.added_tokens ?? []) as { id: unknown }[]).entries()) see(`added_tokens[${i}]`, t.id);
  return { vocab: inVocab, all: max };
}

function checkTokenizerConfig(c: Record<string, unknown>): void {
  const fail = (field: string, allowed: string, v: unknown) => {
    throw new FileProblem('tokenizer_config.json', `"${field}" must be ${allowed}, not ${describe(v)}`);
  };
  for (const f of TOKEN_FIELDS) {
    const v = c[f];
    if (!v) continue;
    const added = isObject(v) && v.__type === 'AddedToken' && typeof v.content === 'string';
    if (typeof v !== 'string' && !added) fail(f, 'a string or an AddedToken object', v);
  }
  const named = c.tokenizer_class;
  if (named !== undefined && named !== null && typeof named !== 'string') fail('tokenizer_class', 'a string', named);
  const t = c.chat_template;
  if (t === undefined || t === null || typeof t === 'string') return;
  const isNamed = (x: unknown) => isObject(x) && typeof x.name === 'string' && typeof x.template === 'string';
  if (!Array.isArray(t) || !t.every(isNamed)) {
    fail('chat_template', 'a string, or a list of {name, template} strings', t);
  }
}

function run(op: Op): OpResult {
  if (!tokenizer) return { error: 'no tokenizer is loaded', file: 'tokenizer.json' };
  try {
    switch (op.op) {
      case 'encode':
        return { ok: checkIds(tokenizer.encode(op.text, { add_special_tokens: op.add_special_tokens })) };
      case 'decode': {
        // transformers.js refuses to decode nothing; nothing is ''
        return { ok: op.ids.length ? tokenizer.decode(op.ids, { skip_special_tokens: op.skip_special_tokens }) : '' };
      }
      case 'render': {
        const r = render(tokenizer, op);
        return { ok: op.spans ? r : r.text };
      }
    }
  } catch (e) {
    return blame(e, op.op === 'render' ? templateFile : 'tokenizer.json');
  }
}

/** Token ids are integers the vocabulary holds (a tokenizer.json whose parts disagree may give others). */
function checkIds(ids: unknown): number[] {
  if (!Array.isArray(ids) || !ids.every((x) => Number.isInteger(x) && x >= 0 && x <= maxId)) {
    throw new FileProblem('tokenizer.json', `gives token ids outside its vocabulary (0 to ${maxId}): its parts differ`);
  }
  const past = ids.find((x) => x >= firstUnembedded);
  if (past !== undefined) {
    const token = JSON.stringify(tokenizer?.decode([past], { skip_special_tokens: false }) ?? '').slice(0, 60);
    throw new FileProblem(
      'tokenizer.json',
      `turns ${token} in the text into the token id ${past}, past ` +
        `config.json's vocab_size ${firstUnembedded}: the model has no embedding for it (an image token of a ` +
        'multimodal sibling?); take it out of the text',
    );
  }
  return ids;
}

/** A problem of the chat template, named by the file it came from. */
function templateProblem(why: string): FileProblem {
  return new FileProblem(templateFile, templateFile === 'chat_template.jinja' ? why : `"chat_template" ${why}`);
}

/** A rendered conversation, and where its {% generation %} blocks are (null: the template has none). */
export interface Rendered {
  text: string;
  spans: [number, number][] | null;
}

// {% generation %} … {% endgeneration %}: @huggingface/jinja renders them as nothing. To find
// where they are, each becomes an expression printing a private-use character (whitespace
// control kept), found and removed after the render.
// trim_blocks and lstrip_blocks, which chat templates render with, act on block tags: done here
// for these tags, whose replacements are expressions (a line's leading blanks, the newline after)
const GENERATION_TAG = /(^[ \t]*)?{%(-?)\s*(end)?generation\s*(-?)%}(\n)?/gm;
const OPEN = '\uE000',
  CLOSE = '\uE001';

function render(tok: transformers.PreTrainedTokenizer, op: Extract<Op, { op: 'render' }>): Rendered {
  if (!tok.chat_template) {
    const what = 'use a chat model\'s tokenizer, or give a "text" column';
    const where = templateFile === 'chat_template.jinja' ? 'is empty: it has no template' : 'has no "chat_template"';
    throw new FileProblem(templateFile, `${where} to render conversations with: ${what}`);
  }
  const kwargs = op.kwargs ?? {};
  checkTemplateKwargs(kwargs); // the client checked them: this is the last word, where they are used
  // the template apply_chat_template would pick (a model's `tool_use` one where tools are given)
  let source = tok.get_chat_template({ tools: op.tools });
  if (op.training && !GENERATION_BLOCK.test(source)) {
    if (source === training?.original && training.problem) throw templateProblem(training.problem);
    if (source !== training?.original || !training.family) throw templateProblem(NOT_TRAINABLE);
    source = training.source;
  }
  const marked =
    op.spans && GENERATION_BLOCK.test(source)
      ? source.replace(GENERATION_TAG, (_, _blanks, l, end, r) => `{{${l} "${end ? CLOSE : OPEN}" ${r}}}`)
      : null;
  if (marked && JSON.stringify([op.messages, op.tools, kwargs]).match(/[\uE000\uE001]/))
    throw templateProblem('cannot mark the assistant turns: the conversation holds the characters U+E000 or U+E001');
  let text: unknown;
  try {
    const template = marked ?? source;
    compileBounded(tok, template);
    steps = 0; // the budget of MAX_TEMPLATE_STEPS is per render
    // extra keys reach the template as variables (the caller's first: the worker's own cannot be replaced)
    const o = {
      ...kwargs,
      tokenize: false,
      add_generation_prompt: op.add_generation_prompt,
      tools: op.tools ?? null,
      chat_template: template,
      [BOUNDED_RANGE]: boundedRange,
      [LOOP_STEP]: loopStep,
    };
    text = tok.apply_chat_template(op.messages, o as { tokenize: false });
  } catch (e) {
    const m = e instanceof Error ? e.message : String(e);
    const recursion = e instanceof RangeError && /call stack/.test(m);
    throw templateProblem(recursion ? 'recurses without end' : `failed (${m.slice(0, 300)})`);
  }
  if (typeof text !== 'string') throw templateProblem('did not render text');
  if (text.length > op.maxChars) {
    const what = `renders ${text.length} characters for a conversation of ${conversationChars(op.messages, op.tools)}`;
    throw templateProblem(`${what}, more than the ${op.maxChars} allowed`);
  }
  return marked ? generationSpans(text) : { text, spans: null };
}

/** The text without its markers, and the [start, end) spans they enclosed (an open block runs to the end). */
function generationSpans(marked: string): Rendered {
  const spans: [number, number][] = [];
  let text = '',
    open = -1;
  for (const ch of marked) {
    if (ch === OPEN) open = open < 0 ? text.length : open;
    else if (ch === CLOSE) {
      if (open >= 0) spans.push([open, text.length]);
      open = -1;
    } else text += ch;
  }
  if (open >= 0) spans.push([open, text.length]);
  return { text, spans };
}

const BOUNDED_RANGE = '__bounded_range';
const LOOP_STEP = '__loop_step';

interface JinjaTemplate {
  parsed: unknown;
}

/**
 * Compiles the chat template with its calls of range() turned into calls of a bounded range
 * (boundedRange), and leaves it where transformers.js looks for it, in the tokenizer's cache of
 * compiled templates. A for loop over range(1000000000) then ends at once in a clear error, not
 * when the memory runs out (in the page a worker has no heap limit of its own). Jinja's range is
 * a global that a render's variables cannot replace, and jinja is bundled inside transformers.js,
 * so it is the template's syntax tree that is changed: each call's callee, and a call of loopStep
 * first in each for loop's body, which counts the render's loop steps (it prints nothing).
 */
function compileBounded(tok: transformers.PreTrainedTokenizer, source: string): void {
  const cache = (tok as unknown as { _compiled_template_cache?: Map<string, JinjaTemplate> })._compiled_template_cache;
  if (!(cache instanceof Map)) throw new Error('this transformers.js keeps no compiled templates to bound range() in');
  if (typeof source !== 'string') throw new Error('the chat template is not text');
  if (cache.has(source)) return;
  // the empty template renders at once; compiling it is the way to jinja's Template class
  tok.apply_chat_template([], { tokenize: false, chat_template: '' });
  const Template = (cache.get('') as object).constructor as new (source: string) => JinjaTemplate;
  const compiled = new Template(source);
  boundRangeCalls(compiled.parsed, 0);
  cache.set(source, compiled);
}

function boundRangeCalls(node: unknown, depth: number): void {
  if (typeof node !== 'object' || node === null || depth > 10_000) return;
  const n = node as { type?: string; callee?: { type?: string; value?: unknown } };
  const rangeCall = n.type === 'CallExpression' && n.callee?.type === 'Identifier' && n.callee.value === 'range';
  if (rangeCall) n.callee!.value = BOUNDED_RANGE;
  for (const child of Object.values(node)) boundRangeCalls(child, depth + 1);
  // after the walk, so that the call added is not walked: `{{ __loop_step() }}` as the body's first
  // statement (jinja's interpreter dispatches on `type`, so plain objects do; a null result prints nothing)
  const loop = node as { type?: string; body?: unknown };
  if (loop.type === 'For' && Array.isArray(loop.body)) {
    loop.body.unshift({ type: 'CallExpression', callee: { type: 'Identifier', value: LOOP_STEP }, args: [] });
  }
}

/** Loop steps and range() numbers so far in this render (render() resets it). */
let steps = 0;

/** Counts `n` more steps of the render, refusing more than MAX_TEMPLATE_STEPS in all. */
function countSteps(n: number): void {
  steps += n;
  if (steps > MAX_TEMPLATE_STEPS) {
    throw new Error(`loops more than the ${MAX_TEMPLATE_STEPS} steps allowed in one render (nested loops?)`);
  }
}

/** Called first in each loop step of the template (boundRangeCalls puts the call there). */
function loopStep(): void {
  countSteps(1);
}

/** Jinja's range(), refusing more than MAX_TEMPLATE_RANGE numbers. */
function boundedRange(start: number, stop?: number, step = 1): number[] {
  if (stop === undefined) [start, stop] = [0, start];
  const n = step === 0 ? Infinity : Math.ceil((stop - start) / step);
  if (!(n <= MAX_TEMPLATE_RANGE)) {
    throw new Error(`range(${start}, ${stop}, ${step}) is longer than the ${MAX_TEMPLATE_RANGE} allowed`);
  }
  countSteps(Math.max(n, 0)); // a range built and not looped over costs its length too
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(start + i * step);
  return out;
}
