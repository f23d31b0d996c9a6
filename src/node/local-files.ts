// Checkpoint files from a local folder, for the Node command line and tests. (The browser reads
// from the Hub and IndexedDB instead; nothing under src/ but src/node and src/cli imports this.)
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { CheckpointError, type CheckpointFiles } from '../model/load';
import { AdapterError, parseAdapterConfig, type LoraConfig } from '../formats/peft';
import {
  MAX_ADAPTER_CONFIG_BYTES,
  MAX_ADAPTER_WEIGHTS_BYTES,
  readAdapterZip,
  type AdapterFiles,
} from '../formats/adapter-zip';
import {
  GenerationConfigError,
  MAX_GENERATION_CONFIG_CHARS,
  parseGenerationConfig,
  type GenerationConfig,
} from '../generate/generation-config';

export function localCheckpoint(dir: string): CheckpointFiles {
  return {
    async text(name) {
      try {
        return await readFile(join(dir, name), 'utf8');
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
        throw e;
      }
    },
    async stream(name) {
      const path = join(dir, name);
      const { size } = await stat(path).catch(() => {
        throw new CheckpointError(
          `${path} is missing: the checkpoint's index (model.safetensors.index.json) ` +
            `names it; download the checkpoint again`,
        );
      });
      return { chunks: createReadStream(path, { highWaterMark: 1 << 20 }) as AsyncIterable<Uint8Array>, size };
    },
  };
}

/**
 * A checkpoint folder's generation_config.json, checked (src/generate/generation-config.ts); no
 * defaults where it has none. Its size is looked at before it is read.
 */
export async function localGenerationConfig(dir: string): Promise<GenerationConfig> {
  const path = join(dir, 'generation_config.json');
  const info = await stat(path).catch(() => null);
  if (!info?.isFile()) return {};
  // UTF-8 takes at least a byte a character: a file within the limit in bytes is within it in characters
  if (info.size > MAX_GENERATION_CONFIG_CHARS) {
    throw new GenerationConfigError(
      `${path} is ${info.size} bytes, more than the ${MAX_GENERATION_CONFIG_CHARS} ` +
        'a generation_config.json may be: fix it or delete it',
    );
  }
  return parseGenerationConfig(await readFile(path, 'utf8'), `${dir.replace(/\/+$/, '')}/`);
}

/**
 * An adapter from a folder (adapter_config.json + adapter_model.safetensors) or a zip of them,
 * with the same limits as the page's: each file's size is checked before it is read, the weights
 * against `weightsBudget` (what the loaded model's layers need at the config's rank) when given.
 */
export async function localAdapterFiles(
  path: string,
  weightsBudget?: (config: LoraConfig) => number,
): Promise<AdapterFiles> {
  const info = await stat(path).catch(() => {
    throw new AdapterError(
      `${path} does not exist: give an adapter folder (adapter_config.json, ` + `adapter_model.safetensors) or its zip`,
    );
  });
  const sized = async (file: string, max: number) => {
    const s = await stat(file).catch(() => {
      throw new AdapterError(
        `${path} has no ${basename(file)}: ` +
          `an adapter folder holds adapter_config.json and adapter_model.safetensors`,
      );
    });
    if (s.size > max) {
      throw new AdapterError(
        `${file} is ${s.size} bytes, over the ${max} bytes it may take: ` + `it is not an adapter for this model`,
      );
    }
    return file;
  };
  if (info.isFile()) {
    if (info.size > MAX_ADAPTER_WEIGHTS_BYTES) {
      throw new AdapterError(`${path} is ${info.size} bytes: too large to be an adapter zip`);
    }
    return readAdapterZip(new Uint8Array(await readFile(path)), path, { weightsBudget });
  }
  const config = await readFile(await sized(join(path, 'adapter_config.json'), MAX_ADAPTER_CONFIG_BYTES), 'utf8');
  const parsed = parseAdapterConfig(config, join(path, 'adapter_config.json'));
  const budget = Math.min(MAX_ADAPTER_WEIGHTS_BYTES, weightsBudget?.(parsed) ?? MAX_ADAPTER_WEIGHTS_BYTES);
  const weights = await readFile(await sized(join(path, 'adapter_model.safetensors'), budget));
  return { config, weights: new Uint8Array(weights.buffer, weights.byteOffset, weights.byteLength) };
}
