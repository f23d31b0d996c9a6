// Which of a repo's files to download: for a model, its config, generation defaults, tokenizer,
// chat template and safetensors weights (not PyTorch .bin, ONNX or GGUF copies); for a data set,
// its data files (split by their names afterwards, src/data/prepare.ts).
import { dataFormat } from '../data/read';
import { HubError, repoSnapshot, type HubOptions, type RepoFile, type RepoSnapshot } from './hub';

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

/**
 * A data set's snapshot and data files: its own, or the Hub's Parquet conversion of its default
 * config where it has none readable here (an archive) or a loading script builds its rows (a
 * top-level .py: its own files are the script's inputs, not rows).
 */
export async function datasetFiles(
  id: string,
  o: HubOptions = {},
): Promise<{ snapshot: RepoSnapshot; files: RepoFile[] }> {
  const main = await repoSnapshot(id, 'dataset', o);
  const scripted = main.files.some((f) => /^[^/]+\.py$/.test(f.path));
  let own: RepoFile[] | null = null;
  try {
    own = dataFiles(main.files, id);
  } catch (e) {
    if (!(e instanceof HubError) || o.revision === PARQUET_REVISION) throw e;
  }
  if (own && !scripted) return { snapshot: main, files: own };
  const converted =
    o.revision === PARQUET_REVISION
      ? null
      : await repoSnapshot(id, 'dataset', { ...o, revision: PARQUET_REVISION }).catch(() => null);
  const parquet = converted?.files.filter((f) => f.path.endsWith('.parquet')) ?? [];
  if (!converted || parquet.length === 0) {
    if (own) return { snapshot: main, files: own };
    throw new HubError(
      `the data set ${id} has no .jsonl, .json, .csv, .parquet or .txt files, and the Hub has no Parquet ` +
        `conversion of it (${PARQUET_REVISION})`,
    );
  }
  return { snapshot: converted, files: parquetConfigFiles(parquet) };
}

/** Of the Hub's Parquet conversion, the files of one config: `default`, else the first by name. */
export function parquetConfigFiles(parquet: RepoFile[]): RepoFile[] {
  const configs = [...new Set(parquet.map((f) => f.path.split('/')[0]))].sort();
  const config = configs.includes('default') ? 'default' : configs[0];
  return parquet.filter((f) => f.path.startsWith(`${config}/`));
}
