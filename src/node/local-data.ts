// Local files for the Node command line: a data set file or folder as Blobs (read lazily,
// never whole), a tokenizer from a checkpoint folder, an adapter folder. The page gets the
// same things from the Hub, IndexedDB and dropped Files instead.
import { openAsBlob } from 'node:fs';
import { readFile, readdir, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { AutoTokenizer, env, type PreTrainedTokenizer } from '@huggingface/transformers';
import { splitFiles, type DataSplits } from '../data/prepare';
import { DataError, dataFormat } from '../data/read';

/**
 * A data file (the training split), or a folder of them as a data set repo lays them out:
 * data files at the top or under data/, in splits by their names (train, validation, test).
 */
export async function localDataSplits(path: string): Promise<DataSplits> {
  const info = await stat(path).catch(() => {
    throw new DataError(`${path} does not exist: give a .jsonl, .json, .csv, .parquet or .txt file, or a folder of them`);
  });
  if (info.isFile()) {
    dataFormat(path); // a clear error for an unknown extension, before anything is read
    return { train: [{ name: basename(path), blob: await openAsBlob(path) }] };
  }
  const found: string[] = [];
  for (const dir of [path, join(path, 'data')]) {
    const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
    for (const e of entries) {
      if (!e.isFile()) continue;
      try {
        dataFormat(e.name);
        found.push(join(dir, e.name));
      } catch {
        // not a data file (README.md, .gitattributes)
      }
    }
  }
  if (found.length === 0) throw new DataError(`${path} holds no .jsonl, .json, .csv, .parquet or .txt file`);
  const files = await Promise.all(found.sort().map(async (f) => ({ name: basename(f), blob: await openAsBlob(f) })));
  return splitFiles(files);
}

/** The tokenizer of a checkpoint folder (tokenizer.json + tokenizer_config.json), offline. */
export async function localTokenizer(dir: string): Promise<PreTrainedTokenizer> {
  const abs = resolve(dir);
  env.allowRemoteModels = false;
  env.localModelPath = dirname(abs) + '/';
  try {
    return await AutoTokenizer.from_pretrained(basename(abs));
  } catch (e) {
    throw new Error(`${dir}: its tokenizer does not load (${(e as Error).message}); a checkpoint folder needs tokenizer.json and tokenizer_config.json`);
  }
}

/** An adapter folder's two PEFT files. */
export async function localAdapter(dir: string): Promise<{ config: string; weights: Uint8Array }> {
  const read = async <T>(name: string, f: (p: string) => Promise<T>) =>
    f(join(dir, name)).catch((e: NodeJS.ErrnoException) => {
      throw new Error(e.code === 'ENOENT' ? `${dir} has no ${name}: an adapter folder holds adapter_config.json and adapter_model.safetensors` : `${join(dir, name)}: ${e.message}`);
    });
  return {
    config: await read('adapter_config.json', (p) => readFile(p, 'utf8')),
    weights: await read('adapter_model.safetensors', (p) => readFile(p).then((b) => new Uint8Array(b.buffer, b.byteOffset, b.byteLength))),
  };
}
