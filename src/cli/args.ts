// Command-line flags as `trl sft` (HfArgumentParser) takes them: `--name value` or
// `--name=value`; booleans `--flag true|false` (a bare `--flag` is true); lists space-separated
// (`--lora_target_modules q_proj v_proj`), commas accepted too. Each command declares its
// flags once, with their defaults and a line of help; anything else is refused by name.

/**
 * Flags `trl sft` takes that this tool refuses, each with why: what it does here instead, or
 * that it is not built. Anything else unknown is refused with the nearest flag's name.
 */
export const NOT_HERE: Record<string, string> = {
  dataset_streaming: 'data is read lazily already (Parquet a row group at a time, JSON lines streamed)',
  eos_token: "the tokenizer's own EOS token ends every text and completion",
  padding_free:
    'batches are always padding-free here: sequences end to end, attention kept inside each, the losses a padded ' +
    'batch gives',
  pad_to_multiple_of: 'nothing is padded here, so there is nothing to round up',
  eval_packing: 'evaluation data is packed as the training data is (TRL with eval_packing unset)',
  bf16: 'this tool computes in float32 (4-bit NF4 weights dequantized in the kernels); half precision is not offered',
  fp16: 'this tool computes in float32 (4-bit NF4 weights dequantized in the kernels); half precision is not offered',
  dtype: 'this tool computes in float32 (4-bit NF4 weights dequantized in the kernels); half precision is not offered',
  attn_implementation: 'attention is one fused WGSL kernel (what sdpa and flash attention compute); there is no choice',
  trust_remote_code: 'no code from a repo runs here: the supported architectures are built into this tool',
  use_dora: 'DoRA is not built: LoRA only',
  lora_modules_to_save: 'training whole copies of modules (modules_to_save) is not built: LoRA on linear layers only',
  lora_task_type: 'the task is always CAUSAL_LM',
  optim: "the optimizer is AdamW as transformers' adamw_torch computes it; no other is built",
  report_to: 'logs go to stderr, or stdout as JSON lines with --json true, and into trainer_state.json',
  datasets: 'mixtures of several data sets are not built: give one with dataset_name',
};

export type FlagType = 'string' | 'number' | 'int' | 'bool' | 'list';

export interface FlagSpec {
  type: FlagType;
  default?: string | number | boolean | string[] | null;
  /** For strings: the accepted values. */
  choices?: readonly string[];
  required?: boolean;
  /** A config file's null (TRL's None) is taken, though the default is a value: max_length's "no limit". */
  nullable?: boolean;
  help: string;
}

export type FlagSpecs = Record<string, FlagSpec>;
export type FlagValues = Record<string, string | number | boolean | string[] | null>;

export class UsageError extends Error {
  override name = 'UsageError';
}

/**
 * The flags of argv, over the defaults, over `config`'s values where a --config file gave them
 * (each as the words a command line would have: see ./config-file.ts).
 */
export function parseFlags(
  argv: string[],
  specs: FlagSpecs,
  command: string,
  config: Record<string, string[] | null> | null = null,
): FlagValues {
  const values: FlagValues = {};
  for (const [k, s] of Object.entries(specs)) values[k] = s.default ?? null;
  for (const [key, words] of Object.entries(config ?? {})) {
    const name = key.replace(/-/g, '_');
    const spec = specs[name];
    if (!spec && name in NOT_HERE)
      throw new UsageError(
        `the config file's ${name} is a setting of trl sft that this tool does not take: ${NOT_HERE[name]}`,
      );
    if (!spec)
      throw new UsageError(
        `the config file's ${name} is not a setting of ${command}` +
          `${suggest(name, Object.keys(specs))}; see \`finetune ${command} --help\``,
      );
    if (words === null) {
      if (spec.default !== null && spec.default !== undefined && !spec.nullable)
        throw new UsageError(`the config file's ${name} is empty (None): give it a value; ${spec.help}`);
      values[name] = null;
      continue;
    }
    if (spec.type !== 'list' && words.length !== 1)
      throw new UsageError(`the config file's ${name} is a list: it takes one value (${spec.help})`);
    values[name] = convert(name, spec, words);
  }
  const given = new Set<string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith('--')) throw new UsageError(`unexpected argument "${arg}": flags are written --name value`);
    let [name, inline] = splitOnce(arg.slice(2), '=');
    name = name.replace(/-/g, '_'); // --max-steps is accepted as --max_steps, as HfArgumentParser does
    const spec = specs[name];
    if (!spec && name in NOT_HERE)
      throw new UsageError(`--${name} is a flag of trl sft that this tool does not take: ${NOT_HERE[name]}`);
    if (!spec)
      throw new UsageError(
        `${command} has no flag --${name}${suggest(name, Object.keys(specs))}; see \`finetune ${command} --help\``,
      );
    if (given.has(name)) throw new UsageError(`--${name} is given twice`);
    given.add(name);
    // the flag's raw words: the inline value, or the following words up to the next flag
    const words: string[] = [];
    if (inline !== undefined) words.push(inline);
    else {
      const takesMany = spec.type === 'list';
      while (i + 1 < argv.length && !argv[i + 1].startsWith('--') && (takesMany || words.length === 0))
        words.push(argv[++i]);
    }
    values[name] = convert(name, spec, words);
  }
  for (const [k, s] of Object.entries(specs)) {
    if (s.required && (values[k] === null || values[k] === ''))
      throw new UsageError(`${command} needs --${k}: ${s.help}`);
  }
  return values;
}

function convert(name: string, spec: FlagSpec, words: string[]): FlagValues[string] {
  if (spec.type === 'bool') {
    if (words.length === 0) return true;
    const w = words[0].toLowerCase();
    if (['true', 'yes', '1'].includes(w)) return true;
    if (['false', 'no', '0'].includes(w)) return false;
    throw new UsageError(`--${name} takes true or false, not "${words[0]}"`);
  }
  if (spec.type === 'list') {
    const items = words
      .flatMap((w) => w.split(','))
      .map((w) => w.trim())
      .filter(Boolean);
    if (items.length === 0) throw new UsageError(`--${name} needs at least one value`);
    return items;
  }
  if (words.length === 0) throw new UsageError(`--${name} needs a value`);
  const w = words[0];
  if (spec.type === 'string') {
    if (spec.choices && !spec.choices.includes(w))
      throw new UsageError(`--${name} is one of ${spec.choices.join(', ')}, not "${w}"`);
    return w;
  }
  const x = Number(w);
  if (w.trim() === '' || !Number.isFinite(x)) throw new UsageError(`--${name} takes a number, not "${w}"`);
  if (spec.type === 'int' && !Number.isInteger(x)) throw new UsageError(`--${name} takes a whole number, not "${w}"`);
  return x;
}

function splitOnce(s: string, sep: string): [string, string | undefined] {
  const i = s.indexOf(sep);
  return i < 0 ? [s, undefined] : [s.slice(0, i), s.slice(i + 1)];
}

/** " (did you mean --x?)" for a near miss. */
function suggest(name: string, known: string[]): string {
  let best = '',
    bestD = Infinity;
  for (const k of known) {
    const d = editDistance(name, k);
    if (d < bestD) [best, bestD] = [k, d];
  }
  return bestD <= Math.max(2, name.length / 4) ? ` (did you mean --${best}?)` : '';
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++)
      cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length];
}

export function helpText(command: string, summary: string, specs: FlagSpecs): string {
  const rows = Object.entries(specs).map(([k, s]) => {
    const d = s.required
      ? 'required'
      : s.default === null || s.default === undefined
        ? ''
        : `default ${Array.isArray(s.default) ? s.default.join(' ') : s.default}`;
    const kind = s.choices
      ? s.choices.join('|')
      : s.type === 'bool'
        ? 'true|false'
        : s.type === 'list'
          ? 'A B ...'
          : s.type;
    return `  --${k} ${kind}\n      ${s.help}${d ? ` (${d})` : ''}`;
  });
  return `finetune ${command}: ${summary}\n\n${rows.join('\n')}\n`;
}
