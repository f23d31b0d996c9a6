// A data set's named configs, as `datasets` reads them from the YAML block at the top of its
// README.md (the dataset card's `configs:`):
//
//   configs:
//   - config_name: default            # or `default: true`: what load_dataset(repo) loads
//     data_files:                     # a pattern, a list of them (all "train"), or per split:
//     - split: train
//       path: data/train-*            # fsspec globs: * and ? inside a folder, ** across folders
//     data_dir: sub                   # patterns are under it; alone, its files split by name
//
// --dataset_config NAME picks one, as load_dataset(repo, NAME) does; without it the default
// config is read (the one named "default" or marked `default: true`, else the only one). A repo
// with no `configs:` has the one config "default", its files split by their names (./prepare.ts).
import { parse } from 'yaml';
import { DataError } from './read';

export interface DatasetConfig {
  name: string;
  /** Split name → glob patterns, relative to the repo (data_dir joined in); null: split by file names. */
  dataFiles: Record<string, string[]> | null;
  /** The folder the config's files are in (null: the whole repo). */
  dataDir: string | null;
  isDefault: boolean;
}

/** The configs a README's YAML front matter declares (none: an empty list). `where` names the data set. */
export function readmeConfigs(readme: string, where: string): DatasetConfig[] {
  const front = readme.replace(/^\uFEFF/, '').match(/^---[ \t]*\r?\n([\s\S]*?)\r?\n---[ \t]*(\r?\n|$)/);
  if (!front) return [];
  let card: unknown;
  try {
    card = parse(front[1]);
  } catch (e) {
    throw new DataError(`${where}'s README.md has a YAML header that is not YAML (${firstLine(e)})`);
  }
  const configs = (card as { configs?: unknown } | null)?.configs;
  if (configs === undefined || configs === null) return [];
  if (!Array.isArray(configs)) throw new DataError(`${where}'s README.md: "configs" must be a list`);
  return configs.map((c, i) => readConfig(c, `${where}'s README.md, configs[${i}]`));
}

function readConfig(c: unknown, where: string): DatasetConfig {
  if (!isMapping(c) || typeof c.config_name !== 'string' || c.config_name === '')
    throw new DataError(`${where} must be a mapping with a "config_name"`);
  const given = c.data_dir === undefined || c.data_dir === null ? null : c.data_dir;
  if (given !== null && typeof given !== 'string') throw new DataError(`${where}: "data_dir" must be a folder name`);
  // ./en/ is en, as a path relative to the repo
  const dataDir = given === null ? null : given.replace(/^(\.\/)+/, '').replace(/\/+$/, '') || null;
  const base = (p: string) => (dataDir ? `${dataDir}/${p}` : p).replace(/^(\.\/)+/, '');
  let dataFiles: Record<string, string[]> | null = null;
  const f = c.data_files;
  const patterns = (x: unknown) => (typeof x === 'string' ? [x] : Array.isArray(x) ? x : null);
  const shape = 'a pattern, a list of patterns, or a list of {split, path}';
  if (f !== undefined && f !== null) {
    const list = patterns(f);
    if (!list || list.length === 0) throw new DataError(`${where}: "data_files" must be ${shape}`);
    dataFiles = {};
    if (list.every((x) => typeof x === 'string')) dataFiles.train = list.map(base);
    else {
      for (const entry of list) {
        const paths = isMapping(entry) ? patterns(entry.path) : null;
        if (!isMapping(entry) || typeof entry.split !== 'string' || !paths?.every((p) => typeof p === 'string'))
          throw new DataError(`${where}: "data_files" must be ${shape}`);
        if (entry.split in dataFiles) throw new DataError(`${where}: the split "${entry.split}" is given twice`);
        dataFiles[entry.split] = (paths as string[]).map(base);
      }
    }
  }
  return { name: c.config_name, dataFiles, dataDir, isDefault: c.default === true };
}

/**
 * The config load_dataset(repo, name) reads: the one named, else the default one; null for a
 * repo with no configs, whose only config is "default".
 */
export function pickConfig(configs: DatasetConfig[], name: string | null, where: string): DatasetConfig | null {
  if (configs.length === 0) {
    if (name === null || name === 'default') return null;
    throw new DataError(`${where} has no config "${name}": its README.md names no configs, so it has only "default"`);
  }
  const names = configs.map((c) => `"${c.name}"`).join(', ');
  if (name !== null) {
    const named = configs.find((c) => c.name === name);
    if (!named) throw new DataError(`${where} has no config "${name}"; its configs are ${names}`);
    return named;
  }
  const defaults = configs.filter((c) => c.isDefault || c.name === 'default');
  if (defaults.length > 1)
    throw new DataError(`${where} has several default configs: "${defaults[0].name}" and "${defaults[1].name}"`);
  if (defaults.length === 1) return defaults[0];
  if (configs.length === 1) return configs[0];
  throw new DataError(`${where} has several configs and no default one: pick one of ${names} with --dataset_config`);
}

/**
 * A config's files by split, of the repo's data files (the paths of `files`). Where it gives
 * patterns, the files each split's patterns match (every pattern must match one); else the files
 * under its data_dir, for the caller to split by their names (returned as one list under null).
 */
export function configFiles<T>(
  config: DatasetConfig,
  files: T[],
  pathOf: (f: T) => string,
  where: string,
): { splits: Record<string, T[]> } | { unsplit: T[] } {
  if (!config.dataFiles) {
    const dir = config.dataDir ? `${config.dataDir}/` : '';
    const under = files.filter((f) => pathOf(f).startsWith(dir));
    if (under.length === 0) throw new DataError(`${where}'s config "${config.name}" has no data files in ${dir}`);
    return { unsplit: under };
  }
  const splits: Record<string, T[]> = {};
  for (const [split, patterns] of Object.entries(config.dataFiles)) {
    const matched = new Set<T>();
    for (const p of patterns) {
      const re = globRegExp(p);
      const hits = files.filter((f) => re.test(pathOf(f)));
      if (hits.length === 0)
        throw new DataError(
          `${where}'s config "${config.name}" gives "${p}" for its ${split} split, and none of its data files ` +
            '(.jsonl, .json, .csv, .parquet, .txt) matches it',
        );
      for (const h of hits) matched.add(h);
    }
    splits[split] = files.filter((f) => matched.has(f)); // in the repo's order
  }
  return { splits };
}

/** An fsspec glob as a regular expression: * and ? stay inside a folder, ** crosses them, [...] a class. */
export function globRegExp(pattern: string): RegExp {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '*' && pattern[i + 1] === '*') {
      i++;
      if (pattern[i + 1] === '/') {
        i++;
        re += '(?:.*/)?'; // **/ : any folders, or none
      } else re += '.*';
    } else if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '[' && pattern.indexOf(']', i + 2) > i) {
      const end = pattern.indexOf(']', i + 2);
      const body = pattern.slice(i + 1, end).replace(/\\/g, '\\\\');
      re += `[${body.startsWith('!') ? `^${body.slice(1)}` : body}]`;
      i = end;
    } else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

const isMapping = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const firstLine = (e: unknown) => (e instanceof Error ? e.message : String(e)).split('\n')[0];
