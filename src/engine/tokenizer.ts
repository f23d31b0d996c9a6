// The tokenizer of a stored model: its two files read from the store and handed to a tokenizer
// worker (./tokenizer-client.ts). Nothing is fetched: transformers.js' from_pretrained, which
// asked the Hub whether a file exists even with the files in a custom cache, is not used.
import type { ModelStore } from '../store/model-store';
import { TokenizerClient, TokenizerError, type SpawnTokenizerWorker, type TokenizerOptions } from './tokenizer-client';

export type Tokenizer = TokenizerClient;

export async function storeTokenizer(
  store: ModelStore, id: string, spawn: SpawnTokenizerWorker, o: TokenizerOptions = {},
): Promise<Tokenizer> {
  const json = await store.get<string>('file:tokenizer.json');
  const config = await store.get<string>('file:tokenizer_config.json');
  if (typeof json !== 'string') {
    throw new TokenizerError(`${id}: no tokenizer.json in the store; download the model again`);
  }
  const files = { 'tokenizer.json': json, ...(typeof config === 'string' ? { 'tokenizer_config.json': config } : {}) };
  return TokenizerClient.create(spawn, files, { where: `${id}: `, ...o });
}
