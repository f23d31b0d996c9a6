// An adapter zip (what the page's *Download adapter* writes, or any zip holding PEFT's two
// files), read without trusting it: a zip's central directory declares each entry's inflated
// size, and fflate allocates that size before inflating. So each entry's declared size is
// checked against a budget in fflate's filter, before anything is inflated, and the inflated
// length is checked against the declared one afterwards (fflate does not: a lying entry comes
// out short). Only adapter_config.json and adapter_model.safetensors are inflated, found by
// their last path component; other entries are skipped. Entry names are only compared, never
// used as paths: nothing is written to disk, so a name like ../../x is harmless here.
import { unzipSync, type UnzipFileInfo } from 'fflate';
import { AdapterError, parseAdapterConfig, type LoraConfig } from './peft';
import { nameOf } from './safetensors';

/** adapter_config.json is a few hundred bytes: 1 MiB is generous. */
export const MAX_ADAPTER_CONFIG_BYTES = 2 ** 20;
/** The weights of any adapter this tool could train or load (r ≤ 1024) stay under 4 GiB. */
export const MAX_ADAPTER_WEIGHTS_BYTES = 4 * 2 ** 30;
/**
 * Deflate's best ratio is 1032 to 1 (a 258-byte match in two bits, then some), so an entry that
 * declares more than this times its compressed size lies about one of them.
 */
const DEFLATE_MAX_RATIO = 1032;
/** Central directory entries looked at, at most: a zip declaring millions would loop for long. */
const MAX_ENTRIES = 10_000;

const CONFIG = 'adapter_config.json';
const WEIGHTS = 'adapter_model.safetensors';

export interface AdapterFiles {
  config: string;
  weights: Uint8Array;
}

export interface AdapterZipOptions {
  /**
   * The most bytes the weights may declare once the config is known, e.g. what the loaded
   * model's targeted layers need at the config's rank (model/estimate.ts adapterWeightsBound).
   * Capped at MAX_ADAPTER_WEIGHTS_BYTES either way.
   */
  weightsBudget?: (config: LoraConfig) => number;
}

const baseName = (path: string) => path.slice(path.replace(/\\/g, '/').lastIndexOf('/') + 1);

/** The zip `zip` (named `name` in errors) to PEFT's two files, every size checked before inflating. */
export function readAdapterZip(zip: Uint8Array, name: string, o: AdapterZipOptions = {}): AdapterFiles {
  const configBytes = inflateOne(zip, name, CONFIG, MAX_ADAPTER_CONFIG_BYTES);
  let config: string;
  try {
    config = new TextDecoder('utf-8', { fatal: true }).decode(configBytes);
  } catch {
    throw new AdapterError(`${name}: its ${CONFIG} is not UTF-8 text`);
  }
  // the config says the rank and the modules, and so how large the weights can be
  const parsed = parseAdapterConfig(config, `${name}: ${CONFIG}`);
  const budget = Math.min(MAX_ADAPTER_WEIGHTS_BYTES, o.weightsBudget?.(parsed) ?? MAX_ADAPTER_WEIGHTS_BYTES);
  return { config, weights: inflateOne(zip, name, WEIGHTS, budget) };
}

/** The one entry whose last path component is `want`, inflated if it declares at most `budget` bytes. */
function inflateOne(zip: Uint8Array, name: string, want: string, budget: number): Uint8Array {
  let seen = 0;
  let found: UnzipFileInfo | null = null;
  const filter = (f: UnzipFileInfo): boolean => {
    if (++seen > MAX_ENTRIES) {
      throw new AdapterError(`${name} lists over ${MAX_ENTRIES} entries: an adapter zip holds two files`);
    }
    if (baseName(f.name) !== want) return false;
    if (found) {
      throw new AdapterError(`${name} holds ${want} twice (${nameOf(found.name)} and ${nameOf(f.name)}): keep one`);
    }
    found = f;
    if (f.compression !== 0 && f.compression !== 8) {
      throw new AdapterError(
        `${name}: ${nameOf(f.name)} uses compression method ${f.compression}; only stored (0) ` +
          `and deflate (8) are read`,
      );
    }
    // the declared sizes against the zip itself: what is inflated can never be more than this
    const possible = f.compression === 0 ? f.size : f.size * DEFLATE_MAX_RATIO + 1024;
    if (!(f.size >= 0 && f.size <= zip.length && f.originalSize >= 0 && f.originalSize <= possible)) {
      throw new AdapterError(
        `${name}: ${nameOf(f.name)} declares ${f.originalSize} bytes from ${f.size} compressed in a ` +
          `${zip.length}-byte zip, ` +
          'which no zip can hold: the zip is corrupt or forged',
      );
    }
    if (!(f.originalSize <= budget)) {
      throw new AdapterError(
        `${name}: ${nameOf(f.name)} declares ${f.originalSize} bytes inflated, ` +
          `over the ${budget} bytes ${want} may take: ` +
          'the zip is corrupt or not an adapter for this model',
      );
    }
    return true;
  };
  let files: Record<string, Uint8Array>;
  try {
    files = unzipSync(zip, { filter });
  } catch (e) {
    if (e instanceof AdapterError) throw e;
    throw new AdapterError(
      `${name} is not a readable zip (${(e as Error).message}): choose the zip the page saved, ` + `or the two files`,
    );
  }
  const entry = found as UnzipFileInfo | null;
  if (!entry) throw new AdapterError(`${name} holds no ${want}: an adapter zip holds ${CONFIG} and ${WEIGHTS}`);
  const bytes = files[entry.name];
  if (!bytes || bytes.length !== entry.originalSize) {
    throw new AdapterError(
      `${name}: ${nameOf(entry.name)} inflated to ${bytes?.length ?? 0} bytes, ` +
        `its directory declares ${entry.originalSize}: the zip is corrupt`,
    );
  }
  return bytes;
}
