// Fuzz suite "tokenizer.json and chat templates": the tiny fixtures' tokenizer mutated at random,
// and hand-written hostile files (a pre-tokenizer, normalizer or decoder regex that backtracks
// for ever, chat templates that loop a billion times, recurse, print megabytes or raise), each
// through the real client and its worker thread. Every case must end within its limit, in a
// clear error naming the file, and after a failed call the next one, on a fresh worker, works.
import { fuzzMain } from './child';
import type { FuzzSuite } from './harness';
import { mutateJson, rng } from './mutate';
import {
  TokenizerClient,
  TokenizerError,
  type SpawnTokenizerWorker,
  type TokenizerPort,
} from '../../src/engine/tokenizer-client';
import type { Reply } from '../../src/engine/tokenizer-worker';
import { nodeTokenizerWorker } from '../../src/node/tokenizer-worker';
import { tinyTokenizer } from '../fixtures/tiny-checkpoint';

interface Case {
  what: string;
  /** The two files' text. */
  json: string;
  config: string;
  /** The text encoded, rendered as a user turn and decoded back. */
  text: string;
  /** The file a clear error must name. */
  file: 'tokenizer.json' | 'tokenizer_config.json';
  /** A text a fresh worker must encode after a failed call (none: the files do not load). */
  recover?: string;
  /** A render's time limit other than LIMITS.callMs. */
  callMs?: number;
}

const WHERE = 'fuzz-model/';
/** Budgets here: a hang is stopped after 1.5 s, not 10 (loading: 6 s, not 30), to keep the suite short. */
const LIMITS = { callMs: 1500, loadMs: 6000 };
const spawn = recycling(nodeTokenizerWorker({ heapMb: 256 }));

/**
 * Workers of the real spawner, a worker whose client closes it while it owes no answer handed to
 * the next case instead of ended (a load replaces its tokenizer), so that the suite is not mostly
 * worker start-ups. One stopped with a call unanswered (a hang) is terminated, as always.
 */
function recycling(real: SpawnTokenizerWorker): SpawnTokenizerWorker {
  interface Kept {
    port: TokenizerPort;
    owed: number;
    dead: boolean;
    onReply?: (r: Reply) => void;
    onDeath?: (why: string) => void;
  }
  const idle: Kept[] = [];
  const start = (): Kept => {
    const k: Kept = { port: real(), owed: 0, dead: false };
    k.port.listen(
      (r) => {
        k.owed--;
        k.onReply?.(r);
      },
      (why) => {
        k.dead = true;
        k.onDeath?.(why);
      },
    );
    return k;
  };
  return () => {
    const k = idle.pop() ?? start();
    return {
      post(r) {
        k.owed++;
        k.port.post(r);
      },
      listen(onReply, onDeath) {
        Object.assign(k, { onReply, onDeath });
      },
      terminate() {
        Object.assign(k, { onReply: undefined, onDeath: undefined });
        if (k.owed === 0 && !k.dead) idle.push(k);
        else k.port.terminate();
      },
    };
  };
}

const base = tinyTokenizer();
const json = (v: unknown) => JSON.stringify(v);
const withTokenizer = (patch: Record<string, unknown>) => json({ ...base.tokenizer, ...patch });
const withTemplate = (chat_template: unknown) => json({ ...base.config, chat_template });
const split = (regex: string) => ({ type: 'Split', pattern: { Regex: regex }, behavior: 'Isolated', invert: false });
const replace = (regex: string) => ({ type: 'Replace', pattern: { Regex: regex }, content: '' });
const sea = 'the sea is salty';

/** A case of files that do not load (no recovery check: nothing was running). */
const broken = (what: string, file: Case['file'], files: { json?: string; config?: string }): Case => ({
  what,
  json: json(base.tokenizer),
  config: json(base.config),
  text: sea,
  file,
  ...files,
});
/** A tokenizer.json whose regex backtracks for ever on `text`; then "b" must encode on a fresh worker. */
const stalls = (what: string, patch: Record<string, unknown>, text: string): Case => ({
  what,
  json: withTokenizer(patch),
  config: json(base.config),
  text,
  file: 'tokenizer.json',
  recover: 'b',
});
/** A chat template; after it fails, a plain encode must work (on a fresh worker when it was stopped). */
const template = (what: string, t: unknown): Case => ({
  ...broken(what, 'tokenizer_config.json', { config: withTemplate(t) }),
  recover: sea,
});
const loop = (n: number, body: string) => `{% for i in range(${n}) %}${body}{% endfor %}`;
const doubled = (n: number) => `{% set ns = namespace(s='x') %}${loop(n, '{% set ns.s = ns.s ~ ns.s %}')}{{ ns.s }}`;

function handWritten(): Case[] {
  const model = (base.tokenizer as { model: object }).model;
  return [
    { ...broken('the fixture as it is', 'tokenizer.json', {}), recover: sea },
    broken('tokenizer.json not JSON', 'tokenizer.json', { json: '{"model": {' }),
    broken('tokenizer.json null', 'tokenizer.json', { json: 'null' }),
    broken('tokenizer.json a list', 'tokenizer.json', { json: '[1, 2]' }),
    broken('tokenizer.json empty', 'tokenizer.json', { json: '' }),
    broken('unknown model type', 'tokenizer.json', { json: withTokenizer({ model: { ...model, type: 'Bogus' } }) }),
    broken('pre-tokenizer regex that does not compile', 'tokenizer.json', {
      json: withTokenizer({ pre_tokenizer: split('(a') }),
    }),
    broken('pre-tokenizer of an unknown type', 'tokenizer.json', {
      json: withTokenizer({ pre_tokenizer: { type: 'Nope' } }),
    }),
    broken('added_tokens not a list', 'tokenizer.json', { json: withTokenizer({ added_tokens: 7 }) }),
    stalls('catastrophic pre-tokenizer regex (a+)+$', { pre_tokenizer: split('(a+)+$') }, 'a'.repeat(40) + '!'),
    stalls('catastrophic normalizer regex', { normalizer: replace('(x+x+)+y') }, 'x'.repeat(40)),
    // Fuse first: a decoder's Replace runs on each token, and one token does not backtrack long
    stalls(
      'catastrophic decoder regex',
      { decoder: { type: 'Sequence', decoders: [{ type: 'Fuse' }, replace('(a+)+$')] } },
      'a'.repeat(40) + '!',
    ),
    broken('tokenizer_config.json null', 'tokenizer_config.json', { config: 'null' }),
    broken('tokenizer_config.json not JSON', 'tokenizer_config.json', { config: "{'chat_template': 1}" }),
    broken('eos_token a number', 'tokenizer_config.json', { config: json({ ...base.config, eos_token: 12 }) }),
    template('chat_template a number', 12),
    template('chat_template a list of junk', [{ name: 1 }]),
    template('no chat_template for a conversation', null),
    template('a template that does not parse', '{% for %}'),
    template('a billion-iteration loop', loop(1e9, 'x')),
    // the worker's count of loop steps stops these after a million steps, some seconds of jinja's
    // interpreter (more on a busy machine): a time limit far above that, so that the count, not the
    // time limit, is seen to end them
    { ...template('nested loops of 10^10', loop(100000, loop(100000, 'x'))), callMs: 45_000 },
    {
      ...template(
        'a loop calling a macro that loops, 10^10',
        `{% macro m() %}${loop(100000, 'x')}{% endmacro %}${loop(100000, '{{ m() }}')}`,
      ),
      callMs: 45_000,
    },
    template('a macro calling itself', '{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}'),
    template('recursion through a macro passed to itself', '{% macro f(g) %}{{ g(g) }}{% endmacro %}{{ f(f) }}'),
    template('printing 4 MB in a loop', `{% set s = 'xxxxxxxxxx' %}${loop(100000, '{{ s }}{{ s }}{{ s }}{{ s }}')}`),
    template('a string doubled 27 times (128 Mi characters)', doubled(27)),
    template('a string doubled 40 times', doubled(40)),
    template('raise_exception', "{{ raise_exception('Conversation roles must alternate user/assistant') }}"),
    template('an undefined call', '{{ nothing_here(messages) }}'),
  ];
}

export const suite: FuzzSuite<Case> = {
  name: 'tokenizer.json and chat templates',
  caseMs: 60_000, // the backstop above every case's own time limit (45 s at most)
  cases(seed) {
    const r = rng(seed);
    const cases = handWritten();
    for (let i = 0; i < 16; i++) {
      const m = mutateJson(base.tokenizer, r);
      cases.push(broken(`tokenizer.json, ${m.path} mutated`, 'tokenizer.json', { json: json(m.value) }));
    }
    for (let i = 0; i < 12; i++) {
      const m = mutateJson(base.config, r);
      cases.push(
        broken(`tokenizer_config.json, ${m.path} mutated`, 'tokenizer_config.json', { config: json(m.value) }),
      );
    }
    return cases;
  },
  mentions: (c) => `${WHERE}${c.file}`,
  async run(c) {
    const files = { 'tokenizer.json': c.json, 'tokenizer_config.json': c.config };
    const limits = { ...LIMITS, callMs: c.callMs ?? LIMITS.callMs };
    const tok = await TokenizerClient.create(spawn, files, { where: WHERE, vocabSize: base.vocabSize, limits });
    try {
      const ids = await tok.encode(c.text);
      const conversation = [{ role: 'user', content: c.text }];
      const rendered = await tok.apply_chat_template(conversation, { add_generation_prompt: true });
      await tok.encode(rendered, { add_special_tokens: false });
      await tok.decode(ids);
    } catch (e) {
      if (c.recover !== undefined && e instanceof TokenizerError) {
        // the next call, on a fresh worker, works; if not, a non-Error, which the harness counts as raw
        const again = await tok.encode(c.recover).catch((e2: Error) => e2);
        const first = (e as Error).message.slice(0, 120);
        if (!Array.isArray(again)) throw `after "${first}", the next call failed: ${again.message}`;
      }
      throw e;
    } finally {
      tok.close();
    }
  },
};

export const main = fuzzMain(suite);
