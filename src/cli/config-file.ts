// `--config file.yaml`, as `trl sft` reads it (TrlParser.parse_args_and_config): a YAML mapping of
// the same names as the flags, whose values replace the defaults; flags on the command line win
// over it. An `env:` mapping is set in the environment first (HF_TOKEN, HF_HUB_OFFLINE …). A key
// that names no flag is refused, as TRL refuses unknown arguments from a config file.
import { readFile } from 'node:fs/promises';
import { parse } from 'yaml';
import { UsageError } from './args';

/** What a config file gives: each key's value as command-line words, for the flag's own parsing; null: None. */
export type ConfigWords = Record<string, string[] | null>;

/**
 * Takes `--config PATH` (or `--config=PATH`) out of argv, reads the file, sets its `env:` in the
 * environment, and returns the rest of argv with the file's values as words.
 */
export async function takeConfig(
  argv: string[],
  env: Record<string, string | undefined> = process.env,
): Promise<{ argv: string[]; config: ConfigWords | null; path: string | null }> {
  const at = argv.findIndex((a) => a === '--config' || a.startsWith('--config='));
  if (at < 0) return { argv, config: null, path: null };
  const inline = argv[at].startsWith('--config=') ? argv[at].slice('--config='.length) : null;
  const path = inline ?? argv[at + 1];
  if (!path || path.startsWith('--')) throw new UsageError('--config needs the path of a YAML file');
  const rest = [...argv.slice(0, at), ...argv.slice(at + (inline === null ? 2 : 1))];
  if (rest.some((a) => a === '--config' || a.startsWith('--config='))) throw new UsageError('--config is given twice');
  const text = await readFile(path, 'utf8').catch((e: NodeJS.ErrnoException) => {
    throw new UsageError(`--config ${path}: ${e.code === 'ENOENT' ? 'there is no such file' : e.message}`);
  });
  return { argv: rest, config: configWords(text, path, env), path };
}

/** The file's keys as flag words; `env:` goes into `env`. */
export function configWords(text: string, path: string, env: Record<string, string | undefined>): ConfigWords {
  let doc: unknown;
  try {
    doc = parse(text);
  } catch (e) {
    throw new UsageError(`--config ${path} is not YAML (${(e as Error).message.split('\n')[0]})`);
  }
  if (doc === null || doc === undefined) return {};
  if (!isMapping(doc)) throw new UsageError(`--config ${path} must hold a mapping of flag names to values`);
  const { env: vars, ...rest } = doc;
  if (vars !== undefined) {
    if (!isMapping(vars)) throw new UsageError(`--config ${path}: "env" must be a mapping of variables to values`);
    for (const [k, v] of Object.entries(vars)) env[k] = String(v);
  }
  const words: ConfigWords = {};
  for (const [k, v] of Object.entries(rest)) {
    // an empty value is None, as TRL reads it (parseFlags takes it where the setting may be unset)
    if (v === null) words[k] = null;
    else if (Array.isArray(v)) words[k] = v.map((x) => scalar(k, x, path));
    // a mapping (lr_scheduler_kwargs) is the JSON the flag takes
    else words[k] = [isMapping(v) ? JSON.stringify(v) : scalar(k, v, path)];
  }
  return words;
}

function scalar(key: string, v: unknown, path: string): string {
  if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return String(v);
  throw new UsageError(`--config ${path}: "${key}" holds ${JSON.stringify(v)}, not a value a flag takes`);
}

const isMapping = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
