// The Hugging Face Hub, read-only: which files a model or data set repo holds at a revision
// (through @huggingface/hub), and each file's bytes, streamed from any offset with an HTTP
// Range request so an interrupted download resumes where it stopped. The endpoint is
// configurable (huggingface.co by default; the tests serve a local one); an access token, when
// given, is sent to that endpoint only and never written to a log or an error message.
import { listFiles, modelInfo, datasetInfo } from '@huggingface/hub';

export const HUB_ENDPOINT = 'https://huggingface.co';

export interface HubOptions {
  endpoint?: string;
  token?: string | null;
  revision?: string;
  fetch?: typeof fetch;
}

export type RepoType = 'model' | 'dataset';

export interface RepoFile {
  path: string;
  size: number;
  /** The Hub's SHA-256 of the content, for files stored in LFS / Xet. */
  sha256: string | null;
}

export interface RepoSnapshot {
  repo: string;
  type: RepoType;
  /** The commit the revision pointed at: downloads use it, so files cannot change midway. */
  commit: string;
  files: RepoFile[];
}

export class HubError extends Error {
  override name = 'HubError';
  /** `transient`: worth trying again (the network, a 5xx); otherwise the request itself is wrong. */
  constructor(message: string, readonly status?: number, readonly transient = false) {
    super(message);
  }
}

/** Hub ids are `name` or `owner/name`, of letters, digits, `-`, `_`, `.`. */
export function isRepoId(s: string): boolean {
  return /^([\w.-]+\/)?[\w.-]+$/.test(s) && !s.includes('..') && !/^[./]/.test(s);
}

export async function repoSnapshot(repo: string, type: RepoType, o: HubOptions = {}): Promise<RepoSnapshot> {
  if (!isRepoId(repo)) throw new HubError(`"${repo}" is not a Hub repo id (owner/name)`);
  const hubUrl = endpoint(o);
  const credentials = o.token ? { accessToken: o.token } : {};
  const revision = o.revision ?? 'main';
  let commit: string;
  try {
    const info = type === 'model'
      ? await modelInfo({ name: repo, hubUrl, revision, additionalFields: ['sha'], fetch: o.fetch, ...credentials })
      : await datasetInfo({ name: repo, hubUrl, revision, additionalFields: ['sha'], fetch: o.fetch, ...credentials });
    commit = (info as { sha?: string }).sha ?? revision;
    if (!/^[0-9a-f]{40}$/.test(commit)) throw new HubError(`the Hub answered commit ${JSON.stringify(commit).slice(0, 60)} for ${repo}, which is not a commit hash`);
  } catch (e) {
    throw describeFailure(e, `${type} ${repo}`, !!o.token);
  }
  const files: RepoFile[] = [];
  try {
    for await (const f of listFiles({ repo: { type, name: repo }, revision: commit, recursive: true, hubUrl, fetch: o.fetch, ...credentials })) {
      if (f.type !== 'file') continue;
      // paths become file names in caches: refuse anything that could leave the repo's folder
      if (f.path.split('/').some((part) => part === '' || part === '.' || part === '..') || /^[/\\]|\\/.test(f.path)) {
        throw new HubError(`the Hub listed a file named ${JSON.stringify(f.path).slice(0, 80)} in ${repo}, which is not a safe path`);
      }
      files.push({ path: f.path, size: f.lfs?.size ?? f.size, sha256: f.lfs?.oid ?? null });
    }
  } catch (e) {
    throw describeFailure(e, `${type} ${repo}`, !!o.token);
  }
  return { repo, type, commit, files };
}

export function fileUrl(snapshot: Pick<RepoSnapshot, 'repo' | 'type' | 'commit'>, path: string, o: HubOptions = {}): string {
  const prefix = snapshot.type === 'dataset' ? 'datasets/' : '';
  const file = path.split('/').map(encodeURIComponent).join('/');
  return `${endpoint(o)}/${prefix}${snapshot.repo}/resolve/${encodeURIComponent(snapshot.commit)}/${file}`;
}

/**
 * A file's bytes from `offset` up to `end` (default: its end). The server must honour the
 * Range (206), or send the whole file (200) when the whole file is asked for; the length must
 * be what the listing implies.
 */
export async function fetchFile(url: string, size: number, offset: number, o: HubOptions & { signal?: AbortSignal } = {}, end = size): Promise<ReadableStream<Uint8Array>> {
  const headers: Record<string, string> = {};
  if (o.token) headers.Authorization = `Bearer ${o.token}`;
  const ranged = offset > 0 || end < size;
  if (ranged) headers.Range = `bytes=${offset}-${end < size ? end - 1 : ''}`;
  const name = url.slice(url.lastIndexOf('/') + 1);
  let res: Response;
  try {
    res = await (o.fetch ?? fetch)(url, { headers, signal: o.signal });
  } catch (e) {
    if ((e as Error).name === 'AbortError') throw e;
    throw new HubError(`could not reach the Hub for ${name} (${(e as Error).message}); check the connection and try again: the download resumes`, undefined, true);
  }
  if (!res.ok) {
    await res.body?.cancel();
    throw statusError(res.status, name, !!o.token, offset);
  }
  if (ranged && res.status !== 206) {
    await res.body?.cancel();
    throw new HubError(end < size
      ? `${name}: the server ignored the Range request (status ${res.status}), so the file cannot be read in parts`
      : `${name}: the server ignored the Range request (status ${res.status}), so the download cannot resume`, res.status);
  }
  // (an encoded response's length is the encoded one: nothing to compare)
  const length = res.headers.get('content-encoding') ? NaN : Number(res.headers.get('content-length') ?? NaN);
  if (Number.isFinite(length) && length !== end - offset) {
    await res.body?.cancel();
    throw new HubError(end === size
      ? `${name}: the server sends ${length} bytes from offset ${offset}; the repo lists the file at ${size} bytes`
      : `${name}: the server sends ${length} bytes from offset ${offset}; ${end - offset} were asked of its ${size}`);
  }
  if (!res.body) throw new HubError(`${name}: the response has no body`);
  return res.body;
}

function endpoint(o: HubOptions): string {
  return (o.endpoint ?? HUB_ENDPOINT).replace(/\/+$/, '');
}

function statusError(status: number, what: string, hasToken: boolean, offset = 0): HubError {
  if (status === 401 || status === 403) {
    return new HubError(hasToken
      ? `${what}: the Hub refused the access token (${status}); check that it is valid and that you accepted the model's terms on its page`
      : `${what}: the Hub asks for an access token (${status}); this repo is gated or private: add a token from huggingface.co/settings/tokens`, status);
  }
  if (status === 404) return new HubError(`${what} was not found on the Hub (404): check the id and the revision`, status);
  if (status === 416) return new HubError(`${what}: the Hub refused the resume offset ${offset} (416); the stored part is larger than the file: delete it and download again`, status);
  return new HubError(`${what}: the Hub answered ${status}; try again later`, status, status >= 500 || status === 429);
}

function describeFailure(e: unknown, what: string, hasToken: boolean): HubError {
  const status = (e as { statusCode?: number }).statusCode;
  if (typeof status === 'number') return statusError(status, what, hasToken);
  return new HubError(`could not read ${what} from the Hub (${(e as Error).message})`);
}
