// Hub repos on disk for the Node command line: the files a model or data set needs, downloaded
// once into a cache folder (one folder per commit), resumed from a `.part` file after an
// interruption, and checked (size, SHA-256) before they are used. The page keeps its models in
// IndexedDB instead (src/store).
//   $XDG_CACHE_HOME/webgpu-qlora/hub/<models|datasets>/<owner>/<name>/<commit>/<path>
import { createReadStream } from 'node:fs';
import { mkdir, open, rename, rm, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import {
  fileUrl,
  HubError,
  repoSnapshot,
  type HubOptions,
  type RepoFile,
  type RepoSnapshot,
  type RepoType,
} from '../hub/hub';
import { Checksum, fileBytes, verifySha256, type TransferOptions } from '../hub/transfer';
import { datasetFiles, modelFiles } from '../hub/select';

export function hubCacheDir(): string {
  return join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'webgpu-qlora', 'hub');
}

/** HF_ENDPOINT and HF_TOKEN, as huggingface_hub reads them. */
export function hubOptionsFromEnv(): HubOptions {
  return {
    endpoint: process.env.HF_ENDPOINT || undefined,
    token: process.env.HF_TOKEN || process.env.HUGGING_FACE_HUB_TOKEN || null,
  };
}

export interface CacheOptions extends TransferOptions {
  cacheDir?: string;
  onFile?: (file: RepoFile, done: number, total: number) => void;
}

/**
 * Download `pick(files)` of a repo at a revision into the cache; returns the folder. Files
 * already there are not fetched again.
 */
export async function cacheRepo(
  repo: string,
  type: RepoType,
  pick: (files: RepoFile[], repo: string) => RepoFile[],
  o: CacheOptions = {},
): Promise<{ dir: string; snapshot: RepoSnapshot; files: RepoFile[] }> {
  const snapshot = await repoSnapshot(repo, type, o);
  return cacheFiles(snapshot, pick(snapshot.files, repo), o);
}

/** Download `files` of a snapshot into the cache (those already there are not fetched again). */
async function cacheFiles(
  snapshot: RepoSnapshot,
  files: RepoFile[],
  o: CacheOptions,
): Promise<{ dir: string; snapshot: RepoSnapshot; files: RepoFile[] }> {
  const dir = join(o.cacheDir ?? hubCacheDir(), `${snapshot.type}s`, snapshot.repo, snapshot.commit);
  const total = files.reduce((n, f) => n + f.size, 0);
  let done = 0;
  for (const f of files) {
    await cacheFile(snapshot, f, insideFolder(dir, f.path, snapshot), o, (n) => o.onFile?.(f, done + n, total));
    done += f.size;
  }
  return { dir, snapshot, files };
}

/**
 * Where a repo file goes in its snapshot's folder. The listing's paths are checked already
 * (src/hub/listing.ts); this is the last word, at the point of writing: a path that would land
 * outside the folder (or on the folder itself) is refused, whatever the checks before it missed.
 */
function insideFolder(dir: string, path: string, s: RepoSnapshot): string {
  const target = resolve(dir, path);
  const rel = relative(resolve(dir), target);
  if (rel === '' || rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel) || path.includes('\\')) {
    throw new HubError(
      `the Hub lists ${JSON.stringify(path).slice(0, 80)} in ${s.type} ${s.repo}, a path outside ` +
        "the repo's cache folder; it was not written: check the Hub endpoint",
    );
  }
  return target;
}

export function cacheModel(repo: string, o: CacheOptions = {}) {
  return cacheRepo(repo, 'model', modelFiles, o);
}

async function cacheFile(
  s: RepoSnapshot,
  f: RepoFile,
  path: string,
  o: CacheOptions,
  onBytes: (n: number) => void,
): Promise<void> {
  const have = await stat(path).then(
    (x) => x.size,
    () => -1,
  );
  if (have === f.size) return onBytes(f.size);
  await mkdir(dirname(path), { recursive: true });
  const part = `${path}.part`;
  let offset = await stat(part).then(
    (x) => x.size,
    () => 0,
  );
  if (offset > f.size) {
    await rm(part);
    offset = 0;
  }
  const sum = await Checksum.create();
  if (offset > 0) for await (const chunk of createReadStream(part)) sum.update(chunk as Uint8Array);
  const out = await open(part, 'a');
  const url = fileUrl(s, f.path, o);
  try {
    for await (const chunk of fileBytes(url, f, offset, o)) {
      await out.write(chunk);
      sum.update(chunk);
      offset += chunk.length;
      onBytes(offset);
    }
  } finally {
    await out.close();
  }
  try {
    verifySha256(f, sum.hex(), url);
  } catch (e) {
    await rm(part);
    throw e;
  }
  await rename(part, path);
}

/** A data set's data files (or the Hub's Parquet conversion of it, src/hub/select.ts). */
export async function cacheDataset(repo: string, o: CacheOptions = {}) {
  const { snapshot, files } = await datasetFiles(repo, o);
  return cacheFiles(snapshot, files, o);
}
