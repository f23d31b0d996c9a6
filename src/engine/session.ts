// One loaded model and its adapter: what the command line, the page's worker and the tests
// drive. It loads a checkpoint, attaches a fresh LoRA adapter or a PEFT one, evaluates,
// generates, and exports the adapter in PEFT's files; ./training-run.ts trains it.
import type { Gpu } from '../gpu/runtime';
import { hostBatch, microBatches, releaseBatch, uploadBatch } from '../data/batches';
import type { Block } from '../data/sft';
import type { LoraConfig } from '../formats/peft';
import { AdapterError, parseAdapterConfig, readAdapterSafetensors } from '../formats/peft';
import { generate, seededRandom, type GenerateSettings } from '../generate/generate';
import { adaptedModules, exportAdapter, writeAdapter } from '../model/adapter';
import { ConfigError, type ModelConfig } from '../model/config';
import { adapterWeightsBound } from '../model/estimate';
import type { CausalLM } from '../model/causal-lm';
import { buildModel, loadCheckpoint, type CheckpointFiles, type LoadedModel, type LoadSettings } from '../model/load';
import { attachLora, type LoraLinear, type LoraSet } from '../model/lora-linear';
import { microMetrics } from '../train/trainer';
import { describeTargets, selectTargets, TargetError, type TargetModules } from '../model/target-modules';

/** An evaluation: transformers' eval_loss, TRL's metrics, and what was evaluated. */
export interface EvalResult {
  eval_loss: number;
  entropy: number;
  mean_token_accuracy: number;
  tokens: number;
  samples: number;
  batches: number;
}

export interface LoraSettings {
  r: number;
  lora_alpha: number;
  lora_dropout: number;
  /** PEFT module names (q_proj, ...), or one regular expression over module paths, or 'all-linear'. */
  target_modules: TargetModules;
  use_rslora: boolean;
}

export interface SessionLoadSettings extends LoadSettings {
  /** The base model's id or path, written into the adapter's config. */
  name: string;
  revision?: string | null;
}

export class Session {
  lora: LoraSet | null = null;
  private loraConfig: LoraSettings | null = null;

  private constructor(
    readonly gpu: Gpu,
    readonly name: string,
    readonly revision: string | null,
    readonly model: CausalLM,
    readonly linears: LoraLinear[],
  ) {}

  static async load(
    gpu: Gpu,
    files: CheckpointFiles,
    s: SessionLoadSettings,
    onTensor?: (name: string) => void,
  ): Promise<Session> {
    return Session.fromLoaded(gpu, await loadCheckpoint(gpu, files, s, onTensor), s.name, s.revision ?? null);
  }

  /** A model already on the GPU (from the page's store). */
  static fromLoaded(gpu: Gpu, loaded: LoadedModel, name: string, revision: string | null): Session {
    const session = new Session(gpu, name, revision, buildModel(gpu, loaded), loaded.linears);
    gpu.trim(); // the loader's staging (f32 bands of weights on their way to NF4) is not needed again
    return session;
  }

  /** Frees every GPU buffer of the model and its adapter. */
  release(): void {
    this.releaseLora();
    for (const t of this.model.weightTensors()) t.release();
    for (const t of this.model.ropeTensors()) t.release();
  }

  get config(): ModelConfig {
    return this.model.config;
  }

  /** The attached adapter's settings (a loaded adapter's, from its config). */
  get loraSettings(): LoraSettings | null {
    return this.loraConfig;
  }

  /** A fresh adapter, initialised as PEFT does (A uniform, B zero) from `seed`. */
  attachLora(s: LoraSettings, seed: number): void {
    if (this.lora) throw new AdapterError('this model already has an adapter');
    checkLora(s);
    const targets = this.targets(s.target_modules);
    this.lora = attachLora(this.gpu, targets, {
      r: s.r,
      alpha: s.lora_alpha,
      dropout: s.lora_dropout,
      useRslora: s.use_rslora,
      random: seededRandom(seed),
    });
    this.loraConfig = s;
  }

  /**
   * A PEFT adapter (adapter_config.json + adapter_model.safetensors), to use or train on.
   * `replace` swaps it for the current one, which stays if the files do not fit this model.
   */
  loadAdapter(files: { config: string; weights: Uint8Array }, o: { replace?: boolean } = {}): LoraConfig {
    const configParsed = parseAdapterConfig(files.config);
    const s: LoraSettings = {
      r: configParsed.r,
      lora_alpha: configParsed.lora_alpha,
      lora_dropout: configParsed.lora_dropout,
      target_modules: configParsed.target_modules,
      use_rslora: configParsed.use_rslora,
    };
    let targets: LoraLinear[];
    try {
      targets = this.targets(s.target_modules);
    } catch (e) {
      throw new AdapterError(`adapter_config.json: ${(e as Error).message}: was it made for another model?`);
    }
    const bound = this.adapterWeightsBound(s);
    if (files.weights.length > bound) {
      throw new AdapterError(
        `adapter_model.safetensors is ${files.weights.length} bytes; ` +
          `r ${configParsed.r} on ${describeTargets(configParsed.target_modules)} ` +
          `of this model needs at most ${bound}: it was made for another base model`,
      );
    }
    // every shape is checked against the config's r and this model's layers before a buffer is made
    const layers = readAdapterSafetensors(files.weights, s.r, adaptedModules(targets));
    const old =
      o.replace && this.lora
        ? { set: this.lora, config: this.loraConfig, params: this.lora.modules.map((m) => [m, m.lora] as const) }
        : null;
    if (old) {
      for (const m of old.set.modules) m.lora = null;
      this.lora = null;
    }
    try {
      this.attachLora(s, 0);
      writeAdapter(this.gpu, this.lora!, configParsed, layers);
    } catch (e) {
      this.releaseLora();
      if (old) {
        for (const [m, p] of old.params) m.lora = p;
        [this.lora, this.loraConfig] = [old.set, old.config];
      }
      throw e;
    }
    if (old) {
      old.set.params.release();
      old.set.grads.release();
    }
    return configParsed;
  }

  /** Generation and evaluation with or without the adapter; training always uses it. */
  setAdapterEnabled(on: boolean): void {
    for (const m of this.linears) m.adapterOn = on;
  }

  /**
   * The most bytes a PEFT adapter_model.safetensors can hold for this model with `c`'s rank and
   * modules (all linear layers' worth where `c` selects none: loading it then says why).
   */
  adapterWeightsBound(c: Pick<LoraConfig, 'r' | 'target_modules'>): number {
    let names: string[] | 'all-linear' = 'all-linear';
    try {
      names = [...new Set(this.targets(c.target_modules).map((m) => m.path.slice(m.path.lastIndexOf('.') + 1)))];
    } catch {}
    return adapterWeightsBound(this.config, c.r, names);
  }

  /** The linear layers `t` selects, as PEFT selects them (src/model/target-modules.ts). */
  private targets(t: TargetModules): LoraLinear[] {
    try {
      const paths = new Set(
        selectTargets(
          t,
          this.linears.map((m) => m.path),
          this.config.linearModules,
        ),
      );
      return this.linears.filter((m) => paths.has(m.path));
    } catch (e) {
      throw e instanceof TargetError ? new AdapterError(e.message) : e;
    }
  }

  /**
   * The evaluation loss as transformers' Trainer reports it: each batch's mean token loss,
   * weighted by the batch's number of sequences (`loss.repeat(batch_size)`, then the mean), so
   * it depends on the batch size as Python's does. A batch with no label is passed over (there
   * its mean is 0 / 0). With it, TRL's `entropy` and `mean_token_accuracy`: their mean over the
   * batches. `tokens`: the labelled tokens evaluated; `samples`, `batches`: those evaluated.
   */
  async evaluate(blocks: Block[], batchSize = 1, onProgress?: (done: number) => void): Promise<EvalResult> {
    let weighted = 0,
      samples = 0,
      tokens = 0,
      entropy = 0,
      accuracy = 0,
      batches = 0;
    checkPositions(blocks, this.config, 'evaluation');
    const micros = microBatches(
      blocks,
      blocks.map((_, i) => i),
      batchSize,
    );
    for (const [i, m] of micros.entries()) {
      const h = hostBatch(m, this.config.slidingWindow, this.config.localWindow);
      if (h.counted === 0) continue;
      const b = uploadBatch(this.gpu, h);
      const T = b.ids.numel;
      // one readback: the stats [T, 2], then the losses (a view must start on a 64-float boundary,
      // which 2T may not be, so the losses are copied in rather than written there)
      const both = this.gpu.tensor([3 * T]);
      let values: Float32Array;
      try {
        const loss = this.model.tokenLosses(b, this.gpu.view(both, 0, [T, 2]));
        this.gpu.copy(loss, both, { to: 2 * T });
        loss.release();
        values = await this.gpu.read(both);
      } finally {
        both.release();
        releaseBatch(b);
      }
      let sum = 0;
      for (let t = 0; t < T; t++) sum += values[2 * T + t];
      weighted += (sum / h.counted) * m.length;
      samples += m.length;
      tokens += h.counted;
      const metrics = microMetrics(values, 0, T, h.counted);
      entropy += metrics.entropy;
      accuracy += metrics.mean_token_accuracy;
      batches++;
      onProgress?.(i + 1);
    }
    if (tokens === 0) throw new Error('there is nothing to evaluate: no token of the data set has a label');
    return {
      eval_loss: weighted / samples,
      entropy: entropy / batches,
      mean_token_accuracy: accuracy / batches,
      tokens,
      samples,
      batches,
    };
  }

  generate(
    prompt: number[],
    s: GenerateSettings,
    onToken?: (sequence: number, id: number) => void,
    stop?: () => boolean,
  ): Promise<number[][]> {
    return generate(this.model, prompt, s, onToken, stop);
  }

  /** PEFT's two files for the current adapter. */
  exportAdapter(): Promise<{ 'adapter_config.json': string; 'adapter_model.safetensors': Uint8Array }> {
    const lora = this.requireLora();
    const c = this.loraConfig!;
    return exportAdapter(this.gpu, lora, {
      base_model_name_or_path: this.name,
      revision: this.revision,
      lora_alpha: c.lora_alpha,
      lora_dropout: c.lora_dropout,
      use_rslora: c.use_rslora,
      target_modules: c.target_modules,
    });
  }

  releaseLora(): void {
    if (!this.lora) return;
    this.lora.params.release();
    this.lora.grads.release();
    for (const m of this.lora.modules) m.lora = null;
    this.lora = null;
    this.loraConfig = null;
  }

  private requireLora(): LoraSet {
    if (!this.lora) throw new AdapterError('no adapter is attached: attach a new one or load one first');
    return this.lora;
  }
}

function checkLora(s: LoraSettings): void {
  if (!(Number.isInteger(s.r) && s.r >= 1)) throw new AdapterError(`lora_r must be a positive integer, not ${s.r}`);
  if (!(s.lora_alpha > 0)) throw new AdapterError(`lora_alpha must be positive, not ${s.lora_alpha}`);
  if (!(s.lora_dropout >= 0 && s.lora_dropout < 1))
    throw new AdapterError(`lora_dropout must be in [0, 1), not ${s.lora_dropout}`);
}

/**
 * The RoPE tables hold max_position_embeddings rows (config.json): a block longer than that, or
 * a position past the table, would be read past its end on the GPU. Refused before any step.
 */
export function checkPositions(blocks: Block[], c: ModelConfig, what: string): void {
  const max = c.maxPositions;
  for (const b of blocks) {
    let top = 0;
    for (const p of b.position_ids) if (!(p <= top)) top = p; // NaN counts as past the end
    if (b.input_ids.length > max || !(top < max)) {
      throw new ConfigError(
        `max_length: a ${what} block of ${b.input_ids.length} tokens (positions up to ${top}) is beyond this model's ` +
          `max_position_embeddings of ${max} (config.json): set max_length to at most ${max}`,
      );
    }
  }
}
