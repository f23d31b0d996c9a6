// What a model family gives the rest of the tool: how it reads config.json, which tensors its
// checkpoints hold (names and shapes: the one list the loader, the store and the estimate read),
// how those tensors assemble into its weights, and (BuildNetwork) its network. Shared code (CausalLM, Session,
// the loader) asks the family and the config, never tests for a family by name.
import type { Gpu } from '../gpu/runtime';
import type { HalfMatrix } from '../ops/half-matrix';
import type { HalfVector } from '../ops/norm';
import type { RopeTables } from '../ops/rope';
import type { BaseWeights, CausalLM } from './causal-lm';
import type { Fail, Fields, FamilyName, ModelConfig, RawConfig } from './config';
import type { LoraLinear } from './lora-linear';

/** A config.json of one model_type, read into the description of the network. */
export type ConfigParser = (c: RawConfig, f: Fields, fail: Fail, modelType: string) => ModelConfig;

/** A linear module of every layer: its path under the layer, and its weight's [out, in]. */
export interface LinearModule {
  path: string;
  shape: [number, number];
}

/** The tensors a loaded checkpoint offers its family's assembly, by checkpoint name. */
export interface Parts {
  vec(name: string): HalfVector;
  mat(name: string): HalfMatrix;
  /** A linear layer by module path (without .weight), its bias attached where the checkpoint has one. */
  lin(path: string): LoraLinear;
}

export interface Family<W extends BaseWeights = BaseWeights> {
  name: FamilyName;
  /** The model_type values this family reads, each with its parser. */
  configs: Record<string, ConfigParser>;
  /** Every layer's linear modules, by PEFT's module name (what target_modules names). */
  linears(c: ModelConfig): Record<string, LinearModule>;
  /** Every tensor the config implies, by checkpoint name, with its shape ([out, in] for linears). */
  tensors(c: ModelConfig): Map<string, number[]>;
  /**
   * A checkpoint's tensor name as the family reads it, or null for a tensor the language model
   * does not use (a multimodal checkpoint's vision tower). Identity where absent.
   */
  rename?(name: string, c: ModelConfig): string | null;
  /** The weights from the loaded tensors, and every LoRA-adaptable linear layer. */
  assemble(c: ModelConfig, parts: Parts): { weights: W; linears: LoraLinear[] };
}

/**
 * A family's network over its assembled weights (`ropeLocal` where the config has a local RoPE).
 * Kept apart from Family (load.ts maps each family to its network) so that what reads configs and
 * estimates sizes — the page's main thread — does not pull in the GPU code.
 */
export type BuildNetwork<W extends BaseWeights = BaseWeights> = (
  gpu: Gpu,
  c: ModelConfig,
  weights: W,
  rope: RopeTables,
  ropeLocal: RopeTables | null,
) => CausalLM<W>;

/** Names the Llama-style layout shares: a layer's tensors under `${prefix}layers.${l}.`. */
export function layerPrefix(c: ModelConfig, l: number): string {
  return `${c.prefix}layers.${l}`;
}
