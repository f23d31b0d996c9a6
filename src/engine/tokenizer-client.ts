// The tokenizer, run in a worker of its own that can be stopped (./tokenizer-worker.ts). Files on
// the Hub come from strangers: a tokenizer.json whose pre-tokenizer regex backtracks for ever, or
// a chat template that loops a billion times, would freeze whatever thread ran them. So every
// encode, chat rendering and decode is a message to that worker, answered under a time budget;
// past it, the worker is terminated, the call fails with an error naming the file to blame, and
// the next call starts a fresh worker.
//
// The page (a nested Worker inside its engine worker) and the command line (a Node worker
// thread with a heap limit) differ only in how the worker is started: `spawn` is handed in, as
// the engine is handed its GPU. Calls made together are sent together (one message, many texts)
// and several messages are kept in flight, so the worker never waits for the next: preparing a
// data set is as fast as tokenizing in place.
import { conversationChars, type ChatTemplateKwargs, type Message, type TextTokenizer } from '../data/sft';
import { checkTemplateKwargs } from './template-kwargs';
import type { Op, OpResult, Reply, Request, TemplateFile, TokenizerFiles, TokenizerInfo } from './tokenizer-worker';
import { NOT_TRAINABLE } from './training-templates';

export type { TokenizerFiles } from './tokenizer-worker';

/** A tokenizer file that does not load, or that hangs, crashes or floods its worker. */
export class TokenizerError extends Error {
  override name = 'TokenizerError';
}

/** The client's side of a started worker. */
export interface TokenizerPort {
  post(r: Request): void;
  /** `onReply` gets each answer; `onDeath` once, if the worker dies (a crash, out of memory). */
  listen(onReply: (r: Reply) => void, onDeath: (why: string) => void): void;
  terminate(): void;
}

export type SpawnTokenizerWorker = () => TokenizerPort;

/** A Web Worker (the page's) as a port. */
export function webWorkerPort(w: Worker): TokenizerPort {
  return {
    post: (r) => w.postMessage(r),
    listen(onReply, onDeath) {
      w.onmessage = (e: MessageEvent<Reply>) => onReply(e.data);
      w.onerror = (e: ErrorEvent) => {
        e.preventDefault();
        onDeath(e.message || 'the worker failed');
      };
      w.onmessageerror = () => onDeath('a message from the worker could not be read');
    },
    terminate: () => w.terminate(),
  };
}

export interface TokenizerLimits {
  /** Milliseconds to start a worker and build the tokenizer there (its modules load first). */
  loadMs: number;
  /** Milliseconds any one message may take; then more per text and per 1000 characters in it. */
  callMs: number;
  perTextMs: number;
  perKiloCharMs: number;
  /** Texts and characters in one message. */
  batchTexts: number;
  batchChars: number;
  /** Messages sent and not yet answered. */
  inFlight: number;
}

/**
 * 10 s for a message, plus 20 ms a text and 10 ms per 1000 characters: a sound tokenizer takes
 * well under a millisecond per 1000 characters even on a slow machine, so only a hostile file
 * (or a stalled machine) reaches it. Messages of at most 64 texts or 1 Mi characters keep the
 * budget of one near its base.
 */
export const DEFAULT_LIMITS: TokenizerLimits = {
  loadMs: 30_000,
  callMs: 10_000,
  perTextMs: 20,
  perKiloCharMs: 10,
  batchTexts: 64,
  batchChars: 1 << 20,
  inFlight: 4,
};

/** What a chat template may add to a conversation beyond 4 × its characters (a system prompt, tool definitions). */
export const RENDER_SLACK = 64 * 1024;

type Kind = 'encode' | 'render' | 'decode';

interface Call {
  op: Op;
  chars: number;
  resolve(v: unknown): void;
  reject(e: Error): void;
}

/** A message the worker has and has not answered yet (it answers in order). */
interface Sent {
  id: number;
  kind: Kind | 'load';
  calls: Call[];
  chars: number;
  budgetMs: number;
  loaded?: { resolve(info: TokenizerInfo): void; reject(e: Error): void };
}

/** What a render reads besides the messages: see TextTokenizer.apply_chat_template. */
type RenderOptions = { chat_template_kwargs?: ChatTemplateKwargs; tools?: unknown[]; training?: boolean };

export interface TokenizerOptions {
  /** Where the files come from, to prefix their names in errors ("fixtures/tiny-llama/"). */
  where?: string;
  /** Where chat_template.jinja came from when it is not the model's own (--chat_template_path), for errors. */
  templatePath?: string;
  /** config.json's vocab_size: the tokenizer's ids must be below it. */
  vocabSize?: number;
  limits?: Partial<TokenizerLimits>;
}

export class TokenizerClient implements TextTokenizer {
  eos_token: string | null = null;
  eos_token_id: number | null = null;
  pad_token: string | null = null;
  pad_token_id: number | null = null;
  bos_token: string | null = null;
  hasChatTemplate = false;
  /** The chat template reads `enable_thinking`: a switch for thinking is worth offering. */
  thinking = false;
  /** The family whose TRL training template assistant_only_loss renders with, if the model's own is swapped. */
  trainingTemplate: string | null = null;

  private readonly limits: TokenizerLimits;
  private readonly where: string;
  private port: TokenizerPort | null = null;
  /** Bumped when a worker is stopped: its late answers are ignored. */
  private generation = 0;
  private nextId = 1;
  private sent: Sent[] = [];
  private queued: Record<Kind, Call[]> = { encode: [], render: [], decode: [] };
  private flushing = false;
  private timer: ReturnType<typeof setTimeout> | undefined;

  private constructor(
    private readonly spawn: SpawnTokenizerWorker,
    private readonly files: TokenizerFiles,
    private readonly o: TokenizerOptions,
  ) {
    this.limits = { ...DEFAULT_LIMITS, ...o.limits };
    this.where = o.where ?? '';
  }

  /** Starts a worker and builds the tokenizer there; a file that does not load is a TokenizerError naming it. */
  static async create(spawn: SpawnTokenizerWorker, files: TokenizerFiles, o: TokenizerOptions = {}) {
    const client = new TokenizerClient(spawn, files, o);
    const info = await client.start().catch((e: Error) => {
      client.stop(e); // the worker goes with the files it could not load
      throw e;
    });
    Object.assign(client, {
      eos_token: info.eos_token,
      eos_token_id: info.eos_token_id,
      pad_token: info.pad_token,
      pad_token_id: info.pad_token_id,
      bos_token: info.bos_token,
      hasChatTemplate: info.hasChatTemplate,
      thinking: info.thinking,
      trainingTemplate: info.trainingTemplate,
    });
    return client;
  }

  encode(text: string, o: { add_special_tokens?: boolean } = {}): Promise<number[]> {
    const op: Op = { op: 'encode', text, add_special_tokens: o.add_special_tokens ?? true };
    return this.call(op, text.length) as Promise<number[]>;
  }

  /**
   * The conversation rendered by the chat template (chat_template.jinja, or tokenizer_config.json's),
   * as text; `chat_template_kwargs` are variables it reads besides (`enable_thinking`). With
   * `training`, by the template assistant_only_loss trains with (see generation_spans).
   */
  apply_chat_template(
    messages: Message[],
    o: RenderOptions & { add_generation_prompt?: boolean } = {},
  ): Promise<string> {
    return this.render(messages, o, false) as Promise<string>;
  }

  /**
   * The conversation rendered by the template assistant_only_loss trains with, and the [start, end)
   * character spans of its {% generation %} blocks, as return_assistant_tokens_mask reads them. That
   * template is the model's own where it has blocks, else TRL's training version of it
   * (./training-templates.ts); any other is refused, as TRL refuses it.
   */
  generation_spans(messages: Message[], o: RenderOptions = {}): Promise<{ text: string; spans: [number, number][] }> {
    return this.render(messages, { ...o, training: true }, true) as Promise<{
      text: string;
      spans: [number, number][];
    }>;
  }

  private render(
    messages: Message[],
    o: RenderOptions & { add_generation_prompt?: boolean },
    spans: boolean,
  ): Promise<unknown> {
    const chars = conversationChars(messages, o.tools);
    const kwargs = o.chat_template_kwargs;
    if (kwargs !== undefined) {
      try {
        checkTemplateKwargs(kwargs);
      } catch (e) {
        return Promise.reject(new TokenizerError((e as Error).message));
      }
    }
    const op: Op = {
      op: 'render',
      messages,
      add_generation_prompt: !!o.add_generation_prompt,
      maxChars: 4 * chars + RENDER_SLACK,
      ...(kwargs !== undefined ? { kwargs } : {}),
      ...(o.tools ? { tools: o.tools } : {}),
      ...(o.training ? { training: true } : {}),
      ...(spans ? { spans } : {}),
    };
    return this.call(op, chars);
  }

  decode(ids: number[], o: { skip_special_tokens?: boolean } = {}): Promise<string> {
    const op: Op = { op: 'decode', ids, skip_special_tokens: !!o.skip_special_tokens };
    return this.call(op, ids.length) as Promise<string>;
  }

  /** Stops the worker; calls not yet answered fail. */
  close(): void {
    this.stop(new TokenizerError('the tokenizer was closed'));
  }

  // ---- the worker -----------------------------------------------------------------------

  private start(): Promise<TokenizerInfo> {
    const generation = this.generation;
    const port = (this.port = this.spawn());
    port.listen(
      (r) => generation === this.generation && this.answered(r),
      (why) => generation === this.generation && this.died(why),
    );
    return new Promise<TokenizerInfo>((resolve, reject) => {
      const size =
        this.files['tokenizer.json'].length +
        (this.files['tokenizer_config.json']?.length ?? 0) +
        (this.files['chat_template.jinja']?.length ?? 0);
      // building a tokenizer reads its whole vocabulary: 1 ms per 10,000 characters on top (3 s for 30 MB)
      const budgetMs = this.limits.loadMs + size / 10_000;
      const body = { load: this.files, ...(this.o.vocabSize !== undefined ? { vocabSize: this.o.vocabSize } : {}) };
      const id = this.nextId++;
      this.post({ id, kind: 'load', calls: [], chars: size, budgetMs, loaded: { resolve, reject } }, body);
    });
  }

  private call(op: Op, chars: number): Promise<unknown> {
    return new Promise((resolve, reject) => {
      this.queued[op.op].push({ op, chars, resolve, reject });
      if (!this.flushing) {
        // what the caller asks for in this turn goes out as one message
        this.flushing = true;
        queueMicrotask(() => {
          this.flushing = false;
          this.flush();
        });
      }
    });
  }

  /** Sends queued calls, one message per kind and batch, while fewer than `inFlight` are unanswered. */
  private flush(): void {
    if (!this.port) {
      if (!Object.values(this.queued).some((q) => q.length)) return;
      // a fresh worker after one was stopped; its load answer only needs to arrive (it loaded before)
      this.start().catch((e: Error) => this.stop(e));
    }
    const { batchTexts, batchChars, inFlight, callMs, perTextMs, perKiloCharMs } = this.limits;
    for (const kind of ['encode', 'render', 'decode'] as const) {
      const q = this.queued[kind];
      while (q.length && this.sent.length < inFlight) {
        let n = 0,
          chars = 0;
        while (n < q.length && n < batchTexts && (n === 0 || chars + q[n].chars <= batchChars)) chars += q[n++].chars;
        const calls = q.splice(0, n);
        const budgetMs = callMs + perTextMs * n + (perKiloCharMs * chars) / 1000;
        this.post({ id: this.nextId++, kind, calls, chars, budgetMs }, { ops: calls.map((c) => c.op) });
      }
    }
  }

  private post(s: Sent, body: { load: TokenizerFiles; vocabSize?: number } | { ops: Op[] }): void {
    this.sent.push(s);
    if (this.sent.length === 1) this.arm();
    this.port!.post({ id: s.id, ...body } as Request);
  }

  /** The timer of the message the worker is on now (the oldest unanswered). */
  private arm(): void {
    clearTimeout(this.timer);
    const head = this.sent[0];
    // while a call is unanswered this timer is armed: in Node it keeps the process alive, the worker need not
    if (head) this.timer = setTimeout(() => this.stop(this.timeoutError(head)), head.budgetMs);
  }

  private answered(r: Reply): void {
    const head = this.sent.shift();
    this.arm();
    if (!head || head.id !== r.id) {
      this.stop(new TokenizerError('the tokenizer worker answered out of order'));
      return;
    }
    if ('info' in r) head.loaded!.resolve(r.info);
    else if ('error' in r) {
      const e = this.fileError(r.file, r.error);
      head.loaded?.reject(e);
      for (const c of head.calls) c.reject(e);
    } else {
      head.calls.forEach((c, i) => {
        const x: OpResult | undefined = r.results[i];
        if (x && 'ok' in x) c.resolve(x.ok);
        else c.reject(this.fileError(x?.file ?? 'tokenizer.json', x?.error ?? 'no answer'));
      });
    }
    this.flush();
  }

  private died(why: string): void {
    const head = this.sent[0];
    const doing = head ? this.doing(head) : 'idle';
    const file = this.blamed(head?.kind ?? 'load');
    const hint = this.hint(head?.kind === 'render' ? this.templateFile : 'tokenizer.json');
    const what = `${file} stopped the tokenizer's worker (${why.slice(0, 300)})`;
    this.stop(new TokenizerError(`${what} while ${doing}. ${hint}`));
  }

  /** Terminates the worker and fails every call not yet answered, sent or queued; the next call starts a fresh one. */
  private stop(e: Error): void {
    clearTimeout(this.timer);
    this.generation++;
    this.port?.terminate();
    this.port = null;
    const calls = [...this.sent.flatMap((s) => s.calls), ...Object.values(this.queued).flat()];
    for (const s of this.sent) s.loaded?.reject(e);
    this.sent = [];
    this.queued = { encode: [], render: [], decode: [] };
    for (const c of calls) c.reject(e);
  }

  // ---- errors -----------------------------------------------------------------------------

  private timeoutError(s: Sent): TokenizerError {
    const secs = `${(s.budgetMs / 1000).toFixed(1)} s`;
    const why = {
      load: 'building the tokenizer from it',
      encode: 'its "pre_tokenizer" or "normalizer" (a regex that backtracks without end?)',
      decode: 'its "decoder"',
      render: 'a loop or a recursion without end?',
    }[s.kind];
    const doing = this.doing(s);
    const what = this.blamed(s.kind);
    const hint = this.hint(s.kind === 'render' ? this.templateFile : 'tokenizer.json');
    const stopped = `did not finish ${doing} within ${secs} (${why}); its worker was stopped`;
    return new TokenizerError(`${what} ${stopped}. ${hint}`);
  }

  /** The file the chat template comes from (chat_template.jinja wins, as in transformers). */
  private get templateFile(): TemplateFile {
    return this.files['chat_template.jinja'] !== undefined ? 'chat_template.jinja' : 'tokenizer_config.json';
  }

  /** The file a stalled or dead worker is blamed on. */
  private blamed(kind: Kind | 'load'): string {
    if (kind !== 'render') return `${this.where}tokenizer.json`;
    const file = this.templateFile;
    return file === 'chat_template.jinja' ? this.path(file) : `${this.where}${file}'s "chat_template"`;
  }

  /** A file's name as the user knows it: in the model's folder, or the template they gave. */
  private path(file: string): string {
    return file === 'chat_template.jinja' && this.o.templatePath ? this.o.templatePath : `${this.where}${file}`;
  }

  private doing(s: Sent): string {
    const n = s.calls.length;
    return {
      load: 'loading',
      encode: `tokenizing ${n} text${n === 1 ? '' : 's'} of ${s.chars} characters`,
      render: `rendering ${n} conversation${n === 1 ? '' : 's'}`,
      decode: `decoding ${n} token sequence${n === 1 ? '' : 's'}`,
    }[s.kind];
  }

  /** What to do about `file`, unless the error says it (a template assistant_only_loss cannot train with). */
  private hint(file: string, error = ''): string {
    if (error.includes(NOT_TRAINABLE)) return '';
    return file === 'tokenizer_config.json' || file === 'chat_template.jinja'
      ? `Fix ${file} (or use the one the model was published with); without a usable chat template, ` +
          'give the data as a "text" column.'
      : 'Use the tokenizer.json the model was published with (one that transformers loads and runs quickly).';
  }

  private fileError(file: string, error: string): TokenizerError {
    const hint = this.hint(file, error);
    return new TokenizerError(`${this.path(file)} ${error.replace(/\.$/, '')}.${hint ? ` ${hint}` : ''}`);
  }
}
