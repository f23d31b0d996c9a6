// Writing to the Hub: files pushed to a user's own model repo in one commit, as PEFT's
// `push_to_hub` does it: the repo is created when it is not there, then one commit adds or
// replaces the files. @huggingface/hub speaks the protocol (the preupload call that says which
// files go through LFS, the LFS or Xet upload of those, the NDJSON commit); this module checks
// what it is given, keeps the token to the endpoint's own origin and says what went wrong.
import { commit, createRepo } from '@huggingface/hub';
import { HubError, isRepoId } from './hub';
import { checkEndpoint, redactToken, tokenGuardedFetch } from './token-policy';

export interface PushOptions {
  endpoint: string;
  token: string | null;
  /** A repo made by this push is private (one that exists keeps its visibility). */
  private: boolean;
  /** The commit's title. */
  message: string;
  fetch?: typeof fetch;
}

export interface PushResult {
  /** The repo's page. */
  url: string;
  commit: string;
  /** Whether this push created the repo. */
  created: boolean;
}

export async function pushFiles(repo: string, files: Record<string, Uint8Array>, o: PushOptions): Promise<PushResult> {
  if (!isRepoId(repo) || !repo.includes('/')) {
    throw new HubError(`"${repo}" is not a repo id: write it as your-name/repo-name (or an organization's name)`);
  }
  if (!o.token) {
    throw new HubError(
      'pushing to the Hub needs an access token with write access: make one at huggingface.co/settings/tokens ' +
        'and enter it as the access token (the page: Hub settings; the command line: HF_TOKEN)',
    );
  }
  const hubUrl = checkEndpoint(o.endpoint);
  const fetch = tokenGuardedFetch(hubUrl, o.fetch, o.token);
  const common = { repo: { type: 'model' as const, name: repo }, accessToken: o.token, hubUrl, fetch };
  let created = true;
  try {
    await createRepo({ ...common, visibility: o.private ? 'private' : 'public' });
  } catch (e) {
    if (status(e) !== 409) throw failure(e, `creating ${repo}`, o.token);
    created = false; // it exists: the commit goes on top of it, as push_to_hub's create_repo(exist_ok=True)
  }
  try {
    const out = await commit({
      ...common,
      title: o.message,
      operations: Object.entries(files).map(([path, bytes]) => ({
        operation: 'addOrUpdate' as const,
        path,
        content: new Blob([bytes as BlobPart]),
      })),
      useWebWorkers: false,
    });
    if (!out) throw new HubError(`the Hub took the commit to ${repo} but sent no commit back`);
    return { url: `${hubUrl}/${repo}`, commit: out.commit.oid, created };
  } catch (e) {
    throw failure(e, `pushing to ${repo}`, o.token);
  }
}

const status = (e: unknown) => (e as { statusCode?: number }).statusCode;

function failure(e: unknown, what: string, token: string): HubError {
  if (e instanceof HubError) return e;
  const code = status(e);
  const why = redactToken(String((e as Error)?.message ?? e), token);
  if (code === 401) return new HubError(`${what}: the Hub refused the token (401): check that it is valid`, code);
  if (code === 403)
    return new HubError(
      `${what}: the token may not write there (403): use a token with write access, to a repo under your ` +
        `own name or an organization you can write to (${why})`,
      code,
    );
  return new HubError(`${what} failed: ${why}`, code, code === undefined || code >= 500 || code === 429);
}
