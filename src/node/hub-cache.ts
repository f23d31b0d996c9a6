// Hub repos on disk for the Node command line, in huggingface_hub's cache, so that a model
// Python downloaded is not downloaded again here, and the other way round:
//   $HF_HUB_CACHE (default $HF_HOME/hub; $HF_HOME: $XDG_CACHE_HOME/huggingface or ~/.cache/huggingface)
//     models--owner--name/  (datasets--owner--name/)
//       blobs/<etag>               a file's bytes, named by its SHA-256 (LFS files) or git blob id
//       snapshots/<commit>/<path>  a relative symbolic link to ../../blobs/<etag>
//       refs/<revision>            the commit a branch or tag pointed at when last resolved
// A download goes to blobs/<etag>.incomplete, resumes from it after an interruption, and is
// checked (size, SHA-256) before it takes its name. With HF_HUB_OFFLINE=1 nothing is fetched:
// the revision resolves through refs/ and the files are the snapshot's. The token is HF_TOKEN,
// else the file `hf auth login` writes ($HF_TOKEN_PATH, default $HF_HOME/token). The page keeps
// its models in IndexedDB instead (src/store).
import { createHash } from 'node:crypto';
import { createReadStream, readFileSync } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
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
import { readmeConfigs } from '../data/dataset-configs';
import { chooseDatasetFiles, modelFiles, PARQUET_REVISION, parquetConfigFiles, README_MAX_BYTES } from '../hub/select';

/** huggingface_hub's HF_HOME. */
function hfHome(): string {
  const env = process.env;
  return env.HF_HOME || join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'huggingface');
}

/** huggingface_hub's cache folder: HF_HUB_CACHE (or its old name), else $HF_HOME/hub. */
export function hubCacheDir(): string {
  return process.env.HF_HUB_CACHE || process.env.HUGGINGFACE_HUB_CACHE || join(hfHome(), 'hub');
}

/** HF_HUB_OFFLINE as huggingface_hub reads it: 1, ON, YES or TRUE, in any case. */
export function hubOffline(): boolean {
  return /^(1|on|yes|true)$/i.test(process.env.HF_HUB_OFFLINE ?? '');
}

/** HF_ENDPOINT and the token, as huggingface_hub finds them: HF_TOKEN, else the saved token file. */
export function hubOptionsFromEnv(): HubOptions {
  const env = process.env;
  let token = env.HF_TOKEN || env.HUGGING_FACE_HUB_TOKEN || null;
  if (!token) {
    try {
      token = readFileSync(env.HF_TOKEN_PATH || join(hfHome(), 'token'), 'utf8').trim() || null;
    } catch {}
  }
  return { endpoint: env.HF_ENDPOINT || undefined, token };
}

export interface CacheOptions extends TransferOptions {
  /** The cache's root (default hubCacheDir()). */
  cacheDir?: string;
  /** No network: the cache only (default HF_HUB_OFFLINE). */
  offline?: boolean;
  onFile?: (file: RepoFile, done: number, total: number) => void;
}

/** A repo's folder in the cache: models--owner--name. */
export function repoFolder(root: string, repo: string, type: RepoType): string {
  return join(root, `${type}s--${repo.split('/').join('--')}`);
}

/**
 * Download `pick(files)` of a repo at a revision into the cache; returns its snapshot folder.
 * Files already there (from Python or an earlier run) are not fetched again. Offline, the cached
 * snapshot's files.
 */
export async function cacheRepo(
  repo: string,
  type: RepoType,
  pick: (files: RepoFile[], repo: string) => RepoFile[],
  o: CacheOptions = {},
): Promise<{ dir: string; snapshot: RepoSnapshot; files: RepoFile[] }> {
  if (o.offline ?? hubOffline()) {
    const snapshot = await cachedSnapshot(repo, type, o);
    return { dir: snapshotFolder(snapshot, o), snapshot, files: pick(snapshot.files, repo) };
  }
  const snapshot = await repoSnapshot(repo, type, o);
  return cacheFiles(snapshot, pick(snapshot.files, repo), o);
}

const snapshotFolder = (s: RepoSnapshot, o: CacheOptions) =>
  join(repoFolder(o.cacheDir ?? hubCacheDir(), s.repo, s.type), 'snapshots', s.commit);

/** Download `files` of a snapshot into the cache (those already there are not fetched again). */
async function cacheFiles(
  snapshot: RepoSnapshot,
  files: RepoFile[],
  o: CacheOptions,
): Promise<{ dir: string; snapshot: RepoSnapshot; files: RepoFile[] }> {
  const repoDir = repoFolder(o.cacheDir ?? hubCacheDir(), snapshot.repo, snapshot.type);
  const dir = snapshotFolder(snapshot, o);
  const total = files.reduce((n, f) => n + f.size, 0);
  let done = 0;
  for (const f of files) {
    const path = insideFolder(dir, f.path, snapshot);
    await cacheFile(snapshot, f, repoDir, path, o, (n) => o.onFile?.(f, done + n, total));
    done += f.size;
  }
  // the revision asked for, by name, points at the commit it resolved to (a commit needs no ref)
  const revision = snapshot.revision;
  if (revision !== snapshot.commit) {
    const ref = insideFolder(join(repoDir, 'refs'), revision, snapshot);
    await mkdir(dirname(ref), { recursive: true });
    await writeFile(ref, snapshot.commit);
  }
  return { dir, snapshot, files };
}

/**
 * A snapshot as the cache holds it, with no network: the revision through refs/ (or a commit
 * itself), the files those in its folder.
 */
async function cachedSnapshot(repo: string, type: RepoType, o: CacheOptions): Promise<RepoSnapshot> {
  const repoDir = repoFolder(o.cacheDir ?? hubCacheDir(), repo, type);
  const revision = o.revision ?? 'main';
  const isCommit = (c: string) => /^[0-9a-f]{40}$/.test(c);
  const ref = revision.split('/').some((p) => p === '' || p === '.' || p === '..') ? '' : revision;
  const named = ref && (await readFile(join(repoDir, 'refs', ref), 'utf8').catch(() => '')).trim();
  const commit = isCommit(revision) ? revision : named && isCommit(named) ? named : '';
  const dir = join(repoDir, 'snapshots', commit);
  const files: RepoFile[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true }).catch(() => [])) {
      const abs = join(d, e.name);
      if (e.isDirectory()) await walk(abs);
      else {
        // a link whose blob is gone is not a file of the snapshot
        const size = await stat(abs).then(
          (x) => x.size,
          () => -1,
        );
        if (size >= 0) files.push({ path: relative(dir, abs).split(sep).join('/'), size, sha256: null });
      }
    }
  };
  if (commit) await walk(dir);
  if (files.length === 0)
    throw new HubError(
      `HF_HUB_OFFLINE is set and the cache holds no ${type} ${repo} at ${revision} (looked in ${repoDir}): ` +
        'run once with the network, or unset HF_HUB_OFFLINE',
    );
  return { repo, type, revision, commit, files };
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

/**
 * One file into blobs/ (unless its blob is there already), linked from its snapshot path. The
 * blob is named as huggingface_hub names it: the SHA-256 for LFS files, the git blob id for
 * others (their SHA-256 where the listing gave neither).
 */
async function cacheFile(
  s: RepoSnapshot,
  f: RepoFile,
  repoDir: string,
  path: string,
  o: CacheOptions,
  onBytes: (n: number) => void,
): Promise<void> {
  const size = (p: string) =>
    stat(p).then(
      (x) => x.size,
      () => -1,
    );
  if ((await size(path)) === f.size) return onBytes(f.size); // followed through its link
  const blobs = join(repoDir, 'blobs');
  await mkdir(blobs, { recursive: true });
  const etag = f.sha256 ?? f.oid ?? null;
  if (etag && (await size(join(blobs, etag))) === f.size) {
    await link(join(blobs, etag), path);
    return onBytes(f.size);
  }
  const unnamed = createHash('sha1').update(`${s.commit}/${f.path}`).digest('hex');
  const part = join(blobs, `${etag ?? unnamed}.incomplete`);
  let offset = Math.max(0, await size(part));
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
  const hex = sum.hex();
  try {
    verifySha256(f, hex, url);
  } catch (e) {
    await rm(part);
    throw e;
  }
  const blob = join(blobs, etag ?? hex);
  await rename(part, blob);
  await link(blob, path);
}

/** `path` as a relative symbolic link to `blob`, as huggingface_hub links snapshots to blobs. */
async function link(blob: string, path: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await rm(path, { force: true });
  await symlink(relative(dirname(path), blob), path);
}

/**
 * A data set's data files for a config (`config`, else its default; or the Hub's Parquet
 * conversion of it, src/hub/select.ts), with its README.md, whose `configs:` says which files
 * those are: cached too, so that the offline cache chooses them as the Hub would.
 */
export async function cacheDataset(repo: string, o: CacheOptions & { config?: string | null } = {}) {
  const name = o.config ?? null;
  if (o.offline ?? hubOffline()) {
    // the data files of main where the cache has them, else the cached Parquet conversion
    const conversion = (revision: string) => cachedSnapshot(repo, 'dataset', { ...o, revision }).catch(() => null);
    const main = await conversion(o.revision ?? 'main');
    if (!main) {
      const converted = await cachedSnapshot(repo, 'dataset', { ...o, revision: PARQUET_REVISION });
      const parquet = parquetConfigFiles(
        converted.files.filter((f) => f.path.endsWith('.parquet')),
        name,
        repo,
      );
      return { dir: snapshotFolder(converted, o), snapshot: converted, files: parquet, config: null };
    }
    const readme = await readFile(join(snapshotFolder(main, o), 'README.md'), 'utf8').catch(() => '');
    const chosen = await chooseDatasetFiles(repo, main, readmeConfigs(readme, repo), name, conversion);
    return { dir: snapshotFolder(chosen.snapshot, o), ...chosen };
  }
  // the README first, into the cache (it is read there, and offline later), then the config's files
  const main = await repoSnapshot(repo, 'dataset', o);
  const readme = main.files.find((f) => f.path === 'README.md');
  let card = '';
  if (readme) {
    if (readme.size > README_MAX_BYTES)
      throw new HubError(
        `${repo}'s README.md is ${readme.size} bytes, more than the ${README_MAX_BYTES} read for its configs`,
      );
    const { dir } = await cacheFiles(main, [readme], o);
    card = await readFile(join(dir, 'README.md'), 'utf8');
  }
  const conversion = (revision: string) => repoSnapshot(repo, 'dataset', { ...o, revision }).catch(() => null);
  const chosen = await chooseDatasetFiles(repo, main, readmeConfigs(card, repo), name, conversion);
  const { dir } = await cacheFiles(chosen.snapshot, chosen.files, o);
  return { dir, ...chosen };
}
