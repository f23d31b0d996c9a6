// The Hugging Face Hub, read-only: which files a model or data set repo holds at a revision
// (through @huggingface/hub), and each file's bytes, streamed from any offset with an HTTP
// Range request so an interrupted download resumes where it stopped. The endpoint is
// configurable (huggingface.co by default; the tests serve a local one); an access token, when
// given, is sent to that endpoint only and never written to a log or an error message.
import { listFiles, modelInfo, datasetInfo } from '@huggingface/hub';
import { authorization, checkEndpoint, redactToken, tokenGuardedFetch } from './token-policy';
import { idleFetch, shownUrl } from './idle-fetch';
import { ListingCheck } from './listing';
import { showValue } from '../formats/show';

export const HUB_ENDPOINT = 'https://huggingface.co';

export interface HubOptions {
  endpoint?: string;
  token?: string | null;
  revision?: string;
  fetch?: typeof fetch;
  /** The caller's abort (a pause): ends any request with its reason, never taken for a timeout. */
  signal?: AbortSignal;
  /** Milliseconds a request may wait for the server's headers, then each chunk (default 30 s, idle-fetch.ts). */
  idleMs?: number;
}

/** An API answer (repo info, a page of a listing) over this is refused: the largest real ones are a few MB. */
export const API_MAX_BYTES = 64 * 2 ** 20;
/** Pages of a listing: a server whose `Link: next` never ends is refused after these. */
const MAX_PAGES = 1000;

export type RepoType = 'model' | 'dataset';

export interface RepoFile {
  path: string;
  size: number;
  /** The Hub's SHA-256 of the content, for files stored in LFS / Xet. */
  sha256: string | null;
  /** The git blob id (SHA-1) the listing gives: huggingface_hub's name for a small file's blob. */
  oid?: string | null;
}

export interface RepoSnapshot {
  repo: string;
  type: RepoType;
  /** The revision asked for: a branch, a tag or a commit. */
  revision: string;
  /** The commit the revision pointed at: downloads use it, so files cannot change midway. */
  commit: string;
  files: RepoFile[];
}

export class HubError extends Error {
  override name = 'HubError';
  /** `transient`: worth trying again (the network, a 5xx); otherwise the request itself is wrong. */
  constructor(
    message: string,
    readonly status?: number,
    readonly transient = false,
  ) {
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
  o = { ...o, fetch: apiFetch(o, `${type} ${repo}`) }; // time limits and a size cap on every API call
  // the library sends the token with every request it makes (a listing's `Link: next` page too):
  // the guard takes it off any request not bound for the endpoint's origin (src/hub/token-policy.ts)
  o = { ...o, fetch: tokenGuardedFetch(hubUrl, o.fetch) };
  const revision = o.revision ?? 'main';
  let commit: string;
  try {
    const info =
      type === 'model'
        ? await modelInfo({ name: repo, hubUrl, revision, additionalFields: ['sha'], fetch: o.fetch, ...credentials })
        : await datasetInfo({
            name: repo,
            hubUrl,
            revision,
            additionalFields: ['sha'],
            fetch: o.fetch,
            ...credentials,
          });
    // the commit names cache folders and every file URL: 40 hex digits, nothing else
    const sha = (info as { sha?: unknown } | null)?.sha ?? (/^[0-9a-f]{40}$/.test(revision) ? revision : undefined);
    if (typeof sha !== 'string' || !/^[0-9a-f]{40}$/.test(sha)) {
      throw new HubError(
        `the Hub's info for ${type} ${repo} gives sha ${showValue(sha)}, which is not a commit ` +
          '(40 hex digits); check the Hub endpoint',
      );
    }
    commit = sha;
  } catch (e) {
    throw describeFailure(e, `${type} ${repo}`, o.token, 'info');
  }
  const listing = new ListingCheck(`${type} ${repo}`);
  try {
    for await (const f of listFiles({
      repo: { type, name: repo },
      revision: commit,
      recursive: true,
      hubUrl,
      fetch: o.fetch,
      ...credentials,
    })) {
      listing.add(f);
    }
  } catch (e) {
    throw describeFailure(e, `${type} ${repo}`, o.token, 'listing');
  }
  return { repo, type, revision, commit, files: listing.done() };
}

export function fileUrl(
  snapshot: Pick<RepoSnapshot, 'repo' | 'type' | 'commit'>,
  path: string,
  o: HubOptions = {},
): string {
  const prefix = snapshot.type === 'dataset' ? 'datasets/' : '';
  const file = path.split('/').map(encodeURIComponent).join('/');
  return `${endpoint(o)}/${prefix}${snapshot.repo}/resolve/${encodeURIComponent(snapshot.commit)}/${file}`;
}

/**
 * A file's bytes from `offset` up to `end` (default: its end). The server must honour the
 * Range (206), or send the whole file (200) when the whole file is asked for; the length must
 * be what the listing implies.
 */
export async function fetchFile(
  url: string,
  size: number,
  offset: number,
  o: HubOptions & { signal?: AbortSignal } = {},
  end = size,
): Promise<ReadableStream<Uint8Array>> {
  const headers: Record<string, string> = {};
  const auth = authorization(url, endpoint(o), o.token); // the endpoint's own origin only, over https or loopback
  if (auth) headers.Authorization = auth;
  const ranged = offset > 0 || end < size;
  if (ranged) headers.Range = `bytes=${offset}-${end < size ? end - 1 : ''}`;
  // errors name the file and where it was asked for (the URL holds the repo; never the token)
  const name = `${url.slice(url.lastIndexOf('/') + 1)} (${shownUrl(url)})`;
  // a stall, a redirect loop or a network failure is a HubError; the caller's abort is its own reason
  const res = await idleFetch(url, { headers }, o);
  if (!res.ok) {
    await res.body?.cancel();
    throw statusError(res.status, name, !!o.token, offset);
  }
  if (ranged && res.status !== 206) {
    await res.body?.cancel();
    throw new HubError(
      end < size
        ? `${name}: the server ignored the Range request (status ${res.status}), so the file cannot be read in parts`
        : `${name}: the server ignored the Range request (status ${res.status}), so the download cannot resume`,
      res.status,
    );
  }
  // (an encoded response's length is the encoded one: nothing to compare)
  const length = res.headers.get('content-encoding') ? NaN : Number(res.headers.get('content-length') ?? NaN);
  if (Number.isFinite(length) && length !== end - offset) {
    await res.body?.cancel();
    throw new HubError(
      end === size
        ? `${name}: the server sends ${length} bytes from offset ${offset}; the repo lists the file at ${size} bytes`
        : `${name}: the server sends ${length} bytes from offset ${offset}; ${end - offset} were asked of its ${size}`,
    );
  }
  if (!res.body) throw new HubError(`${name}: the response has no body`);
  return res.body;
}

/**
 * The fetch @huggingface/hub is given: idleFetch's time limits and size cap on each call, the
 * caller's abort passed on, and a bound on the pages of a listing.
 */
function apiFetch(o: HubOptions, what: string): typeof fetch {
  let calls = 0;
  return (input, init) => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    if (++calls > MAX_PAGES) {
      return Promise.reject(
        new HubError(
          `the Hub's listing of ${what} did not end after ${MAX_PAGES} pages ` +
            `(${shownUrl(url)}); check the Hub endpoint`,
        ),
      );
    }
    return idleFetch(url, init ?? {}, { fetch: o.fetch, signal: o.signal, idleMs: o.idleMs, maxBytes: API_MAX_BYTES });
  };
}

/** The endpoint without trailing slashes; plain http to another machine is refused (token-policy.ts). */
function endpoint(o: HubOptions): string {
  return checkEndpoint(o.endpoint ?? HUB_ENDPOINT);
}

function statusError(status: number, what: string, hasToken: boolean, offset = 0): HubError {
  if (status === 401 || status === 403) {
    return new HubError(
      hasToken
        ? `${what}: the Hub refused the access token (${status}); check that it is valid and that you accepted ` +
            `the model's terms on its page`
        : `${what}: the Hub asks for an access token (${status}); this repo is gated or private: add a token ` +
            `from huggingface.co/settings/tokens`,
      status,
    );
  }
  if (status === 404)
    return new HubError(`${what} was not found on the Hub (404): check the id and the revision`, status);
  if (status === 416)
    return new HubError(
      `${what}: the Hub refused the resume offset ${offset} (416); the stored part is larger than the file: ` +
        `delete it and download again`,
      status,
    );
  return new HubError(`${what}: the Hub answered ${status}; try again later`, status, status >= 500 || status === 429);
}

function describeFailure(
  e: unknown,
  what: string,
  token: string | null | undefined,
  part: 'info' | 'listing',
): HubError {
  const status = (e as { statusCode?: number }).statusCode;
  if (typeof status === 'number') return statusError(status, what, !!token);
  if (e instanceof HubError) return e; // ours: a stall, a redirect loop, a bad entry; each names the repo or its URL
  // the network's failures are HubErrors (idle-fetch.ts): what is left is the library choking on the answer;
  // its message may quote the server's answer, which could echo the token back
  const why = redactToken(String((e as Error)?.message ?? e), token);
  const shape = part === 'info' ? 'a JSON object with the commit in "sha"' : 'a JSON array of file entries';
  if (e instanceof SyntaxError || e instanceof TypeError) {
    return new HubError(
      `the Hub's ${part} for ${what} is not what a Hub sends (${why}): it is ${shape}; ` + 'check the Hub endpoint',
    );
  }
  return new HubError(`could not read ${what} from the Hub (${why})`);
}
