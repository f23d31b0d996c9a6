// From rows to training blocks, as TRL's SFTTrainer prepares a data set:
//
//   format     detected from the first row, as TRL detects it: `input_ids` (used as they are,
//              with a `completion_mask` or `assistant_masks` if they have one), `messages` (a
//              conversation; ShareGPT's `conversations` of from/value is converted as TRL does),
//              `prompt` + `completion` (strings, or conversations), else the text column
//   tokenize   text: the tokenizer's special tokens, EOS appended to the text when it does not
//              end with it; prompt/completion: prompt and prompt + completion (+ EOS) tokenized
//              apart, the completion being what the second adds; conversations: rendered by the
//              tokenizer's chat template (prompts with the generation prompt), special tokens
//              coming from the template alone
//   mask       the loss is taken on the completion only (completion_only_loss, on by default
//              for prompt/completion data) or on the assistant's turns only (assistant_only_loss)
//   truncate   without packing, to max_length, keeping the start (or the end); an example left
//              with no label is dropped, as TRL drops it
//   pack       as trl.pack_dataset does, in batches of 1000 examples packed apart (it packs inside
//              datasets' map(batched=True)): wrapped: every example end to end, cut into blocks of
//              max_length (sequences see each other); bfd: best-fit-decreasing bins of at most
//              max_length, position ids restarting per sequence, so that attention stays inside
//              each sequence; bfd_split: bfd with long examples split rather than truncated
//
// A block keeps unshifted labels (−100 where no loss is taken) and position ids; a position id
// of 0 starts a sequence, which attention does not look across (./batches.ts).
import { DataError, type Row, type SkipCounts } from './read';

/**
 * A chat message, as chat templates take them: its role and content, and whatever else the row
 * gave it (tool_calls, name, reasoning_content …), passed to the template as it is.
 */
export interface Message {
  role: string;
  content: string;
  [field: string]: unknown;
}

/** The characters of a conversation (and its tools), as JSON: what a template's output is bounded by. */
export const conversationChars = (messages: Message[], tools?: unknown[]) =>
  JSON.stringify(messages).length + (tools ? JSON.stringify(tools).length : 0);

/**
 * Variables a chat template reads besides the conversation, as transformers passes keyword
 * arguments of apply_chat_template through (Qwen3's `enable_thinking`). Absent: the template's default.
 */
export type ChatTemplateKwargs = Record<string, boolean | number | string>;

/**
 * What of a tokenizer the data pipeline uses: the tokenizer worker's client has it
 * (src/engine/tokenizer-client.ts). Asynchronous, as the tokenizer runs in a worker of its own.
 */
export interface TextTokenizer {
  encode(text: string, o?: { add_special_tokens?: boolean }): Promise<number[]>;
  eos_token_id?: number | null;
  eos_token?: string | null;
  pad_token?: string | null;
  pad_token_id?: number | null;
  /**
   * The conversation rendered by the template assistant_only_loss trains with, and the [start, end)
   * character spans of its {% generation %} blocks: the assistant-only mask, as transformers'
   * return_assistant_tokens_mask finds it. The template is the model's own where it has blocks,
   * else TRL's training version of it; another is refused (src/engine/training-templates.ts).
   */
  generation_spans?(
    messages: Message[],
    o: { chat_template_kwargs?: ChatTemplateKwargs; tools?: unknown[] },
  ): Promise<{ text: string; spans: [number, number][] }>;
  /** Renders a conversation with the tokenizer's chat template (with `training`, generation_spans' template). */
  apply_chat_template?(
    messages: Message[],
    o: {
      add_generation_prompt?: boolean;
      chat_template_kwargs?: ChatTemplateKwargs;
      tools?: unknown[];
      training?: boolean;
    },
  ): Promise<string>;
}

/**
 * Rows tokenized at once: the tokenizer's worker gets them in a few large messages and is never
 * idle waiting for the next row.
 */
const ROWS_IN_FLIGHT = 256;

/**
 * The longest row tokenized, in characters (UTF-16 code units): 32 per token of max_length, and
 * at least 64 Ki (1 Mi without a max_length). A token is 3 to 5 characters of ordinary text, so
 * a longer row is 6 to 10 blocks' worth or more. Such a row is skipped and counted, not cut by
 * characters: which characters make the first max_length tokens is not knowable without
 * tokenizing (a pre-tokenizer's regex or a merge may look past any cut), and wrapped packing
 * keeps every token of a row anyway. Tokenizing a 6 MB row whole took 17 s and 729 MB.
 */
export function rowCharLimit(maxLength: number | null): number {
  return Math.max(64 * 1024, 32 * (maxLength ?? 32 * 1024));
}

export type DataKind = 'text' | 'prompt_completion' | 'messages' | 'chat_prompt_completion' | 'tokens';

const KIND_NAMES: Record<DataKind, string> = {
  text: 'text',
  prompt_completion: 'prompts and completions as text',
  messages: 'conversations',
  chat_prompt_completion: 'conversational prompts and completions',
  tokens: 'token ids',
};
export type PackingStrategy = 'bfd' | 'bfd_split' | 'wrapped';

export const PACKING_STRATEGIES: PackingStrategy[] = ['bfd', 'bfd_split', 'wrapped'];

export interface SftDataSettings {
  dataset_text_field: string;
  /** Block length for packing, truncation length otherwise; null keeps whole examples. */
  max_length: number | null;
  packing: boolean;
  packing_strategy: PackingStrategy;
  /** The loss on completions only; null: on for prompt/completion data, as TRL defaults. */
  completion_only_loss: boolean | null;
  /** The loss on the assistant's turns only, for conversations. */
  assistant_only_loss: boolean;
  /** Variables for the chat template (`enable_thinking`); absent, its defaults. */
  chat_template_kwargs?: ChatTemplateKwargs;
  /**
   * Without packing, which end of a long example to keep (TRL's collator): keep_start (the
   * default) or keep_end. Packing always keeps the start, as pack_dataset truncates.
   */
  truncation_mode?: 'keep_start' | 'keep_end';
}

export const SFT_DEFAULTS: SftDataSettings = {
  dataset_text_field: 'text',
  max_length: 1024,
  packing: false,
  packing_strategy: 'bfd',
  completion_only_loss: null,
  assistant_only_loss: false,
};

export interface Example {
  input_ids: number[];
  /** 1 where the token is a target of the loss; absent: every token is. */
  mask?: number[];
  /** A pre-tokenized row's own labels column (−100: none), used as it is (such an example has no mask). */
  labels?: number[];
}

export interface Block {
  input_ids: number[];
  labels: number[]; // unshifted: labels[t] = input_ids[t] or −100
  position_ids: number[];
}

/** The format of a data set, from its first row, as TRL tells them apart. */
export function detectKind(row: Row, s: Pick<SftDataSettings, 'dataset_text_field'>): DataKind {
  if ('input_ids' in row) return 'tokens';
  if ('messages' in row || 'conversations' in row) return 'messages';
  if ('prompt' in row && 'completion' in row)
    return Array.isArray(row.prompt) ? 'chat_prompt_completion' : 'prompt_completion';
  if (s.dataset_text_field in row) return 'text';
  throw new DataError(
    `the first row has none of the columns SFT reads (its columns: ${Object.keys(row).join(', ') || 'none'}): ` +
      `give a "${s.dataset_text_field}" column (or set --dataset_text_field), "prompt" and "completion", ` +
      `"messages", or "input_ids"`,
  );
}

/** Tokenized examples of every usable row, and the data set's format; unusable rows are skipped and counted. */
export async function tokenizeRows(
  rows: AsyncIterable<Row>,
  tokenizer: TextTokenizer,
  s: SftDataSettings,
  skipped: SkipCounts,
  vocab?: number,
): Promise<{ examples: Example[]; kind: DataKind }> {
  const examples: Example[] = [];
  let kind: DataKind | null = null;
  let seen = 0;
  const limit = rowCharLimit(s.max_length);
  // rows in flight, settled in their order
  const pending: Promise<Example | string>[] = [];
  const settle = (e: Example | string) => (typeof e === 'string' ? skipped.add(e) : examples.push(e));
  for await (const row of rows) {
    seen++;
    if (kind === null) {
      kind = detectKind(row, s);
      // TRL raises on the first row too: the mask comes from a chat template's assistant turns
      if (s.assistant_only_loss && kind !== 'messages' && kind !== 'chat_prompt_completion') {
        throw new DataError(
          "assistant_only_loss trains on the assistant's turns of conversations, but this data set is " +
            `${KIND_NAMES[kind]}: turn it off, or give conversations ("messages", or "prompt" and ` +
            '"completion" as lists of messages)',
        );
      }
    }
    // a row holding input_ids is used as it is, whatever the others hold
    const rowKind = 'input_ids' in row ? 'tokens' : kind;
    if (rowChars(row, rowKind, s) > limit) {
      const why =
        `rows longer than ${limit} characters ` + `(too long to tokenize for max_length ${s.max_length ?? 'none'})`;
      pending.push(Promise.resolve(why));
      continue;
    }
    const e = tokenizeRow(row, rowKind, tokenizer, s, vocab);
    e.catch(() => {}); // awaited below, in order; a rejection before then is not unhandled
    pending.push(e);
    if (pending.length >= ROWS_IN_FLIGHT) settle(await pending.shift()!);
  }
  for (const e of pending) settle(await e);
  if (examples.length === 0) {
    const why = skipped.total ? `: all ${seen} rows were skipped (${skipped})` : '';
    const hint = kind === 'text' ? ' Set --dataset_text_field to the column that holds the text.' : '';
    throw new DataError(`the data set has no usable rows${why}.${hint}`);
  }
  return { examples, kind: kind! };
}

/** The characters a row gives the tokenizer (its text, prompt and completion, or messages' contents). */
function rowChars(row: Row, kind: DataKind, s: SftDataSettings): number {
  const len = (v: unknown): number => {
    if (typeof v === 'string') return v.length;
    if (Array.isArray(v)) return v.reduce((n: number, x) => n + len(x), 0);
    const turn = v as Record<string, unknown> | null; // a message's content, a ShareGPT turn's value
    return typeof turn === 'object' && turn !== null ? len(turn.content) + len(turn.value) : 0;
  };
  switch (kind) {
    case 'tokens':
      return 0;
    case 'text':
      return len(row[s.dataset_text_field]);
    case 'prompt_completion':
    case 'chat_prompt_completion':
      return len(row.prompt) + len(row.completion);
    case 'messages':
      return len(row.messages) + len(row.conversations);
  }
}

/** One row as an example, or why it is skipped. */
export async function tokenizeRow(
  row: Row,
  kind: DataKind,
  tok: TextTokenizer,
  s: SftDataSettings,
  vocab?: number,
): Promise<Example | string> {
  const completionOnly = s.completion_only_loss ?? true;
  switch (kind) {
    case 'tokens': {
      // as TRL builds labels: a row's labels column as it is (its masks then unused); else
      // input_ids, masked by completion_mask only under completion_only_loss (which defaults on
      // for prompt/completion rows alone) and by assistant_masks whenever the row has them
      const e = tokenIds(row.input_ids, vocab);
      if (typeof e === 'string') return e;
      const completion = s.completion_only_loss ?? ('prompt' in row && 'completion' in row);
      const masks = [completion ? row.completion_mask : undefined, row.assistant_masks].filter((m) => m != null);
      for (const m of masks) {
        if (!Array.isArray(m) || m.length !== e.input_ids.length)
          return 'rows whose completion_mask or assistant_masks is not one 0 or 1 per token';
      }
      let labels: number[] | undefined;
      if (row.labels != null) {
        // the loss kernel indexes the logits by label: every one a token id in the vocabulary, or −100
        const l = Array.isArray(row.labels) ? row.labels.map(Number) : null;
        const ok = (x: number) => x === -100 || (Number.isInteger(x) && x >= 0 && (vocab === undefined || x < vocab));
        if (!l || l.length !== e.input_ids.length || !l.every(ok))
          return 'rows whose labels is not one token id (or −100) per token';
        labels = l;
      }
      if (labels) return { ...e, labels };
      const mask = masks.length
        ? e.input_ids.map((_, t) => (masks.every((m) => Number((m as unknown[])[t]) === 1) ? 1 : 0))
        : undefined;
      return mask ? { ...e, mask } : e;
    }
    case 'text': {
      // an empty text is kept, as TRL keeps it: it trains on EOS alone
      const text = stringField(row, s.dataset_text_field);
      if (typeof text !== 'string') return text.reason;
      return { input_ids: await tok.encode(withEos(text, tok)) };
    }
    case 'prompt_completion': {
      const prompt = stringField(row, 'prompt'),
        completion = stringField(row, 'completion');
      if (typeof prompt !== 'string') return prompt.reason;
      if (typeof completion !== 'string') return completion.reason;
      const [promptIds, ids] = await Promise.all([tok.encode(prompt), tok.encode(prompt + withEos(completion, tok))]);
      return completionOnly
        ? { input_ids: ids, mask: ids.map((_, t) => (t < promptIds.length ? 0 : 1)) }
        : { input_ids: ids };
    }
    case 'chat_prompt_completion': {
      const prompt = messagesField(row, 'prompt'),
        completion = messagesField(row, 'completion');
      if (!Array.isArray(prompt)) return prompt.reason;
      if (!Array.isArray(completion)) return completion.reason;
      const all = [...prompt, ...completion];
      const tools = toolsField(row);
      if (tools && !Array.isArray(tools)) return tools.reason;
      // under assistant_only_loss, both are rendered by the template it trains with, as TRL renders them
      const kw = { kwargs: s.chat_template_kwargs, tools, training: s.assistant_only_loss };
      const [promptIds, whole] = await Promise.all([
        chatIds(tok, prompt, true, kw),
        s.assistant_only_loss ? assistantTurns(tok, all, kw) : chatIds(tok, all, false, kw),
      ]);
      if (typeof whole === 'string') return whole;
      const ids = Array.isArray(whole) ? whole : whole.input_ids;
      const completionMask = completionOnly ? ids.map((_, t) => (t < promptIds.length ? 0 : 1)) : null;
      if (Array.isArray(whole)) return completionMask ? { input_ids: ids, mask: completionMask } : { input_ids: ids };
      return { input_ids: ids, mask: whole.mask!.map((m, t) => (completionMask ? m & completionMask[t] : m)) };
    }
    case 'messages': {
      const messages = 'messages' in row ? messagesField(row, 'messages') : shareGpt(row.conversations);
      if (!Array.isArray(messages)) return messages.reason;
      const tools = toolsField(row);
      if (tools && !Array.isArray(tools)) return tools.reason;
      const kw = { kwargs: s.chat_template_kwargs, tools };
      if (s.assistant_only_loss) return assistantTurns(tok, messages, kw);
      return { input_ids: await chatIds(tok, messages, false, kw) };
    }
  }
}

/** TRL appends the EOS token to the text when it does not end with it already. */
function withEos(text: string, tok: TextTokenizer): string {
  const eos = tok.eos_token;
  return eos && !text.endsWith(eos) ? text + eos : text;
}

/** A string column's value; empty is fine (TRL trains on an empty text or completion's EOS). */
function stringField(row: Row, name: string): string | { reason: string } {
  const v = row[name];
  if (v === undefined || v === null) return { reason: `rows without a "${name}" field` };
  if (typeof v !== 'string') return { reason: `rows whose "${name}" is not a string` };
  return v;
}

function messagesField(row: Row, name: string): Message[] | { reason: string } {
  const v = row[name];
  if (v === undefined || v === null) return { reason: `rows without a "${name}" field` };
  const messages = Array.isArray(v) && v.length > 0 ? v.map(message) : null;
  if (!messages || messages.some((m) => m === null))
    return { reason: `rows whose "${name}" is not a list of {role, content} messages` };
  return messages as Message[];
}

/**
 * One message of a row, every field kept (as TRL keeps them), or null: it needs a role and a
 * string content (an assistant's tool call may have none). Parquet's bigints become numbers.
 */
function message(m: unknown): Message | null {
  if (typeof m !== 'object' || m === null || Array.isArray(m)) return null;
  const r = m as Record<string, unknown>;
  const toolCall = Array.isArray(r.tool_calls) && r.tool_calls.length > 0;
  if (typeof r.role !== 'string' || !(typeof r.content === 'string' || (toolCall && r.content == null))) return null;
  const fields = Object.fromEntries(Object.entries(r).filter(([, x]) => x !== undefined && x !== null));
  return JSON.parse(JSON.stringify({ ...fields, content: r.content ?? '' }, plainNumbers)) as Message;
}

const plainNumbers = (_: string, x: unknown) => (typeof x === 'bigint' ? Number(x) : x);

/** A row's `tools` for the chat template: a list of function schemas, or that list as JSON text (TRL parses it). */
function toolsField(row: Row): unknown[] | undefined | { reason: string } {
  let t = row.tools;
  if (t === undefined || t === null) return undefined;
  if (typeof t === 'string') {
    try {
      t = JSON.parse(t);
    } catch {
      return { reason: 'rows whose "tools" is text but not JSON' };
    }
  }
  if (!Array.isArray(t)) return { reason: 'rows whose "tools" is not a list of tool schemas' };
  return JSON.parse(JSON.stringify(t, plainNumbers)) as unknown[];
}

/** What a chat template reads besides the messages: variables (enable_thinking) and the row's tools. */
export interface ChatOptions {
  kwargs?: ChatTemplateKwargs;
  tools?: unknown[];
  /** Rendered by the template assistant_only_loss trains with (TextTokenizer.generation_spans'). */
  training?: boolean;
}

/** A conversation rendered by the chat template and tokenized without adding special tokens (the template has them). */
export async function chatIds(
  tok: TextTokenizer,
  messages: Message[],
  generationPrompt: boolean,
  chat: ChatOptions = {},
): Promise<number[]> {
  if (!tok.apply_chat_template)
    throw new DataError('this tokenizer cannot render conversations: it has no apply_chat_template');
  // the tokenizer's errors name the chat template's file and say what to do
  const o = {
    add_generation_prompt: generationPrompt,
    ...(chat.kwargs ? { chat_template_kwargs: chat.kwargs } : {}),
    ...(chat.tools ? { tools: chat.tools } : {}),
    ...(chat.training ? { training: true } : {}),
  };
  const text = await tok.apply_chat_template(messages, o);
  return tok.encode(text, { add_special_tokens: false });
}

/**
 * A conversation as assistant_only_loss trains on it: rendered by the template it trains with,
 * the loss on the tokens that template's {% generation %} blocks render, as transformers'
 * return_assistant_tokens_mask (and so TRL) takes them. Why not, where a block does not begin and
 * end on a token boundary, or there is no assistant turn (TRL raises on such a row; it is skipped here).
 */
async function assistantTurns(tok: TextTokenizer, messages: Message[], chat: ChatOptions): Promise<Example | string> {
  if (!tok.generation_spans) throw new DataError('this tokenizer cannot mark the assistant turns of conversations');
  const { text, spans } = await tok.generation_spans(messages, {
    ...(chat.kwargs ? { chat_template_kwargs: chat.kwargs } : {}),
    ...(chat.tools ? { tools: chat.tools } : {}),
  });
  const encode = (upTo: number) => tok.encode(text.slice(0, upTo), { add_special_tokens: false });
  // a span's first and last token: the tokens of the text before each end, a prefix of the whole's
  const [ids, ...ends] = await Promise.all([encode(text.length), ...spans.flat().map(encode)]);
  const isPrefix = (p: number[]) => p.length <= ids.length && p.every((x, i) => x === ids[i]);
  if (!ends.every(isPrefix))
    return "conversations whose template's generation blocks do not begin and end on token boundaries";
  const mask = new Array<number>(ids.length).fill(0);
  for (let k = 0; k < ends.length; k += 2) for (let t = ends[k].length; t < ends[k + 1].length; t++) mask[t] = 1;
  if (!mask.includes(1)) return 'conversations without an assistant turn (assistant_only_loss trains on those only)';
  return { input_ids: ids, mask };
}

/**
 * ShareGPT's turns as TRL's maybe_convert_to_chatml converts them: `from` renamed `role` (its
 * value kept: human and gpt stay human and gpt, as the chat template then sees them), `value`
 * renamed `content`, every other field kept.
 */
function shareGpt(v: unknown): Message[] | { reason: string } {
  const turns =
    Array.isArray(v) && v.length > 0
      ? v.map((t) => {
          if (typeof t !== 'object' || t === null || typeof t.from !== 'string' || typeof t.value !== 'string')
            return null;
          const { from, value, ...rest } = t as Record<string, unknown>;
          return message({ ...rest, role: from, content: value });
        })
      : null;
  if (!turns || turns.some((t) => t === null))
    return { reason: 'rows whose "conversations" is not a list of {from, value} turns' };
  return turns as Message[];
}

/** A row's own input_ids, checked: a list of token ids inside the vocabulary. */
function tokenIds(x: unknown, vocab?: number): Example | string {
  if (!Array.isArray(x) || x.length === 0) return 'rows whose input_ids is not a non-empty list';
  const ids = x.map(Number); // Parquet int64 columns arrive as bigint
  if (!ids.every((i) => Number.isInteger(i) && i >= 0 && (vocab === undefined || i < vocab))) {
    return `rows whose input_ids are not token ids${vocab ? ` below the vocabulary size ${vocab}` : ''}`;
  }
  return { input_ids: ids };
}

/**
 * Rows trl.pack_dataset packs together: datasets' `map(batched=True)` hands it 1000 rows at a
 * time (its default batch_size), and no bin or wrapped block spans two such batches.
 */
export const PACK_BATCH = 1000;

/** Why TRL drops an example: truncated, it has no label left. */
export const NO_TARGET_LEFT = 'examples with no token to learn from left after truncation to max_length';

/**
 * The examples TRL keeps: without packing and with a max_length, it truncates each and drops one
 * left with no label (counted in `skipped`); packing drops nothing.
 */
export function dropUntrainable(examples: Example[], s: SftDataSettings, skipped: SkipCounts): Example[] {
  if (s.packing || s.max_length === null) return examples;
  return examples.filter((e) => {
    const kept = sequenceBlock(truncated(e, s.max_length!, s.truncation_mode === 'keep_end')).labels.some(
      (l) => l !== -100,
    );
    if (!kept) skipped.add(NO_TARGET_LEFT);
    return kept;
  });
}

/** The example cut to `length` tokens, keeping its start or its end. */
const truncated = (e: Example, length: number, keepEnd: boolean): Example => {
  const n = e.input_ids.length;
  return n <= length ? e : keepEnd ? slice(e, n - length, n) : truncate(e, length);
};

/** Examples to blocks: packed (wrapped, bfd or bfd_split), or one block each, truncated. */
export function toBlocks(examples: Example[], s: SftDataSettings): Block[] {
  const L = s.max_length;
  if (L !== null && !(Number.isInteger(L) && L >= 2))
    throw new DataError(`max_length must be an integer ≥ 2, not ${L}`);
  if (s.packing) {
    if (L === null) throw new DataError('packing needs a max_length: the length of the packed blocks');
    const blocks: Block[] = [];
    for (let i = 0; i < examples.length; i += PACK_BATCH) {
      const batch = examples.slice(i, i + PACK_BATCH);
      const packed =
        s.packing_strategy === 'wrapped'
          ? packWrapped(batch, L)
          : packBfd(batch, L, s.packing_strategy === 'bfd_split' ? 'split' : 'truncate');
      for (const b of packed) blocks.push(b);
    }
    return blocks;
  }
  const keepEnd = s.truncation_mode === 'keep_end';
  if (s.truncation_mode !== undefined && !keepEnd && s.truncation_mode !== 'keep_start')
    throw new DataError(`truncation_mode must be keep_start or keep_end, not ${s.truncation_mode}`);
  return examples.map((e) => sequenceBlock(L === null ? e : truncated(e, L, keepEnd)));
}

/** The first `length` tokens (TRL's truncation keeps the start). */
export function truncate(e: Example, length: number): Example {
  return e.input_ids.length <= length ? e : slice(e, 0, length);
}

/**
 * Wrapped packing (trl.pack_dataset "wrapped"): all ids end to end, cut every `length`; the last
 * block may be short.
 */
export function packWrapped(examples: Example[], length: number): Block[] {
  const ids = examples.flatMap((e) => e.input_ids);
  const labels = examples.flatMap(labelsOf);
  const blocks: Block[] = [];
  for (let i = 0; i < ids.length; i += length) {
    const n = Math.min(length, ids.length - i);
    blocks.push({ input_ids: ids.slice(i, i + n), labels: labels.slice(i, i + n), position_ids: range(n) });
  }
  return blocks;
}

/**
 * Best-fit-decreasing packing (trl.pack_dataset "bfd"): empty examples dropped, longer ones
 * truncated (`overflow` truncate) or split into pieces of `length` and a rest (`split`, TRL's
 * bfd_split); then longest first (ties in order), each into the fullest bin that still has room,
 * the oldest of equally full ones, else a new bin. Position ids restart at each example, so
 * attention does not cross them. Bins are kept by how full they are, so finding the fullest that
 * fits takes O(log length), as TRL's segment tree.
 */
export function packBfd(examples: Example[], length: number, overflow: 'truncate' | 'split' = 'truncate'): Block[] {
  const pieces: Example[] = [];
  for (const e of examples) {
    const n = e.input_ids.length;
    if (n === 0) continue;
    if (overflow === 'truncate') pieces.push(truncate(e, length));
    else for (let at = 0; at < n; at += length) pieces.push(slice(e, at, Math.min(n, at + length)));
  }
  const order = pieces
    .map((_, i) => i)
    .sort((a, b) => pieces[b].input_ids.length - pieces[a].input_ids.length || a - b);
  const bins: number[][] = [];
  const byUsed = Array.from({ length: length + 1 }, () => new Queue()); // bins holding u tokens, oldest first
  const used = new PresentSet(length + 1);
  for (const i of order) {
    const n = pieces[i].input_ids.length;
    const u = used.largestAtMost(length - n);
    let bin: number;
    if (u < 0) bin = bins.push([]) - 1;
    else {
      bin = byUsed[u].shift();
      if (byUsed[u].size === 0) used.remove(u);
    }
    bins[bin].push(i);
    const now = Math.max(u, 0) + n; // a new bin (u < 0) held nothing
    byUsed[now].push(bin);
    if (byUsed[now].size === 1) used.add(now);
  }
  return bins.map((members) => ({
    input_ids: members.flatMap((i) => pieces[i].input_ids),
    labels: members.flatMap((i) => labelsOf(pieces[i])),
    position_ids: members.flatMap((i) => range(pieces[i].input_ids.length)),
  }));
}

/** Tokens [from, to) of an example, its mask and labels with them. */
function slice(e: Example, from: number, to: number): Example {
  return {
    input_ids: e.input_ids.slice(from, to),
    ...(e.mask ? { mask: e.mask.slice(from, to) } : {}),
    ...(e.labels ? { labels: e.labels.slice(from, to) } : {}),
  };
}

/** A first-in first-out queue of numbers with O(1) shift. */
class Queue {
  private items: number[] = [];
  private head = 0;
  get size(): number {
    return this.items.length - this.head;
  }
  push(v: number): void {
    this.items.push(v);
  }
  shift(): number {
    const v = this.items[this.head++];
    if (this.head === this.items.length) [this.items, this.head] = [[], 0];
    return v;
  }
}

/** A set of the integers 0..n−1 that finds its largest member ≤ x in O(log n) (a binary tree of counts). */
class PresentSet {
  private size = 1;
  private count: Int32Array;
  constructor(n: number) {
    while (this.size < n) this.size *= 2;
    this.count = new Int32Array(2 * this.size);
  }
  add(v: number): void {
    for (let i = v + this.size; i >= 1; i >>= 1) this.count[i]++;
  }
  remove(v: number): void {
    for (let i = v + this.size; i >= 1; i >>= 1) this.count[i]--;
  }
  /** The largest member ≤ x, or −1. */
  largestAtMost(x: number): number {
    if (x < 0) return -1;
    let i = Math.min(x, this.size - 1) + this.size;
    if (this.count[i]) return i - this.size;
    for (; i > 1; i >>= 1) {
      if (i & 1 && this.count[i - 1]) {
        // the subtree just left of the path: its rightmost member
        for (i -= 1; i < this.size; ) i = this.count[2 * i + 1] ? 2 * i + 1 : 2 * i;
        return i - this.size;
      }
    }
    return -1;
  }
}

function sequenceBlock(e: Example): Block {
  return { input_ids: e.input_ids, labels: labelsOf(e), position_ids: range(e.input_ids.length) };
}

const labelsOf = (e: Example): number[] => {
  const labels = e.labels ?? e.input_ids;
  return e.mask ? labels.map((id, t) => (e.mask![t] ? id : -100)) : [...labels];
};
const range = (n: number): number[] => Array.from({ length: n }, (_, t) => t);

/** Where each block's sequences start and how long they are (position id 0 starts one). */
export function sequenceLengths(b: Block): number[] {
  const out: number[] = [];
  for (const [t, p] of b.position_ids.entries()) {
    if (p === 0 || t === 0) out.push(1);
    else out[out.length - 1]++;
  }
  return out;
}

/**
 * The pad token: the tokenizer's, or EOS where it has none, as the worked example sets it
 * (tokenizer.pad_token = tokenizer.eos_token). Batches here are laid end to end and never
 * padded, so it never reaches the model; it is what a padded layout would be filled with.
 */
export function padToken(tok: TextTokenizer): { token: string | null; id: number | null; from: 'tokenizer' | 'eos' } {
  const own = tok.pad_token_id !== undefined && tok.pad_token_id !== null && tok.pad_token_id !== tok.eos_token_id;
  if (own) return { token: tok.pad_token ?? null, id: tok.pad_token_id!, from: 'tokenizer' };
  // transformers.js may have set it to EOS already
  return { token: tok.eos_token ?? null, id: tok.eos_token_id ?? null, from: 'eos' };
}

/** A run of a block's tokens shown alike: all with or all without a loss target, inside one sequence. */
export interface Segment {
  ids: number[];
  masked: boolean;
  /** It starts a sequence other than the block's first. */
  newSequence: boolean;
}

export function blockSegments(b: Block): Segment[] {
  const out: Segment[] = [];
  b.input_ids.forEach((id, t) => {
    const masked = b.labels[t] === -100,
      starts = t > 0 && b.position_ids[t] === 0;
    const last = out[out.length - 1];
    if (last && last.masked === masked && !starts) last.ids.push(id);
    else out.push({ ids: [id], masked, newSequence: starts });
  });
  return out;
}

/** What packing made of the examples: sizes, and the padding a padded batch would carry. */
export interface PackingStats {
  examples: number;
  /** Tokens of the examples as tokenized, and after truncation (what training sees). */
  tokens: number;
  keptTokens: number;
  truncated: number;
  blocks: number;
  /** Tokens with a loss target (labels shifted inside each sequence). */
  targets: number;
  /**
   * Tokens a padding trainer spends: without packing, micro-batches of `batch` examples each
   * padded to its longest (TRL's collator); as packed here, wrapped blocks padded the same way,
   * bfd blocks padding-free (TRL runs bfd without padding, as these batches always run).
   * `unpackedTokens` are the real tokens without packing (each example truncated).
   */
  paddedUnpacked: number;
  unpackedTokens: number;
  paddedPacked: number;
}

/** Tokens with a loss target: labels shifted inside each sequence, as the batches shift them. */
export function countTargets(blocks: Block[]): number {
  let n = 0;
  for (const b of blocks) {
    for (let t = 0; t + 1 < b.input_ids.length; t++) if (b.position_ids[t + 1] !== 0 && b.labels[t + 1] !== -100) n++;
  }
  return n;
}

/** Pad tokens without packing and as packed, and the share of the batch they take. */
export interface PaddingSaved {
  unpacked: number;
  packed: number;
  unpackedShare: number;
  packedShare: number;
  saved: number;
}

export function paddingSaved(st: PackingStats): PaddingSaved {
  const unpacked = st.paddedUnpacked - st.unpackedTokens,
    packed = st.paddedPacked - st.keptTokens;
  return {
    unpacked,
    packed,
    unpackedShare: unpacked / Math.max(1, st.paddedUnpacked),
    packedShare: packed / Math.max(1, st.paddedPacked),
    saved: unpacked - packed,
  };
}

export function packingStats(examples: Example[], blocks: Block[], s: SftDataSettings, batch: number): PackingStats {
  const L = s.max_length;
  const cut = (n: number) => (L === null ? n : Math.min(n, L));
  const unpacked = examples.map((e) => cut(e.input_ids.length));
  const padded = (lengths: number[]) => {
    let n = 0;
    for (let i = 0; i < lengths.length; i += batch) {
      const group = lengths.slice(i, i + batch);
      n += group.length * Math.max(...group);
    }
    return n;
  };
  const targets = countTargets(blocks);
  return {
    examples: examples.length,
    tokens: examples.reduce((n, e) => n + e.input_ids.length, 0),
    keptTokens: blocks.reduce((n, b) => n + b.input_ids.length, 0),
    truncated:
      L === null || (s.packing && s.packing_strategy !== 'bfd') // wrapped cuts, bfd_split splits
        ? 0
        : examples.filter((e) => e.input_ids.length > L).length,
    blocks: blocks.length,
    targets,
    paddedUnpacked: padded(unpacked),
    unpackedTokens: unpacked.reduce((a, b) => a + b, 0),
    paddedPacked: !s.packing
      ? padded(unpacked)
      : s.packing_strategy !== 'wrapped'
        ? blocks.reduce((n, b) => n + b.input_ids.length, 0)
        : padded(blocks.map((b) => b.input_ids.length)),
  };
}

/**
 * Counts of example lengths in at most `bins` equal bins from the shortest to the longest: bin i
 * holds [start + i·width, start + (i+1)·width).
 */
export function lengthHistogram(lengths: number[], bins = 20): { start: number; width: number; counts: number[] } {
  let min = Infinity,
    max = -Infinity;
  for (const n of lengths) [min, max] = [Math.min(min, n), Math.max(max, n)];
  if (!lengths.length) return { start: 0, width: 1, counts: [] };
  const width = Math.max(1, Math.ceil((max - min + 1) / bins));
  const counts = new Array<number>(Math.ceil((max - min + 1) / width)).fill(0);
  for (const n of lengths) counts[Math.floor((n - min) / width)]++;
  return { start: min, width, counts };
}

/** A held-out evaluation split, as datasets' train_test_split(test_size, seed) takes one. */
export function holdOut<T>(items: T[], testSize: number, random: () => number): { train: T[]; test: T[] } {
  if (!(testSize > 0 && testSize < 1))
    throw new DataError(`the held-out fraction must be between 0 and 1, not ${testSize}`);
  const n = Math.max(1, Math.round(items.length * testSize));
  if (n >= items.length)
    throw new DataError(`holding out ${testSize} of ${items.length} examples leaves none to train on`);
  const order = items.map((_, i) => i);
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  const test = new Set(order.slice(0, n));
  return { train: items.filter((_, i) => !test.has(i)), test: items.filter((_, i) => test.has(i)) };
}
