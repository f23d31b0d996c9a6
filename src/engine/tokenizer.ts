// The tokenizer of a stored model: its files read from the store and handed to a tokenizer
// worker (./tokenizer-client.ts). Nothing is fetched: transformers.js' from_pretrained, which
// asked the Hub whether a file exists even with the files in a custom cache, is not used.
import type { ChatTemplateKwargs, Message } from '../data/sft';
import type { ModelStore } from '../store/model-store';
import {
  TokenizerClient,
  TokenizerError,
  type SpawnTokenizerWorker,
  type TokenizerFiles,
  type TokenizerOptions,
} from './tokenizer-client';

export type Tokenizer = TokenizerClient;

export async function storeTokenizer(
  store: ModelStore,
  id: string,
  spawn: SpawnTokenizerWorker,
  o: TokenizerOptions = {},
): Promise<Tokenizer> {
  const json = await store.get<string>('file:tokenizer.json');
  if (typeof json !== 'string') {
    throw new TokenizerError(`${id}: no tokenizer.json in the store; download the model again`);
  }
  const files: TokenizerFiles = { 'tokenizer.json': json };
  // optional: models stored before chat_template.jinja was downloaded have their template in tokenizer_config.json
  for (const name of ['tokenizer_config.json', 'chat_template.jinja'] as const) {
    const text = await store.get<string>(`file:${name}`);
    if (typeof text === 'string') files[name] = text;
  }
  return TokenizerClient.create(spawn, files, { where: `${id}: `, ...o });
}

/**
 * A user's message, or a whole conversation, as a chat model's prompt: rendered by the chat
 * template with its generation prompt, then tokenized without adding special tokens (the template
 * has them), as transformers' apply_chat_template(messages, add_generation_prompt=True, **kwargs)
 * gives it. `kwargs`: the template's variables (`enable_thinking`); absent, its defaults.
 */
export async function chatPrompt(
  tokenizer: Tokenizer,
  conversation: string | Message[],
  kwargs?: ChatTemplateKwargs,
): Promise<{ text: string; ids: number[] }> {
  if (!tokenizer.hasChatTemplate) {
    throw new TokenizerError(
      'this model has no chat template (no chat_template.jinja, and none in ' +
        'tokenizer_config.json): give the prompt as plain text instead',
    );
  }
  const messages = typeof conversation === 'string' ? [{ role: 'user', content: conversation }] : conversation;
  const o = { add_generation_prompt: true, ...(kwargs ? { chat_template_kwargs: kwargs } : {}) };
  const text = await tokenizer.apply_chat_template(messages, o);
  return { text, ids: await tokenizer.encode(text, { add_special_tokens: false }) };
}
