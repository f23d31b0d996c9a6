// Local files for the Node command line: a data set file or folder as Blobs (read lazily,
// never whole), a tokenizer from a checkpoint folder, an adapter folder. The page gets the
// same things from the Hub, IndexedDB and dropped Files instead.
import { openAsBlob } from 'node:fs';
import { readFile, readdir, stat } from 'node:fs/promises';
import { basename, join, relative, sep } from 'node:path';
import {
  TokenizerClient,
  TokenizerError,
  type TokenizerFiles,
  type TokenizerOptions,
} from '../engine/tokenizer-client';
import { nodeTokenizerWorker } from './tokenizer-worker';
import { pickConfig, readmeConfigs } from '../data/dataset-configs';
import { configSplitFiles, type DataSplits } from '../data/prepare';
import { DataError, dataFormat } from '../data/read';

/**
 * A data file (the training split), or a folder of them as a data set repo lays them out: the
 * files of a config where its README.md declares `configs:` (`config`, else the default one, as
 * load_dataset(folder, config) reads them), else data files at the top or under data/, in splits
 * by their names (train, validation, test).
 */
export async function localDataSplits(path: string, config: string | null = null): Promise<DataSplits> {
  const info = await stat(path).catch(() => {
    throw new DataError(
      `${path} does not exist: give a .jsonl, .json, .csv, .parquet or .txt file, or a folder of them`,
    );
  });
  if (info.isFile()) {
    dataFormat(path); // a clear error for an unknown extension, before anything is read
    if (config !== null && config !== 'default')
      throw new DataError(`${path} is one file: it has no config "${config}"`);
    return { train: [{ name: basename(path), blob: await openAsBlob(path) }] };
  }
  const readme = await readFile(join(path, 'README.md'), 'utf8').catch(() => '');
  const chosen = pickConfig(readmeConfigs(readme, path), config, path);
  const found = chosen ? await dataFilesUnder(path) : [];
  if (!chosen) {
    for (const dir of [path, join(path, 'data')]) {
      const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
      for (const e of entries) if (e.isFile() && isDataFile(e.name)) found.push(join(dir, e.name));
    }
  }
  if (found.length === 0) throw new DataError(`${path} holds no .jsonl, .json, .csv, .parquet or .txt file`);
  // named by their path inside the folder: data/train_sft-00000-of-00001.parquet names its split
  const files = await Promise.all(
    found.sort().map(async (f) => ({ name: relative(path, f).split(sep).join('/'), blob: await openAsBlob(f) })),
  );
  return configSplitFiles(files, chosen, path);
}

/** Whether a file name is one the data reader reads (not README.md, .gitattributes). */
function isDataFile(name: string): boolean {
  try {
    dataFormat(name);
    return true;
  } catch {
    return false;
  }
}

/** The data files anywhere under `root` (a config's patterns may name any folder), hidden ones left out. */
async function dataFilesUnder(root: string, depth = 0): Promise<string[]> {
  if (depth > 16) return [];
  const out: string[] = [];
  for (const e of await readdir(root, { withFileTypes: true }).catch(() => [])) {
    if (e.name.startsWith('.') || e.name.startsWith('__')) continue;
    const abs = join(root, e.name);
    if (e.isDirectory()) out.push(...(await dataFilesUnder(abs, depth + 1)));
    else if (e.isFile() && isDataFile(e.name)) out.push(abs);
  }
  return out;
}

/** The largest tokenizer files read (Gemma's 256k-token tokenizer.json is 33 MB; chat templates are kilobytes). */
const TOKENIZER_FILE_BYTES = {
  'tokenizer.json': 128 << 20,
  'tokenizer_config.json': 16 << 20,
  'chat_template.jinja': 16 << 20,
};

/**
 * The tokenizer of a checkpoint folder (tokenizer.json, and tokenizer_config.json and
 * chat_template.jinja if it has them), in a worker thread of its own
 * (src/engine/tokenizer-client.ts); nothing is fetched.
 */
export async function localTokenizer(
  dir: string,
  o: TokenizerOptions & { heapMb?: number; chatTemplatePath?: string | null } = {},
) {
  const read = async (name: keyof typeof TOKENIZER_FILE_BYTES): Promise<string | undefined> => {
    const path = join(dir, name);
    const info = await stat(path).catch(() => null);
    if (!info?.isFile()) return undefined;
    if (info.size > TOKENIZER_FILE_BYTES[name]) {
      const most = TOKENIZER_FILE_BYTES[name];
      throw new TokenizerError(
        `${path} is ${info.size} bytes, more than the ${most} a tokenizer file may be: use the model's own`,
      );
    }
    return readFile(path, 'utf8');
  };
  const json = await read('tokenizer.json');
  if (json === undefined) {
    throw new TokenizerError(
      `${dir} has no tokenizer.json: a checkpoint folder needs one (and tokenizer_config.json for chats)`,
    );
  }
  const files: TokenizerFiles = { 'tokenizer.json': json };
  for (const name of ['tokenizer_config.json', 'chat_template.jinja'] as const) {
    const text = await read(name);
    if (text !== undefined) files[name] = text;
  }
  // TRL's --chat_template_path: a template file in place of the model's own (it wins, as chat_template.jinja does)
  const templatePath = o.chatTemplatePath ?? undefined;
  if (templatePath !== undefined) files['chat_template.jinja'] = await chatTemplateFile(templatePath);
  const where = `${dir.replace(/\/+$/, '')}/`;
  const { chatTemplatePath: _, heapMb, ...options } = o;
  return TokenizerClient.create(nodeTokenizerWorker({ heapMb }), files, { where, templatePath, ...options });
}

/**
 * A chat template file given in place of the model's (a .jinja or .j2 file, as TRL reads one).
 * TRL also takes a tokenizer to copy the template from, adding its special tokens and growing the
 * embedding (clone_chat_template): not built here.
 */
async function chatTemplateFile(path: string): Promise<string> {
  if (!/\.(jinja|j2)$/.test(path)) {
    throw new TokenizerError(
      `--chat_template_path ${path}: give a .jinja or .j2 file holding a chat template; copying the template of ` +
        "another tokenizer (TRL's clone_chat_template, which adds tokens to the model) is not built",
    );
  }
  const info = await stat(path).catch(() => null);
  if (!info?.isFile()) throw new TokenizerError(`--chat_template_path ${path}: there is no such file`);
  const most = TOKENIZER_FILE_BYTES['chat_template.jinja'];
  if (info.size > most)
    throw new TokenizerError(`${path} is ${info.size} bytes, more than the ${most} a template may be`);
  return readFile(path, 'utf8');
}
