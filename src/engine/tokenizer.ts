// The tokenizer of a stored model, through @huggingface/transformers: its files are served from
// the store (transformers.js' custom cache), so loading it fetches nothing.
import { AutoTokenizer, env, type PreTrainedTokenizer } from '@huggingface/transformers';
import type { ModelStore } from '../store/model-store';

export type Tokenizer = PreTrainedTokenizer;

export async function storeTokenizer(store: ModelStore, id: string): Promise<Tokenizer> {
  const files = new Map<string, string>();
  for (const name of ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'config.json']) {
    const text = await store.get<string>(`file:${name}`);
    if (text !== undefined) files.set(name, text);
  }
  env.allowLocalModels = false;
  env.useBrowserCache = false;
  env.useCustomCache = true;
  env.customCache = {
    // transformers.js asks by URL or path; the file name is what identifies it here
    async match(request: string) {
      const text = files.get(request.slice(request.lastIndexOf('/') + 1));
      return text === undefined ? undefined : new Response(text, { headers: { 'Content-Type': 'application/json' } });
    },
    async put() {},
  };
  return AutoTokenizer.from_pretrained(id);
}
