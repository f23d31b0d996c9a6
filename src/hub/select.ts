// Which of a repo's files to download: for a model, its config, generation defaults, tokenizer,
// chat template and safetensors weights (not PyTorch .bin, ONNX or GGUF copies); for a data set,
// the data files of the config asked for (its README.md's `configs:`, src/data/dataset-configs.ts;
// split afterwards, src/data/prepare.ts).
import { configFiles, pickConfig, readmeConfigs, type DatasetConfig } from '../data/dataset-configs';
import { DataError, dataFormat } from '../data/read';
import { fileUrl, HubError, repoSnapshot, type HubOptions, type RepoFile, type RepoSnapshot } from './hub';
import { fetchWhole } from './transfer';

/**
 * The small files of a model, each taken where the repo has it: generation_config.json holds the
 * defaults transformers' generate() starts from, chat_template.jinja the chat template where newer
 * checkpoints keep it apart from tokenizer_config.json.
 */
const MODEL_TEXT = [
  'config.json',
  'generation_config.json',
  'tokenizer.json',
  'tokenizer_config.json',
  'chat_template.jinja',
  'special_tokens_map.json',
  'model.safetensors.index.json',
];

/** `repo` names the repo in messages. */
export function modelFiles(files: RepoFile[], repo = 'this repo'): RepoFile[] {
  const has = (p: string) => files.some((f) => f.path === p);
  if (!has('config.json')) throw new HubError(`${repo} has no config.json: it is not a transformers model`);
  if (!has('tokenizer.json')) {
    throw new HubError(`${repo} has no tokenizer.json (a fast tokenizer); pick a model that ships one`);
  }
  // the sharded or single checkpoint at the top level (Mistral repos also carry consolidated.safetensors)
  const weights = files.filter((f) => /^model(-\d+-of-\d+)?\.safetensors$/.test(f.path));
  if (weights.length === 0) {
    const bin = files.some((f) => f.path.endsWith('.bin'));
    const only = bin ? ' (only PyTorch .bin files, which are not read here)' : '';
    throw new HubError(`${repo} has no safetensors weights${only}`);
  }
  return [...files.filter((f) => MODEL_TEXT.includes(f.path)), ...weights];
}

/** JSON files of a data set repo that describe it rather than hold rows. */
const METADATA = /(^|\/)(dataset_infos?|dataset_dict|state|config|package(-lock)?|tsconfig)\.json$/i;

export function dataFiles(files: RepoFile[], repo: string): RepoFile[] {
  const data = files.filter((f) => {
    if (f.path.startsWith('.') || /(^|\/)README\.md$/i.test(f.path) || METADATA.test(f.path)) return false;
    try {
      dataFormat(f.path);
      return true;
    } catch {
      return false;
    }
  });
  if (data.length === 0) throw new HubError(`the data set ${repo} has no .jsonl, .json, .csv, .parquet or .txt files`);
  return data;
}

/** The branch where the Hub keeps its Parquet conversion of a data set, one folder per config. */
export const PARQUET_REVISION = 'refs/convert/parquet';

/** The largest README.md read for its configs (cards with long prose are tens of KB). */
export const README_MAX_BYTES = 4 * 2 ** 20;

/** A data set's files for one config: the snapshot they are in, the files, and the config (null: none declared). */
export interface DatasetFiles {
  snapshot: RepoSnapshot;
  files: RepoFile[];
  config: DatasetConfig | null;
}

/**
 * A data set's snapshot and the data files of a config (`config`, else its default one): its own,
 * or the Hub's Parquet conversion of that config where the repo has none readable here (an
 * archive) or a loading script builds its rows (a top-level .py: its own files are the script's
 * inputs, not rows).
 */
export async function datasetFiles(
  id: string,
  o: HubOptions = {},
  config: string | null = null,
): Promise<DatasetFiles> {
  const main = await repoSnapshot(id, 'dataset', o);
  const readme = main.files.find((f) => f.path === 'README.md');
  const text = readme
    ? new TextDecoder().decode(await fetchWhole(fileUrl(main, readme.path, o), readme, o, README_MAX_BYTES))
    : '';
  return chooseDatasetFiles(id, main, readmeConfigs(text, id), config, (rev) =>
    repoSnapshot(id, 'dataset', { ...o, revision: rev }).catch(() => null),
  );
}

/**
 * The files of the config asked for, of `main` or of the Parquet conversion `converted` gives (a
 * snapshot, or null where there is none); shared by the Hub's and the offline cache's readers.
 */
export async function chooseDatasetFiles(
  id: string,
  main: RepoSnapshot,
  configs: DatasetConfig[],
  name: string | null,
  converted: (revision: string) => Promise<RepoSnapshot | null>,
): Promise<DatasetFiles> {
  // a name the README does not declare may still be a folder of the Parquet conversion (a scripted
  // data set's configs are): the refusal waits until the repo's own files are the ones to use
  const unknown = configs.length === 0 && name !== null && name !== 'default';
  const config = unknown ? null : pickConfig(configs, name, id);
  const scripted = main.files.some((f) => /^[^/]+\.py$/.test(f.path));
  let own: RepoFile[] | null = null;
  let unusable: unknown = null; // why the repo's own files cannot be used, to tell if nothing else can be
  try {
    own = dataFiles(main.files, id);
    // only the config's own files are fetched (the splits are made from them again later)
    if (config) {
      const got = configFiles(config, own, (f) => f.path, id);
      own = 'splits' in got ? [...new Set(Object.values(got.splits).flat())] : got.unsplit;
    }
  } catch (e) {
    // no readable file (an archive), or none the config's patterns match (data/*.jsonl.gz): the conversion may serve
    if (!(e instanceof HubError || e instanceof DataError) || main.revision === PARQUET_REVISION) throw e;
    own = null;
    unusable = e;
  }
  const ownFiles = (files: RepoFile[]): DatasetFiles => {
    if (unknown) pickConfig(configs, name, id); // refuses the name, saying the README declares none
    return { snapshot: main, files, config };
  };
  if (own && !scripted) return ownFiles(own);
  const conversion = main.revision === PARQUET_REVISION ? null : await converted(PARQUET_REVISION);
  const parquet = conversion?.files.filter((f) => f.path.endsWith('.parquet')) ?? [];
  if (!conversion || parquet.length === 0) {
    if (own) return ownFiles(own);
    if (unusable instanceof DataError) throw unusable;
    throw new HubError(
      `the data set ${id} has no .jsonl, .json, .csv, .parquet or .txt files, and the Hub has no Parquet ` +
        `conversion of it (${PARQUET_REVISION})`,
    );
  }
  // the conversion's folders are the configs, its files split by their folders: no config to apply again
  return { snapshot: conversion, files: parquetConfigFiles(parquet, config?.name ?? name, id), config: null };
}

/** Of the Hub's Parquet conversion, the files of one config: the one named, else `default`, else the first. */
export function parquetConfigFiles(parquet: RepoFile[], name: string | null = null, id = 'the data set'): RepoFile[] {
  const configs = [...new Set(parquet.map((f) => f.path.split('/')[0]))].sort();
  if (name !== null && !configs.includes(name))
    throw new HubError(`${id}'s Parquet conversion has no config "${name}"; it has ${configs.join(', ')}`);
  const config = name ?? (configs.includes('default') ? 'default' : configs[0]);
  return parquet.filter((f) => f.path.startsWith(`${config}/`));
}
