// The README.md model card beside an adapter, with the metadata PEFT's save_pretrained writes
// at its top (library_name peft, base_model, pipeline_tag, the adapter tags), so the Hub lists
// the adapter under its base model; below it, what a reader needs to trust and reuse it: the
// base model, the data, the settings and the final losses.

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
${data}, with ${c.trainedWith}.
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

## Settings

| setting | value |
|---|---|
${settings}
`;
}
