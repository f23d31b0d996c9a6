// generation_config.json: the defaults transformers' generate() starts from. Where a model ships
// one, its eos_token_id (a number or a list) replaces config.json's for stopping, so an instruct
// model stops at its end-of-turn token (Qwen3-0.6B: [151645, 151643]), and its sampling fields
// are the defaults of generation (Qwen3-0.6B: do_sample, temperature 0.6, top_k 20, top_p 0.95).
// generationSettings() is the one place where the sources meet, each over the next:
//   what the user sets > generation_config.json > config.json's eos_token_id > transformers' defaults
// The file comes from strangers like the rest: it is bounded, and every field read is checked.
import type { GenerateSettings } from './generate';
import { checkSampling, SAMPLING_DEFAULTS, type SamplingSettings } from './sampling';

/** As the other small JSON files a model has (src/hub/transfer.ts, wholeFileLimit); real ones are under 1 KB. */
export const MAX_GENERATION_CONFIG_CHARS = 16 * 2 ** 20;

/** The largest token id an eos_token_id may name (no vocabulary comes near 4 Mi tokens). */
const MAX_TOKEN_ID = 2 ** 22 - 1;

export class GenerationConfigError extends Error {
  override name = 'GenerationConfigError';
}

/** What generation_config.json sets of the fields generation here reads; a field it does not set is absent. */
export interface GenerationConfig {
  eos_token_id?: number[];
  do_sample?: boolean;
  temperature?: number;
  top_k?: number;
  top_p?: number;
  repetition_penalty?: number;
  max_new_tokens?: number;
  max_length?: number;
}

const SAMPLING_FIELDS = ['do_sample', 'temperature', 'top_k', 'top_p', 'repetition_penalty'] as const;

/**
 * generation_config.json's text, checked; null (no such file) gives no defaults. `where` prefixes
 * the file's name in errors ("Qwen/Qwen3-0.6B: ", "fixtures/qwen3/"). Fields generation does not
 * read (pad_token_id, cache_implementation, transformers_version) are not looked at.
 */
export function parseGenerationConfig(text: string | null, where = ''): GenerationConfig {
  if (text === null) return {};
  const fail = (what: string) =>
    new GenerationConfigError(
      `${where}generation_config.json${what}. Fix the file ` +
        "or delete it: generation then starts from config.json's eos_token_id and transformers' defaults",
    );
  if (text.length > MAX_GENERATION_CONFIG_CHARS) {
    throw fail(` is ${text.length} characters, more than the ${MAX_GENERATION_CONFIG_CHARS} it may be`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw fail(` is not JSON (${(e as Error).message.slice(0, 200)})`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw fail(` must hold a JSON object, not ${Array.isArray(json) ? 'a list' : String(json).slice(0, 40)}`);
  }
  const c = json as Record<string, unknown>;
  const out: GenerationConfig = {};
  const shown = (v: unknown) => JSON.stringify(v)?.slice(0, 60) ?? String(v);
  // each field: absent or null leaves transformers' default; anything else must be what transformers takes
  const number = (key: keyof GenerationConfig, ok: (x: number) => boolean, allowed: string) => {
    const v = c[key];
    if (v === undefined || v === null) return;
    if (typeof v !== 'number' || !Number.isFinite(v) || !ok(v)) {
      throw fail(`: "${key}" must be ${allowed}, not ${shown(v)}`);
    }
    (out as Record<string, unknown>)[key] = v;
  };
  if (c.do_sample !== undefined && c.do_sample !== null) {
    if (typeof c.do_sample !== 'boolean') throw fail(`: "do_sample" must be true or false, not ${shown(c.do_sample)}`);
    out.do_sample = c.do_sample;
  }
  // 0 is allowed where sampling is off: transformers only reads temperature and top_p when it samples
  number('temperature', (x) => x >= 0, 'a number ≥ 0');
  number('top_k', (x) => Number.isInteger(x) && x >= 0, 'a whole number ≥ 0 (0: no top-k)');
  number('top_p', (x) => x >= 0 && x <= 1, 'a number from 0 to 1');
  number('repetition_penalty', (x) => x > 0, 'a number > 0 (1: no penalty)');
  number('max_new_tokens', (x) => Number.isSafeInteger(x) && x >= 1, 'a whole number ≥ 1');
  number('max_length', (x) => Number.isSafeInteger(x) && x >= 1, 'a whole number ≥ 1');
  const eos = c.eos_token_id;
  if (eos !== undefined && eos !== null) {
    const ids = Array.isArray(eos) ? eos : [eos];
    const isId = (x: unknown) => typeof x === 'number' && Number.isInteger(x) && x >= 0 && x <= MAX_TOKEN_ID;
    if (ids.length > 1024 || !ids.every(isId)) {
      throw fail(`: "eos_token_id" must be a token id or a list of token ids (whole numbers ≥ 0), not ${shown(eos)}`);
    }
    out.eos_token_id = ids as number[];
  }
  return out;
}

/** What a user asks for; a field unset (absent or null) comes from the model's defaults. */
export type GenerationRequest = { [K in keyof GenerateSettings]?: GenerateSettings[K] | null };

/**
 * The settings generation runs with: each field the user's where set, else generation_config.json's,
 * else (eos_token_id) config.json's, else transformers' GenerationConfig default. The length limit
 * is one setting: a user's max_new_tokens or max_length replaces both of the file's (transformers
 * would let the file's max_new_tokens outrank a user's max_length, with a warning).
 */
export function generationSettings(
  user: GenerationRequest,
  file: GenerationConfig,
  config: { eosTokenIds: number[] },
): GenerateSettings {
  const pick = <K extends keyof SamplingSettings>(k: K): SamplingSettings[K] =>
    (user[k] ?? file[k] ?? SAMPLING_DEFAULTS[k]) as SamplingSettings[K];
  const sampling: SamplingSettings = {
    do_sample: pick('do_sample'),
    temperature: pick('temperature'),
    top_k: pick('top_k'),
    top_p: pick('top_p'),
    repetition_penalty: pick('repetition_penalty'),
  };
  const userLength = user.max_new_tokens != null || user.max_length != null;
  const length = userLength ? user : file;
  const s: GenerateSettings = {
    ...sampling,
    ...(length.max_new_tokens != null ? { max_new_tokens: length.max_new_tokens } : {}),
    ...(length.max_length != null ? { max_length: length.max_length } : {}),
    num_return_sequences: user.num_return_sequences ?? 1,
    seed: user.seed ?? 0,
    eos_token_id: user.eos_token_id ?? file.eos_token_id ?? config.eosTokenIds,
  };
  try {
    checkSampling(s);
  } catch (e) {
    // a value the file gave that sampling cannot use (temperature 0 with sampling on): say where it came from
    const fromFile = SAMPLING_FIELDS.filter((k) => user[k] == null && file[k] !== undefined);
    if (fromFile.length === 0) throw e;
    const given = fromFile.map((k) => `${k} ${file[k]}`).join(', ');
    throw new GenerationConfigError(
      `${(e as Error).message} (generation_config.json sets ${given}): ` +
        'set the value yourself, or turn sampling off',
    );
  }
  return s;
}

/** The fields generation_config.json set, in its order of importance: what the page and the command line name. */
export function fieldsSet(file: GenerationConfig): (keyof GenerationConfig)[] {
  const order: (keyof GenerationConfig)[] = [...SAMPLING_FIELDS, 'max_new_tokens', 'max_length', 'eos_token_id'];
  return order.filter((k) => file[k] !== undefined);
}

/** The settings in a line: "sampling (temperature 0.6, top-k 20, top-p 0.95); at most 64 new tokens; stops at …". */
export function describeGeneration(s: GenerateSettings): string {
  const how = s.do_sample
    ? `sampling (temperature ${s.temperature}, top-k ${s.top_k || 'off'}, top-p ${s.top_p})`
    : 'greedy';
  const penalty = s.repetition_penalty !== 1 ? `, repetition penalty ${s.repetition_penalty}` : '';
  const length =
    s.max_new_tokens !== undefined
      ? `at most ${s.max_new_tokens} new tokens`
      : `at most ${s.max_length ?? 20} tokens with the prompt`;
  const eos = s.eos_token_id?.length ? `stops at token ${s.eos_token_id.join(' or ')}` : 'no end-of-sequence token';
  return `${how}${penalty}; ${length}; ${eos}`;
}
