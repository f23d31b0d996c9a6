// The README.md model card beside an adapter, with the metadata PEFT's save_pretrained writes
// at its top (library_name peft, base_model, pipeline_tag, the adapter tags), so the Hub lists
// the adapter under its base model; below it, what a reader needs to trust and reuse it: the
// base model, the data, the settings, the final losses and the loss curve.

export interface ModelCardInfo {
  base_model: string;
  /** A Hub data set id or a local file or folder's name. */
  dataset: string;
  /** Whether `dataset` is a Hub id: a local `data/train.jsonl` has the same shape as one. */
  datasetOnHub: boolean;
  /** Every setting of the run, by its transformers / TRL / PEFT name. */
  settings: Record<string, string | number | boolean | null | string[]>;
  global_step: number;
  train_loss: number;
  /** The last evaluation, when the run evaluated. */
  eval_loss?: number | null;
  /** What trained it: the command line or the page. */
  trainedWith: string;
  /** The adapter the training started from, in words, when it did not start fresh. */
  startedFrom?: string;
  /** The data in numbers, in words (rows, examples, tokens), where it is known. */
  dataNote?: string;
  /** transformers' log_history: its losses make the card's loss curve. */
  history?: Record<string, number>[];
}

/** Rows of the loss curve (and one per evaluation): a long run's curve is sampled evenly, its last log kept. */
export const CURVE_ROWS = 20;

/** The loss curve as a table: each logged step's training loss and evaluation loss, sampled. */
function lossCurve(history: Record<string, number>[]): string {
  const byStep = new Map<number, { loss?: number; eval_loss?: number }>();
  for (const h of history) {
    if (!('loss' in h) && !('eval_loss' in h)) continue;
    const row = byStep.get(h.step) ?? {};
    if ('loss' in h) row.loss = h.loss;
    if ('eval_loss' in h) row.eval_loss = h.eval_loss;
    byStep.set(h.step, row);
  }
  const steps = [...byStep.keys()].sort((a, b) => a - b);
  if (steps.length === 0) return '';
  const n = Math.min(CURVE_ROWS, steps.length);
  // evenly spaced indices from the first log to the last
  // and every evaluation's step, so no eval_loss is sampled away
  const evals = steps.filter((s) => byStep.get(s)!.eval_loss !== undefined);
  const even = Array.from({ length: n }, (_, i) => steps[Math.round((i * (steps.length - 1)) / Math.max(1, n - 1))]);
  const picked = [...new Set([...even, ...evals])].sort((a, b) => a - b);
  const cell = (v: number | undefined) => (v === undefined ? '' : v.toFixed(4));
  const rows = picked.map((s) => `| ${s} | ${cell(byStep.get(s)!.loss)} | ${cell(byStep.get(s)!.eval_loss)} |`);
  const sampled = picked.length < steps.length ? ` (${picked.length} of the ${steps.length} logged steps)` : '';
  return `\n## Loss curve${sampled}\n\n| step | loss | eval_loss |\n|---|---|---|\n${rows.join('\n')}\n`;
}

const yamlString = (s: string) => JSON.stringify(s); // JSON's quoting is valid YAML

export function modelCard(c: ModelCardInfo): string {
  const front = [
    '---',
    `base_model: ${yamlString(c.base_model)}`,
    'library_name: peft',
    'pipeline_tag: text-generation',
    'tags:',
    `- ${yamlString(`base_model:adapter:${c.base_model}`)}`,
    '- lora',
    '- qlora',
    '- sft',
    '- transformers',
    ...(c.datasetOnHub ? ['datasets:', `- ${yamlString(c.dataset)}`] : []),
    '---',
  ];
  const value = (v: ModelCardInfo['settings'][string]) =>
    v === null ? 'unset' : Array.isArray(v) ? v.join(' ') : String(v);
  const settings = Object.entries(c.settings)
    .map(([k, v]) => `| ${k} | ${value(v).replace(/\|/g, '\\|')} |`)
    .join('\n');
  const losses = [`| train_loss (mean over all steps) | ${c.train_loss.toFixed(4)} |`];
  if (c.eval_loss !== undefined && c.eval_loss !== null)
    losses.push(`| eval_loss (last) | ${c.eval_loss.toFixed(4)} |`);
  const data = c.datasetOnHub ? `[${c.dataset}](https://huggingface.co/datasets/${c.dataset})` : `\`${c.dataset}\``;
  return `${front.join('\n')}

# LoRA adapter for ${c.base_model}

A LoRA adapter trained with QLoRA (the base model's linear weights in 4-bit NF4) on
${data}${c.dataNote ? ` (${c.dataNote})` : ''}, with ${c.trainedWith}.${
    c.startedFrom ? `\nIt trained on from ${c.startedFrom}; the results below are this training's.` : ''
  }
It loads with PEFT as any adapter does:

\`\`\`python
from peft import AutoPeftModelForCausalLM
model = AutoPeftModelForCausalLM.from_pretrained("path/to/this/folder")
\`\`\`

## Results

${c.global_step} optimizer steps.

| | |
|---|---|
${losses.join('\n')}
${c.history ? lossCurve(c.history) : ''}
## Settings

| setting | value |
|---|---|
${settings}
`;
}
