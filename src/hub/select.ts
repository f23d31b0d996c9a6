// Which of a repo's files to download: for a model, its config, tokenizer and safetensors
// weights (not PyTorch .bin, ONNX or GGUF copies); for a data set, its data files of the train
// split where the files are named by split, as `datasets` picks them.
import { dataFormat } from '../data/read';
import { HubError, type RepoFile } from './hub';

const MODEL_TEXT = ['config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'model.safetensors.index.json'];

export function modelFiles(files: RepoFile[]): RepoFile[] {
  const has = (p: string) => files.some((f) => f.path === p);
  if (!has('config.json')) throw new HubError('this repo has no config.json: it is not a transformers model');
  if (!has('tokenizer.json')) throw new HubError('this repo has no tokenizer.json (a fast tokenizer); pick a model that ships one');
  // the sharded or single checkpoint at the top level (Mistral repos also carry consolidated.safetensors)
  const weights = files.filter((f) => /^model(-\d+-of-\d+)?\.safetensors$/.test(f.path));
  if (weights.length === 0) {
    const bin = files.some((f) => f.path.endsWith('.bin'));
    throw new HubError(`this repo has no safetensors weights${bin ? ' (only PyTorch .bin files, which are not read here)' : ''}`);
  }
  return [...files.filter((f) => MODEL_TEXT.includes(f.path)), ...weights];
}

export function dataFiles(files: RepoFile[], repo: string): RepoFile[] {
  const data = files.filter((f) => {
    if (f.path.startsWith('.') || /(^|\/)README\.md$/i.test(f.path)) return false;
    try {
      dataFormat(f.path);
      return true;
    } catch {
      return false;
    }
  });
  if (data.length === 0) throw new HubError(`the data set ${repo} has no .jsonl, .json, .csv, .parquet or .txt files`);
  const train = data.filter((f) => /(^|[-_./])train([-_./\d]|$)/.test(f.path));
  return train.length ? train : data;
}
