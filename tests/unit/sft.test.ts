// TRL's SFT data preparation, token by token: every format (text, prompt/completion, chat
// messages, chat prompt/completion, pre-tokenized), the completion-only and assistant-only
// masks, truncation, and both packing modes, against layouts computed by hand with a tokenizer
// whose ids can be read off the text (one id per character). Then the same with the real
// transformers.js tokenizer and a Jinja chat template with a system prompt.
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { hostBatch } from '../../src/data/batches';
import { prepareData, type PrepareSettings } from '../../src/data/prepare';
import { SkipCounts, type Row } from '../../src/data/read';
import {
  SFT_DEFAULTS,
  holdOut,
  lengthHistogram,
  packBfd,
  packingStats,
  paddingSaved,
  padToken,
  rowCharLimit,
  sequenceLengths,
  toBlocks,
  tokenizeRows,
  type Example,
  type Message,
  type SftDataSettings,
  type TextTokenizer,
  dropUntrainable,
  NO_TARGET_LEFT,
} from '../../src/data/sft';
import { localTokenizer } from '../../src/node/local-data';
import { writeTinyCheckpoint } from '../fixtures/tiny-checkpoint';
import { freshSeed, rng } from '../reference/random';

/**
 * BOS is 0 and EOS 1 (written "<s>" and "</s>"); every other character is its code. A chat
 * template in the usual shape: BOS, then "[role]content</s>" per message, and "[assistant]"
 * as the generation prompt; an assistant's "content</s>" is its generation block. Asynchronous,
 * as the real tokenizer (in its worker) is.
 */
const tok = {
  eos_token: '</s>',
  eos_token_id: 1,
  encode: async (text: string, o: { add_special_tokens?: boolean } = {}) => encodeChars(text, o),
  async apply_chat_template(messages: Message[], o: { add_generation_prompt?: boolean }): Promise<string> {
    const turns = messages.map((m) => `[${m.role}]${m.content}</s>`).join('');
    return `<s>${turns}${o.add_generation_prompt ? '[assistant]' : ''}`;
  },
  async generation_spans(messages: Message[]) {
    let text = '<s>';
    const spans: [number, number][] = [];
    for (const m of messages) {
      text += `[${m.role}]`;
      if (m.role === 'assistant') spans.push([text.length, text.length + m.content.length + 4]);
      text += `${m.content}</s>`;
    }
    return { text, spans };
  },
};

function encodeChars(text: string, o: { add_special_tokens?: boolean } = {}): number[] {
  const ids = o.add_special_tokens === false ? [] : [0];
  for (const piece of text.split(/(<s>|<\/s>)/)) {
    if (piece === '<s>') ids.push(0);
    else if (piece === '</s>') ids.push(1);
    else ids.push(...[...piece].map((c) => c.charCodeAt(0)));
  }
  return ids;
}
const ids = (text: string) => encodeChars(text, { add_special_tokens: false });
const masked = (text: string) => ids(text).map(() => -100);

async function* each<T>(xs: T[]): AsyncGenerator<T> {
  yield* xs;
}

async function prepare(rows: Row[], s: Partial<SftDataSettings> = {}, tokenizer: TextTokenizer = tok) {
  const settings = { ...SFT_DEFAULTS, ...s };
  const skipped = new SkipCounts();
  const { examples, kind } = await tokenizeRows(each(rows), tokenizer, settings, skipped, 1000);
  const kept = dropUntrainable(examples, settings, skipped);
  return { examples: kept, kind, blocks: toBlocks(kept, settings), skipped };
}

describe('formats, as TRL tokenizes them', () => {
  it('text: special tokens, then EOS appended unless the text ends with it', async () => {
    const { kind, blocks } = await prepare([{ text: 'ab' }, { text: 'cd</s>' }]);
    expect(kind).toBe('text');
    expect(blocks.map((b) => b.input_ids)).toEqual([
      [0, ...ids('ab'), 1],
      [0, ...ids('cd'), 1],
    ]);
    expect(blocks.map((b) => b.labels)).toEqual(blocks.map((b) => b.input_ids)); // every token a target
  });

  it('prompt/completion: loss on the completion and its EOS only, unless completion_only_loss is false', async () => {
    const rows = [{ prompt: 'Q: hi ', completion: 'yo' }];
    const { kind, blocks } = await prepare(rows);
    expect(kind).toBe('prompt_completion');
    expect(blocks[0].input_ids).toEqual([0, ...ids('Q: hi yo'), 1]);
    expect(blocks[0].labels).toEqual([-100, ...masked('Q: hi '), ...ids('yo'), 1]);
    const all = await prepare(rows, { completion_only_loss: false });
    expect(all.blocks[0].labels).toEqual(all.blocks[0].input_ids);
  });

  it(
    'messages: rendered by the chat template (system prompt included), ' +
      'the loss on every turn or on the assistant’s only',
    async () => {
      const messages = [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'Hi' },
        { role: 'assistant', content: 'Hello' },
        { role: 'user', content: 'Bye' },
        { role: 'assistant', content: 'Ciao' },
      ];
      const { kind, blocks } = await prepare([{ messages }]);
      expect(kind).toBe('messages');
      const text = '<s>[system]Be brief.</s>[user]Hi</s>[assistant]Hello</s>[user]Bye</s>[assistant]Ciao</s>';
      expect(blocks[0].input_ids).toEqual(ids(text)); // no BOS beyond the template's own
      expect(blocks[0].labels).toEqual(blocks[0].input_ids);
      const only = await prepare([{ messages }], { assistant_only_loss: true });
      expect(only.blocks[0].labels).toEqual([
        ...masked('<s>[system]Be brief.</s>[user]Hi</s>[assistant]'),
        ...ids('Hello</s>'),
        ...masked('[user]Bye</s>[assistant]'),
        ...ids('Ciao</s>'),
      ]);
    },
  );

  it("ShareGPT turns as TRL's maybe_convert_to_chatml leaves them; messages keep their fields; tools", async () => {
    // from → role (human and gpt kept), value → content, other fields kept; the template sees them
    const seen: { messages: Message[]; tools?: unknown[] }[] = [];
    const recording = {
      ...tok,
      apply_chat_template(messages: Message[], o: { add_generation_prompt?: boolean; tools?: unknown[] }) {
        seen.push({ messages, ...(o.tools ? { tools: o.tools } : {}) });
        return tok.apply_chat_template(messages, o);
      },
    };
    const sharegpt = await prepare(
      [
        {
          conversations: [
            { from: 'human', value: 'Hi' },
            { from: 'gpt', value: 'Yo', weight: 1 },
          ],
        },
      ],
      {},
      recording,
    );
    expect(sharegpt.kind).toBe('messages');
    expect(seen[0].messages).toEqual([
      { role: 'human', content: 'Hi' },
      { role: 'gpt', content: 'Yo', weight: 1 },
    ]);
    expect(sharegpt.blocks[0].input_ids).toEqual(ids('<s>[human]Hi</s>[gpt]Yo</s>'));
    // an assistant's tool call (content null) and a tool's reply keep their fields; a tools column,
    // JSON text or a list, goes to the template as apply_chat_template(tools=…)
    seen.length = 0;
    const call = { type: 'function', function: { name: 'time', arguments: { zone: 'UTC' } } };
    const tools = [{ type: 'function', function: { name: 'time', parameters: { type: 'object' } } }];
    const rows = [
      {
        messages: [
          { role: 'user', content: 'When?' },
          { role: 'assistant', content: null, tool_calls: [call] },
          { role: 'tool', name: 'time', content: '12:00' },
          { role: 'assistant', content: 'Noon.', reasoning_content: 'read the tool' },
        ],
        tools: JSON.stringify(tools),
      },
    ];
    const chat = await prepare(rows, {}, recording);
    expect(chat.skipped.total).toBe(0);
    expect(seen[0]).toEqual({
      messages: [
        { role: 'user', content: 'When?' },
        { role: 'assistant', content: '', tool_calls: [call] },
        { role: 'tool', name: 'time', content: '12:00' },
        { role: 'assistant', content: 'Noon.', reasoning_content: 'read the tool' },
      ],
      tools,
    });
    // with assistant_only_loss, ShareGPT's gpt turns are not assistant turns (TRL raises on such rows)
    const gpt = await prepare(
      [
        {
          conversations: [
            { from: 'human', value: 'Hi' },
            { from: 'gpt', value: 'Yo' },
          ],
        },
      ],
      {
        assistant_only_loss: true,
      },
    ).catch((e: Error) => e);
    expect(String(gpt)).toMatch(/without an assistant turn/);
    const { examples, skipped } = await prepare(
      [
        { messages: [{ role: 'user', content: 'a' }] },
        {
          messages: [
            { role: 'user', content: 'b' },
            { role: 'assistant', content: 'c' },
          ],
        },
      ],
      { assistant_only_loss: true },
    );
    expect(examples.length).toBe(1);
    expect(Object.fromEntries(skipped.reasons)).toEqual({
      'conversations without an assistant turn (assistant_only_loss trains on those only)': 1,
    });
  });

  it('pre-tokenized rows as TRL builds their labels: masks, or a labels column as it is', async () => {
    // completion_mask under completion_only_loss; assistant_masks whenever present; both multiply
    const { blocks, skipped } = await prepare(
      [
        { input_ids: [5, 6, 7, 8], completion_mask: [0, 0, 1, 1], assistant_masks: [0, 1, 1, 0] },
        { input_ids: [5, 6], completion_mask: [1] },
      ],
      { completion_only_loss: true },
    );
    expect(blocks.map((b) => b.labels)).toEqual([[-100, -100, 7, -100]]);
    expect(skipped.total).toBe(1);
    // completion_only_loss defaults on only for prompt/completion rows: an input_ids row's mask is not used
    const only = await prepare([{ input_ids: [5, 6, 7, 8], completion_mask: [0, 0, 1, 1] }]);
    expect(only.blocks[0].labels).toEqual([5, 6, 7, 8]);
    // assistant_masks apply without assistant_only_loss (the collator uses any it is given)
    const assistant = await prepare([{ input_ids: [5, 6, 7, 8], assistant_masks: [0, 1, 1, 0] }]);
    expect(assistant.blocks[0].labels).toEqual([-100, 6, 7, -100]);
    // a labels column is used as it is, its row's masks unused; packing keeps it (select_columns input_ids, labels)
    const rows = [{ input_ids: [5, 6, 7, 8], labels: [-100, 6, -100, 9], assistant_masks: [1, 1, 1, 0] }];
    expect((await prepare(rows)).blocks[0].labels).toEqual([-100, 6, -100, 9]);
    const packed = await prepare(rows, { packing: true, packing_strategy: 'bfd', max_length: 8 });
    expect(packed.blocks[0].labels).toEqual([-100, 6, -100, 9]);
    const bad = await prepare([...rows, { input_ids: [5, 6], labels: [5, -1] }]);
    expect(Object.fromEntries(bad.skipped.reasons)).toEqual({
      'rows whose labels is not one token id (or −100) per token': 1,
    });
  });

  it('conversational prompt/completion: the prompt with the generation prompt, loss on the completion', async () => {
    const { kind, blocks } = await prepare([
      { prompt: [{ role: 'user', content: 'Hi' }], completion: [{ role: 'assistant', content: 'Yo' }] },
    ]);
    expect(kind).toBe('chat_prompt_completion');
    expect(blocks[0].input_ids).toEqual(ids('<s>[user]Hi</s>[assistant]Yo</s>'));
    expect(blocks[0].labels).toEqual([...masked('<s>[user]Hi</s>[assistant]'), ...ids('Yo</s>')]);
  });

  it('input_ids rows are used as they are', async () => {
    const { kind, blocks } = await prepare([{ input_ids: [5, 6, 7] }, { input_ids: [8n, 9n] }]);
    expect(kind).toBe('tokens');
    expect(blocks.map((b) => b.input_ids)).toEqual([
      [5, 6, 7],
      [8, 9],
    ]);
  });

  it('skips and counts malformed rows of each format, and names the columns it reads when none fits', async () => {
    const { examples, skipped } = await prepare([
      { prompt: 'a', completion: 'b' },
      { prompt: 'a' },
      { prompt: 3, completion: 'b' },
      { prompt: 'a', completion: '' },
    ]);
    // TRL keeps an empty completion: it trains on the EOS that add_eos appends
    expect(examples.map((e) => e.input_ids)).toEqual([
      [0, ...ids('ab'), 1],
      [0, ...ids('a'), 1],
    ]);
    expect(examples[1].mask).toEqual([0, 0, 1]);
    expect(Object.fromEntries(skipped.reasons)).toEqual({
      'rows without a "completion" field': 1,
      'rows whose "prompt" is not a string': 1,
    });
    const chats = await prepare([
      { messages: [{ role: 'user', content: 'x' }] },
      { messages: 'hi' },
      { messages: [{ role: 'user' }] },
      { messages: [] },
    ]);
    expect(chats.examples.length).toBe(1);
    expect(Object.fromEntries(chats.skipped.reasons)).toEqual({
      'rows whose "messages" is not a list of {role, content} messages': 3,
    });
    await expect(prepare([{ question: 'a', answer: 'b' }])).rejects.toThrow(
      /none of the columns SFT reads \(its columns: question, answer\)/,
    );
    await expect(prepare([{ text: null }, { text: 7 }])).rejects.toThrow(
      'no usable rows: all 2 rows were skipped (1 rows without a "text" field, 1 rows whose "text" is not a string). ' +
        'Set --dataset_text_field',
    );
    // an empty text is kept, as TRL keeps it: BOS and the EOS add_eos appends
    expect((await prepare([{ text: '' }])).examples.map((e) => e.input_ids)).toEqual([[0, 1]]);
    await expect(prepare([{ prompt: 'a', completion: 3 }])).rejects.toThrow(
      /no usable rows: all 1 rows were skipped \(1 rows whose "completion" is not a string\)\.$/,
    );
  });
});

describe('sequences: truncation and packing', () => {
  // lengths 5, 3, 4, 3, 6 (BOS and EOS included), each example its own letter
  const rows = ['aaa', 'b', 'cc', 'd', 'eeee'].map((text) => ({ text }));
  const [a, b, c, d, e] = [...'abcde'].map((ch) => ch.charCodeAt(0));

  it('without packing, truncates each example to max_length, keeping its start (masks too)', async () => {
    const { blocks } = await prepare(rows, { max_length: 4 });
    expect(blocks.map((x) => x.input_ids)).toEqual([
      [0, a, a, a],
      [0, b, 1],
      [0, c, c, 1],
      [0, d, 1],
      [0, e, e, e],
    ]);
    const pc = await prepare([{ prompt: 'pp', completion: 'qq' }], { max_length: 4 });
    expect(pc.blocks[0].labels).toEqual([-100, -100, -100, 'q'.charCodeAt(0)]);
    // an example left with no label is dropped and counted, as TRL drops it after truncating
    const cut = await prepare(
      [
        { prompt: 'ppp', completion: 'qq' },
        { prompt: 'p', completion: 'q' },
      ],
      { max_length: 4 },
    );
    expect(cut.blocks.map((x) => x.input_ids)).toEqual([[0, ...ids('pq'), 1]]);
    expect(Object.fromEntries(cut.skipped.reasons)).toEqual({ [NO_TARGET_LEFT]: 1 });
    // packing keeps it: pack_dataset drops nothing; nor is anything dropped without a max_length
    const kept = await prepare([{ prompt: 'ppp', completion: 'qq' }], { max_length: 4, packing: true });
    expect(kept.blocks.length).toBe(1);
    const unlabelled = [{ input_ids: [5, 6], labels: [-100, -100] }];
    expect((await prepare(unlabelled, { max_length: null })).blocks.length).toBe(1);
    expect((await prepare(unlabelled, { max_length: 4 })).blocks.length).toBe(0);
    // TRL's collator with truncation_mode keep_end: the last max_length tokens, masks with them
    const end = await prepare(rows, { max_length: 4, truncation_mode: 'keep_end' });
    expect(end.blocks.map((x) => x.input_ids)).toEqual([
      [a, a, a, 1],
      [0, b, 1],
      [0, c, c, 1],
      [0, d, 1],
      [e, e, e, 1],
    ]);
    const pcEnd = await prepare([{ prompt: 'pp', completion: 'qq' }], { max_length: 4, truncation_mode: 'keep_end' });
    expect(pcEnd.blocks[0].input_ids).toEqual([...ids('pqq'), 1]);
    expect(pcEnd.blocks[0].labels).toEqual([-100, ...ids('qq'), 1]);
  });

  it('wrapped: every example end to end, cut into blocks of max_length, one sequence each', async () => {
    const { blocks } = await prepare(rows, { packing: true, packing_strategy: 'wrapped', max_length: 8 });
    expect(blocks.map((x) => x.input_ids)).toEqual([
      [0, a, a, a, 1, 0, b, 1],
      [0, c, c, 1, 0, d, 1, 0],
      [e, e, e, e, 1],
    ]);
    for (const x of blocks) expect(x.position_ids).toEqual(x.input_ids.map((_, t) => t));
  });

  it('bfd: longest first, each into the fullest bin it fits, positions restarting per sequence', async () => {
    // lengths: aaa 5, b 3, cc 4, d 3, eeee 6 → bins of 8: [eeee 6] [aaa 5, b 3] [cc 4, d 3]
    const { blocks } = await prepare(rows, { packing: true, packing_strategy: 'bfd', max_length: 8 });
    expect(blocks.map((x) => x.input_ids)).toEqual([
      [0, e, e, e, e, 1],
      [0, a, a, a, 1, 0, b, 1],
      [0, c, c, 1, 0, d, 1],
    ]);
    expect(blocks.map((x) => x.position_ids)).toEqual([
      [0, 1, 2, 3, 4, 5],
      [0, 1, 2, 3, 4, 0, 1, 2],
      [0, 1, 2, 3, 0, 1, 2],
    ]);
    expect(blocks.map(sequenceLengths)).toEqual([[6], [5, 3], [4, 3]]);
    // the batch: labels shifted inside each sequence, attention starting at each sequence
    const h = hostBatch([blocks[1]]);
    expect([...h.labels]).toEqual([a, a, a, 1, -100, b, 1, -100]);
    expect([...h.start]).toEqual([0, 0, 0, 0, 0, 5, 5, 5]);
  });

  it('bfd is best fit, not first fit, and fills bins as a plain search over every bin does', () => {
    const of = (lengths: number[]) => lengths.map((n, i) => ({ input_ids: new Array<number>(n).fill(i) }));
    // first fit would give [8, 1] [6, 4] [5, 4]
    expect(packBfd(of([8, 6, 5, 4, 4, 1]), 10).map(sequenceLengths)).toEqual([[8], [6, 4], [5, 4, 1]]);
    // against the obvious O(examples × bins) search, on random lengths: the same bin fills
    const seed = freshSeed();
    const r = rng(seed);
    for (let trial = 0; trial < 20; trial++) {
      const L = 2 + Math.floor(r() * 60);
      const lengths = Array.from({ length: 1 + Math.floor(r() * 80) }, () => 1 + Math.floor(r() * L));
      const fills: number[] = [];
      for (const n of [...lengths].sort((x, y) => y - x)) {
        let best = -1;
        fills.forEach((u, b) => {
          if (u + n <= L && (best < 0 || u > fills[best])) best = b;
        });
        if (best < 0) fills.push(n);
        else fills[best] += n;
      }
      const got = packBfd(of(lengths), L).map((b) => b.input_ids.length);
      expect(
        got.sort((x, y) => x - y),
        `seed ${seed}, trial ${trial}`,
      ).toEqual(fills.sort((x, y) => x - y));
    }
  });

  it("bfd and bfd_split give trl.pack_dataset's docstring examples", () => {
    // trl/data_utils.py, pack_dataset: input_ids [[1..5], [6, 7], [8, 9, 10], [11]] at seq_length 4
    const of = (ids: number[][]) => ids.map((input_ids) => ({ input_ids }));
    const examples = of([[1, 2, 3, 4, 5], [6, 7], [8, 9, 10], [11]]);
    const bfd = packBfd(examples, 4);
    expect(bfd.map((x) => x.input_ids)).toEqual([
      [1, 2, 3, 4],
      [8, 9, 10, 11],
      [6, 7],
    ]);
    expect(bfd.map(sequenceLengths)).toEqual([[4], [3, 1], [2]]);
    const split = packBfd(examples, 4, 'split');
    expect(split.map((x) => x.input_ids)).toEqual([
      [1, 2, 3, 4],
      [8, 9, 10, 5],
      [6, 7, 11],
    ]);
    expect(split.map(sequenceLengths)).toEqual([[4], [3, 1], [2, 1]]);
    // empty examples are dropped before packing, as TRL filters them
    expect(packBfd(of([[], [1, 2]]), 4).map((x) => x.input_ids)).toEqual([[1, 2]]);
  });

  it('bfd puts an example into the oldest of equally full bins, as TRL pops its deque from the left', () => {
    const of = (lengths: number[]) => lengths.map((n, i) => ({ input_ids: new Array<number>(n).fill(i) }));
    // two bins of 6 at length 10, then one of 3: it goes to the first bin, not the second
    expect(packBfd(of([6, 6, 3]), 10).map((x) => x.input_ids)).toEqual([
      [0, 0, 0, 0, 0, 0, 2, 2, 2],
      [1, 1, 1, 1, 1, 1],
    ]);
  });

  it('packs in batches of 1000 examples, as pack_dataset runs inside datasets.map(batched=True)', () => {
    const of = (count: number, n: number) => Array.from({ length: count }, () => ({ input_ids: new Array(n).fill(5) }));
    const s = { ...SFT_DEFAULTS, packing: true, max_length: 1024 };
    // wrapped: 3000 × 100 tokens; each batch of 1000 is 100,000 tokens, 98 blocks (the last short): 294, not 293
    const wrapped = toBlocks(of(3000, 100), { ...s, packing_strategy: 'wrapped' });
    expect(wrapped.length).toBe(3 * Math.ceil(100_000 / 1024));
    expect(wrapped.filter((b) => b.input_ids.length < 1024).map((b) => b.input_ids.length)).toEqual([
      100_000 % 1024,
      100_000 % 1024,
      100_000 % 1024,
    ]);
    // bfd: 1001 examples of 3 at length 10: 334 bins for the first 1000 (3 a bin), 1 for the last
    expect(toBlocks(of(1001, 3), { ...s, max_length: 10, packing_strategy: 'bfd' }).length).toBe(335);
  });

  it('bfd truncates an example longer than a block, and packs masks with their tokens', async () => {
    const blocks = packBfd(
      [
        { input_ids: [1, 2, 3], mask: [0, 1, 1] },
        { input_ids: [4, 5], mask: [1, 0] },
      ],
      5,
    );
    expect(blocks).toEqual([
      { input_ids: [1, 2, 3, 4, 5], labels: [-100, 2, 3, 4, -100], position_ids: [0, 1, 2, 0, 1] },
    ]);
    const { blocks: cut } = await prepare([{ text: 'abcdefghij' }], {
      packing: true,
      packing_strategy: 'bfd',
      max_length: 4,
    });
    expect(cut.map((x) => x.input_ids)).toEqual([[0, a, b, c]]);
  });

  it('counts what packing saves: blocks, padding, truncation and targets', async () => {
    const s = { ...SFT_DEFAULTS, packing: true, packing_strategy: 'bfd' as const, max_length: 8 };
    const { examples, blocks } = await prepare(rows, s);
    const stats = packingStats(examples, blocks, s, 2);
    // unpacked, batches of two padded to their longest: [5,3]→10 [4,3]→8 [6]→6; bfd: no padding, 21
    expect(stats).toEqual({
      examples: 5,
      tokens: 21,
      keptTokens: 21,
      truncated: 0,
      blocks: 3,
      targets: 16,
      paddedUnpacked: 24,
      unpackedTokens: 21,
      paddedPacked: 21,
    });
    expect(paddingSaved(stats)).toEqual({ unpacked: 3, packed: 0, unpackedShare: 3 / 24, packedShare: 0, saved: 3 });
    // wrapped blocks [8, 8] [5] padded per batch of two: 16 + 5
    const w = { ...s, packing_strategy: 'wrapped' as const };
    expect(packingStats(examples, toBlocks(examples, w), w, 2).paddedPacked).toBe(21);
    const short = { ...s, max_length: 4 }; // aaa (5) and eeee (6) lose their ends
    // unpacked [4,3] [4,3] [4] → 8 + 8 + 4 = 20 for 18 tokens
    expect(packingStats(examples, toBlocks(examples, short), short, 2)).toMatchObject({
      truncated: 2,
      keptTokens: 18,
      unpackedTokens: 18,
      paddedUnpacked: 20,
    });
    expect(lengthHistogram([1, 2, 2, 9], 3)).toEqual({ start: 1, width: 3, counts: [3, 0, 1] });
    expect(lengthHistogram([7, 7], 20)).toEqual({ start: 7, width: 1, counts: [2] });
  });

  it('refuses evaluation data with nothing to evaluate, before any training', async () => {
    const file = (rows: object[]) => ({
      name: 'x.jsonl',
      blob: new Blob([rows.map((r) => JSON.stringify(r)).join('\n')]),
    });
    const settings = {
      ...SFT_DEFAULTS,
      max_length: 4,
      dataset_train_split: 'train' as const,
      dataset_test_split: 'test' as const,
      evaluate: true,
      test_size: null,
      seed: 1,
      batch: 2,
    };
    const splits = {
      train: [file([{ prompt: 'a', completion: 'b' }])],
      test: [file([{ prompt: 'a long prompt', completion: 'b' }])],
    };
    await expect(prepareData(splits, tok, settings)).rejects.toThrow(
      /the evaluation data \(the "test" split\) has no token with a loss target/,
    );
    const ok = await prepareData(
      {
        ...splits,
        test: [
          file([
            { prompt: 'a', completion: 'b' },
            { prompt: 'c', completion: 'd' },
          ]),
        ],
      },
      tok,
      settings,
    );
    expect(ok.eval?.blocks.length).toBe(2);
    expect(ok.rows).toBe(1); // the training split's
  });

  it('holds out a seeded fraction for evaluation', () => {
    const items = Array.from({ length: 10 }, (_, i) => i);
    const { train, test } = holdOut(items, 0.2, rng(7));
    expect(test.length).toBe(2);
    expect([...train, ...test].sort((x, y) => x - y)).toEqual(items);
    expect(holdOut(items, 0.2, rng(7))).toEqual({ train, test });
    expect(() => holdOut([1], 0.5, rng(1))).toThrow(/leaves none to train on/);
  });

  it('shuffle_dataset: the examples shuffled by the seed before packing, the blocks after', async () => {
    const texts = Array.from({ length: 12 }, (_, i) => ({ text: String.fromCharCode(97 + i).repeat(1 + (i % 3)) }));
    const file = { name: 'x.jsonl', blob: new Blob([texts.map((r) => JSON.stringify(r)).join('\n')]) };
    const prep = (o: Partial<PrepareSettings>) =>
      prepareData({ train: [file] }, tok, {
        ...SFT_DEFAULTS,
        max_length: 8,
        dataset_train_split: 'train',
        dataset_test_split: 'test',
        evaluate: false,
        test_size: null,
        seed: 3,
        batch: 2,
        ...o,
      });
    const ids = async (o: Partial<PrepareSettings>) => (await prep(o)).train.blocks.map((b) => b.input_ids);
    // without packing: the same blocks, in the seed's order
    const plain = await ids({});
    const mixed = await ids({ shuffle_dataset: true });
    expect(mixed).not.toEqual(plain);
    expect([...mixed].sort()).toEqual([...plain].sort());
    expect(await ids({ shuffle_dataset: true })).toEqual(mixed); // the seed decides
    expect(await ids({ shuffle_dataset: true, seed: 4 })).not.toEqual(mixed);
    // wrapped packing: the examples are shuffled before they are laid end to end, so the blocks
    // themselves differ (not only their order), holding the same tokens
    const wrapped = { packing: true, packing_strategy: 'wrapped' as const };
    const packed = await ids(wrapped);
    const shuffledPacked = await ids({ ...wrapped, shuffle_dataset: true });
    const asSet = (blocks: number[][]) => blocks.map((b) => b.join(',')).sort();
    expect(asSet(shuffledPacked)).not.toEqual(asSet(packed));
    expect(shuffledPacked.flat().sort()).toEqual(packed.flat().sort());
  });
});

describe('with the real tokenizer and its Jinja chat template', () => {
  it('renders a conversation with a system prompt and masks all but the assistant turns', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sft-'));
    await writeTinyCheckpoint(dir, 'llama');
    const tokenizer = await localTokenizer(dir);
    const messages = [
      { role: 'system', content: 'You are terse.' },
      { role: 'user', content: 'the sea' },
      { role: 'assistant', content: 'is salty' },
    ];
    const settings = { ...SFT_DEFAULTS, assistant_only_loss: true };
    const { examples } = await tokenizeRows(each([{ messages }]), tokenizer, settings, new SkipCounts());
    const [example] = examples as Example[];
    const rendered = await tokenizer.apply_chat_template(messages);
    expect(rendered).toBe('<s>### system:\nYou are terse.</s>\n### user:\nthe sea</s>\n### assistant:\nis salty</s>\n');
    expect(example.input_ids).toEqual(await tokenizer.encode(rendered, { add_special_tokens: false }));
    const target = example.input_ids.filter((_, t) => example.mask![t]);
    expect(await tokenizer.decode(target, { skip_special_tokens: false })).toBe('is salty</s>\n');
    // no pad token of its own: EOS, as the worked example sets
    expect(padToken(tokenizer)).toEqual({ token: '</s>', id: 1, from: 'eos' });
    expect(padToken({ ...tok, pad_token: '<pad>', pad_token_id: 7 })).toEqual({
      token: '<pad>',
      id: 7,
      from: 'tokenizer',
    });
    tokenizer.close();
  });
});

describe('rows in flight, and rows too long to tokenize', () => {
  it('keeps the rows’ order when the tokenizer answers out of order', async () => {
    const seed = freshSeed();
    const r = rng(seed);
    const shuffled = {
      ...tok,
      encode: (text: string, o?: { add_special_tokens?: boolean }) =>
        new Promise<number[]>((done) => setTimeout(() => done(encodeChars(text, o)), Math.floor(r() * 5))),
    };
    const texts = Array.from({ length: 600 }, (_, i) => `row ${i}`);
    const skipped = new SkipCounts();
    const rows = [...texts.map((text) => ({ text })), { text: 7 }];
    const { examples } = await tokenizeRows(each(rows), shuffled, SFT_DEFAULTS, skipped);
    expect(
      examples.map((e) => e.input_ids),
      `seed ${seed}`,
    ).toEqual(texts.map((t) => [0, ...ids(t), 1]));
    expect(skipped.total).toBe(1);
  });

  it('skips and counts a row over max(64 Ki, 32 × max_length) characters, untokenized (a 6 MB row)', async () => {
    expect([rowCharLimit(512), rowCharLimit(4096), rowCharLimit(null)]).toEqual([65536, 131072, 1 << 20]);
    const longest: number[] = [];
    const recording = {
      ...tok,
      encode: (text: string, o?: { add_special_tokens?: boolean }) => {
        longest.push(text.length);
        return tok.encode(text, o);
      },
    };
    const huge = 'a'.repeat(6 << 20);
    const rows = [{ text: 'ab' }, { text: huge }, { text: 'x'.repeat(65_537) }, { text: 'c'.repeat(65_000) }];
    const { examples, skipped } = await prepare(rows, { max_length: 512 }, recording);
    expect(examples.map((e) => e.input_ids.length)).toEqual([4, 65_002]); // BOS + text + EOS
    expect(Math.max(...longest)).toBe(65_000 + '</s>'.length);
    const why = 'rows longer than 65536 characters (too long to tokenize for max_length 512)';
    expect(Object.fromEntries(skipped.reasons)).toEqual({ [why]: 2 });
    // conversations count their contents; the real tokenizer's worker never sees the 6 MB
    const dir = await mkdtemp(join(tmpdir(), 'sft-'));
    await writeTinyCheckpoint(dir, 'llama');
    const tokenizer = await localTokenizer(dir);
    const chatRows = [{ messages: [{ role: 'user', content: huge }] }, { messages: [{ role: 'user', content: 'hi' }] }];
    const chats = await tokenizeRows(each(chatRows), tokenizer, { ...SFT_DEFAULTS, max_length: 512 }, new SkipCounts());
    expect(chats.examples.length).toBe(1);
    tokenizer.close();
  });
});
