// From a config.json's model_type to the family that reads it. A new model type of a known family is
// its parsing in the family's folder and one line in the family's `configs` (its index.ts); a new
// family is one line here (FAMILIES) and one in load.ts (NETWORKS).
import { showValue } from '../formats/show';
import { ConfigError, fieldReaders, type ModelConfig } from './config';
import { falconFamily } from './falcon';
import type { Family } from './family';
import { gemmaFamily } from './gemma';
import { llamaFamily } from './llama';

const FAMILIES = [llamaFamily, gemmaFamily, falconFamily] as Family[];

/** model_type → family. */
const BY_MODEL_TYPE = new Map<string, Family>(FAMILIES.flatMap((f) => Object.keys(f.configs).map((t) => [t, f])));

export const SUPPORTED_MODEL_TYPES: string[] = [...BY_MODEL_TYPE.keys()];

/** The family that runs a parsed config. */
export function familyOf(c: ModelConfig): Family {
  return FAMILIES.find((f) => f.name === c.family)!;
}

export function parseModelConfig(json: unknown, source = 'config.json'): ModelConfig {
  const fail = (what: string) => new ConfigError(`${source}: ${what}`);
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw fail(`is not a JSON object (got ${showValue(json)})`);
  }
  const c = json as Record<string, unknown>;
  const type = c.model_type;
  if (typeof type !== 'string') throw fail('has no model_type');
  const family = BY_MODEL_TYPE.get(type);
  if (!family) {
    throw fail(`model_type ${showValue(type)} is not supported yet; supported: ${SUPPORTED_MODEL_TYPES.join(', ')}`);
  }
  const config = family.configs[type](c, fieldReaders(c, fail), fail, type);
  return { ...config, linearModules: Object.keys(family.linears(config)) };
}
