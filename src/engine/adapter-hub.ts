// A LoRA adapter to and from the Hub: PEFT's two files read from a model repo (one trained with
// the Python stack, say), and the adapter pushed to the user's own repo with a model card made
// from the run that trained it (src/formats/model-card.ts).
import { MAX_ADAPTER_CONFIG_BYTES, MAX_ADAPTER_WEIGHTS_BYTES } from '../formats/adapter-zip';
import { modelCard, type ModelCardInfo } from '../formats/model-card';
import { fileUrl, HubError, repoSnapshot, type HubOptions } from '../hub/hub';
import { fetchWhole } from '../hub/transfer';
import type { RunRecord } from '../store/run-store';
import { isBuiltIn } from '../hub/built-in';

export const ADAPTER_CONFIG = 'adapter_config.json';
export const ADAPTER_WEIGHTS = 'adapter_model.safetensors';

/** PEFT's two files from a Hub repo, each checked against the listing's size and SHA-256. */
export async function fetchAdapter(
  repo: string,
  hub: HubOptions,
): Promise<{ files: { config: string; weights: Uint8Array }; commit: string }> {
  const snapshot = await repoSnapshot(repo, 'model', hub);
  const find = (path: string) => snapshot.files.find((f) => f.path === path);
  const config = find(ADAPTER_CONFIG);
  const weights = find(ADAPTER_WEIGHTS);
  if (!config || !weights) {
    const old = find('adapter_model.bin');
    throw new HubError(
      `${repo} has no ${config ? ADAPTER_WEIGHTS : ADAPTER_CONFIG} at its top level: ` +
        (old && config
          ? 'its weights are in the old pickle format (adapter_model.bin), which is not read here: ' +
            'save it again with safe_serialization=True'
          : `a PEFT adapter repo holds ${ADAPTER_CONFIG} and ${ADAPTER_WEIGHTS}; check the id`),
    );
  }
  const read = (f: typeof config, limit: number) => fetchWhole(fileUrl(snapshot, f.path, hub), f, hub, limit);
  return {
    files: {
      config: new TextDecoder().decode(await read(config, MAX_ADAPTER_CONFIG_BYTES)),
      weights: await read(weights, MAX_ADAPTER_WEIGHTS_BYTES),
    },
    commit: snapshot.commit,
  };
}

/** The card of an adapter trained by the run `r` in the page: its settings by their TRL / PEFT names. */
export function runModelCard(r: RunRecord): string {
  const { shuffle, lr_scheduler_kwargs, ...rest } = r.settings;
  const settings: ModelCardInfo['settings'] = {
    ...rest,
    ...(lr_scheduler_kwargs ? { lr_scheduler_kwargs: JSON.stringify(lr_scheduler_kwargs) } : {}),
    ...(shuffle ? {} : { shuffle_dataset: false }),
    lora_r: r.lora.r,
    lora_alpha: r.lora.lora_alpha,
    lora_dropout: r.lora.lora_dropout,
    lora_target_modules: typeof r.lora.target_modules === 'string' ? r.lora.target_modules : [...r.lora.target_modules],
    use_rslora: r.lora.use_rslora,
  };
  const losses = r.history.filter((h) => 'loss' in h);
  const closing = r.history.find((h) => 'train_loss' in h);
  const lastEval = [...r.history].reverse().find((h) => 'eval_loss' in h);
  return modelCard({
    base_model: r.modelId,
    dataset: r.data,
    // a file chosen in the page has a name with an extension; a Hub id has none of its own; the
    // built-in demo's data is not on the Hub
    datasetOnHub:
      /^[\w.-]+\/[\w.-]+$/.test(r.data) && !/\.(jsonl?|csv|parquet|txt)$/i.test(r.data) && !isBuiltIn(r.data),
    settings,
    global_step: r.step,
    // the mean over all steps, as the Trainer's train_loss (each step is logged in the page)
    train_loss: closing?.train_loss ?? losses.reduce((s, h) => s + h.loss, 0) / Math.max(1, losses.length),
    eval_loss: lastEval?.eval_loss ?? null,
    trainedWith: 'the QLoRA on WebGPU page',
    ...(r.startedFrom ? { startedFrom: r.startedFrom } : {}),
    ...(r.dataSummary
      ? {
          dataNote:
            `${r.dataSummary.rows} rows, ${r.dataSummary.examples} examples, ${r.dataSummary.tokens} tokens ` +
            `(${r.dataSummary.targets} with a loss target) in ${r.dataSummary.blocks} blocks`,
        }
      : {}),
    history: r.history,
  });
}
