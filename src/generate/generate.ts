// Text generation with a KV cache, as transformers' generate() runs it: the prompt goes through
// the network once, then one token at a time, each choosing the next by ./sampling.ts, until an
// end-of-sequence token or the length limit. num_return_sequences draws independent sequences.
import type { CausalLM } from '../model/causal-lm';
import { ConfigError } from '../model/config';
import { checkSampling, nextToken, type SamplingSettings } from './sampling';

export interface GenerateSettings extends SamplingSettings {
  /** New tokens at most; takes precedence over max_length, as in transformers. */
  max_new_tokens?: number;
  /** Prompt plus new tokens at most (transformers' default: 20). */
  max_length?: number;
  num_return_sequences: number;
  seed: number;
  /** Generation stops after any of these (the model's eos_token_id by default). */
  eos_token_id?: number[];
}

/** mulberry32: a small seeded generator, so a seed gives the same draws everywhere. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * transformers' GenerationConfig.validate: several sequences need sampling (or beams, which we do
 * not have), since greedy decoding would return the same sequence each time.
 */
export function checkReturnSequences(s: Pick<GenerateSettings, 'do_sample' | 'num_return_sequences'>): void {
  const n = s.num_return_sequences;
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`num_return_sequences must be an integer ≥ 1, got ${n}`);
  if (!s.do_sample && n > 1)
    throw new Error(
      `Greedy methods without beam search do not support \`num_return_sequences\` different than 1 (got ${n}): ` +
        'set do_sample true to draw several sequences',
    );
}

/** The new token ids of each returned sequence (prompt excluded); `stop()` true ends one after its last token. */
export async function generate(
  model: CausalLM,
  prompt: number[],
  s: GenerateSettings,
  onToken?: (sequence: number, id: number) => void,
  stop?: () => boolean,
): Promise<number[][]> {
  checkSampling(s);
  checkReturnSequences(s);
  if (prompt.length === 0) throw new Error('the prompt is empty: give at least one token (e.g. the BOS token)');
  const maxNew = s.max_new_tokens ?? Math.max(0, (s.max_length ?? 20) - prompt.length);
  if (!Number.isSafeInteger(maxNew) || maxNew < 0) {
    throw new Error(`max_new_tokens must be an integer ≥ 0, got ${maxNew}`);
  }
  // the KV cache and the RoPE table hold max_position_embeddings positions: never read past them
  const positions = model.config.maxPositions;
  if (prompt.length + maxNew > positions) {
    throw new ConfigError(
      `the prompt (${prompt.length} tokens) plus max_new_tokens (${maxNew}) is ${prompt.length + maxNew} positions, ` +
        `beyond this ` +
        `model's max_position_embeddings of ${positions} (config.json): shorten the prompt or lower max_new_tokens`,
    );
  }
  const eos = new Set(s.eos_token_id ?? model.config.eosTokenIds);
  const random = seededRandom(s.seed);
  const out: number[][] = [];
  for (let n = 0; n < s.num_return_sequences; n++) {
    if (maxNew === 0) {
      out.push([]);
      continue;
    }
    const cache = model.newCache(prompt.length + maxNew);
    const seen = [...prompt];
    const generated: number[] = [];
    try {
      let logits = model.decode(prompt, cache);
      while (generated.length < maxNew) {
        const row = await model.gpu.read(logits);
        logits.release();
        const id = nextToken(row, seen, s, random);
        generated.push(id);
        seen.push(id);
        onToken?.(n, id);
        // stop() true ends the sequence here, as a stopping criterion does (the page's Stop button)
        if (stop?.() || eos.has(id) || generated.length === maxNew) break;
        logits = model.decode([id], cache);
      }
    } finally {
      model.releaseCache(cache);
    }
    out.push(generated);
  }
  return out;
}
