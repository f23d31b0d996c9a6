// Which linear layers an adapter adapts, as PEFT reads LoraConfig.target_modules:
//   a list   each name matches a module whose path is the name or ends with "." + the name
//            (q_proj matches model.layers.0.self_attn.q_proj; so does self_attn.q_proj);
//   a string a regular expression that must match a module's whole path (re.fullmatch), so
//            ".*\.layers\.(0|1)\..*_proj" adapts the first two layers only; "all-linear" is
//            every linear layer but the output head.
// TRL's command line turns one --lora_target_modules value into such a string. PEFT can also
// adapt the embedding and lm_head; this trainer adapts the decoder layers' linears only, and
// says so rather than train less than asked.

/** PEFT's target_modules: names, or one regular expression (or "all-linear"). */
export type TargetModules = string[] | string;

export class TargetError extends Error {}

/** What `target` names besides the decoder's linears that PEFT could adapt and we cannot. */
const UNSUPPORTED = ['lm_head', 'model.embed_tokens', 'transformer.word_embeddings'];

/**
 * The paths among `linears` (module paths, e.g. model.layers.0.self_attn.q_proj) that `target`
 * selects; a clear error where it selects nothing, names a module the model lacks, or selects a
 * module this trainer cannot adapt. `names`: the model's linear module names, for messages.
 */
export function selectTargets(target: TargetModules, linears: string[], names: string[]): string[] {
  if (target === 'all-linear') return linears;
  if (Array.isArray(target)) {
    const hits = (t: string, p: string) => p === t || p.endsWith(`.${t}`);
    for (const t of target) {
      if (UNSUPPORTED.some((p) => hits(t, p)))
        throw new TargetError(`target module "${t}" is not a decoder layer's linear layer: ${unsupported}`);
      if (!linears.some((p) => hits(t, p)))
        throw new TargetError(`target module "${t}" is not a linear layer of this model; it has ${names.join(', ')}`);
    }
    return linears.filter((p) => target.some((t) => hits(t, p)));
  }
  const re = regex(target);
  const outside = UNSUPPORTED.filter((p) => re.test(p));
  if (outside.length)
    throw new TargetError(`target_modules ${JSON.stringify(target)} matches ${outside.join(', ')}: ${unsupported}`);
  const selected = linears.filter((p) => re.test(p));
  if (selected.length === 0) {
    const hint = names.includes(target)
      ? ` A single name is a regular expression over whole paths, as PEFT reads a string (and TRL turns one ` +
        `--lora_target_modules value into one): write ".*\\.${target}", or give two or more names.`
      : '';
    throw new TargetError(
      `target_modules ${JSON.stringify(target)} matches no module of this model: PEFT matches it against whole ` +
        `module paths, such as ${linears[0]} (PEFT: "Target modules ... not found in the base model").${hint}`,
    );
  }
  return selected;
}

const unsupported = 'this trainer adapts the decoder layers’ linear layers only (not lm_head or the embedding)';

/** Python's re.fullmatch as a JavaScript RegExp; a pattern JavaScript cannot read is refused, named. */
export function regex(pattern: string): RegExp {
  try {
    return new RegExp(`^(?:${pattern})$`);
  } catch (e) {
    throw new TargetError(
      `target_modules ${JSON.stringify(pattern)} is not a regular expression this trainer can read ` +
        `(${(e as Error).message}); Python-only syntax such as (?P<name>…) has a JavaScript spelling (?<name>…)`,
    );
  }
}

/** For messages: a list as names, a regular expression quoted. */
export function describeTargets(t: TargetModules): string {
  return Array.isArray(t) ? t.join(', ') : t === 'all-linear' ? t : `/${t}/`;
}
