// Where an access token may go. A token opens a user's private and gated repos, so it belongs
// to the Hub origin it was entered for and is sent only there, and only over https (plain
// http only to this machine, for the local test Hub). These checks sit at the lowest layer
// (src/hub/hub.ts asks them before every request it makes), so no bug in the page or the
// command line can hand the token to another server; the page adds its own per-origin storage
// on top (src/ui/token-store.ts).
import { HubError } from './hub';

/** The Hub a token is for when nothing else is said (the old page kept one token, for it). */
export const DEFAULT_HUB_ORIGIN = 'https://huggingface.co';

/** 127.0.0.0/8, ::1 and localhost: the only hosts plain http may reach (the tests' local Hub). */
export function isLoopback(hostname: string): boolean {
  const h = hostname.toLowerCase().replace(/^\[|\]$/g, '');
  return h === 'localhost' || h.endsWith('.localhost') || h === '::1' || /^127(\.\d{1,3}){3}$/.test(h);
}

/**
 * A Hub endpoint as written by a user, a link (`?hub=`) or `HF_ENDPOINT`, checked: an https URL,
 * or http to a loopback host. Returns it without trailing slashes; refuses anything else with
 * a message that says what is allowed.
 */
export function checkEndpoint(endpoint: string): string {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    const example = DEFAULT_HUB_ORIGIN;
    throw new HubError(`the Hub endpoint ${quote(endpoint)} is not a URL: write it as https://host (e.g. ${example})`);
  }
  if (url.username || url.password) {
    throw new HubError(
      `the Hub endpoint ${quote(url.host)} carries a user name or password in its URL: remove them ` +
        '(a token goes in the token field, or HF_TOKEN)',
    );
  }
  if (url.protocol === 'http:' && !isLoopback(url.hostname)) {
    throw new HubError(
      `the Hub endpoint ${quote(url.origin)} uses plain http://, which anyone on the way can read: ` +
        'use https:// (http is allowed only for this machine: localhost, 127.0.0.1, ::1)',
    );
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new HubError(`the Hub endpoint ${quote(endpoint)} is not an http(s) URL: write it as https://host`);
  }
  if (url.search || url.hash) {
    throw new HubError(
      `the Hub endpoint ${quote(endpoint)} has a query or fragment: give just https://host ` +
        '(and a path, if the Hub lives under one)',
    );
  }
  return `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
}

/** The origin a token for `endpoint` belongs to (the endpoint checked first). */
export function hubOrigin(endpoint: string): string {
  return new URL(checkEndpoint(endpoint)).origin;
}

/**
 * Whether a request to `url` may carry the token of `endpoint`: only to the endpoint's own
 * origin, over https or loopback http. Redirect targets (the Hub's CDN and Xet storage) are
 * other origins and never get it: fetch drops `Authorization` on a cross-origin redirect, and
 * the URLs we ask for directly are checked here.
 */
export function tokenAllowed(url: string, endpoint: string): boolean {
  let target: URL;
  try {
    target = new URL(url);
  } catch {
    return false;
  }
  let origin: string;
  try {
    origin = hubOrigin(endpoint);
  } catch {
    return false;
  }
  return target.origin === origin && (target.protocol === 'https:' || isLoopback(target.hostname));
}

/** The `Authorization` header for a request to `url`, or nothing where the policy says no. */
export function authorization(url: string, endpoint: string, token: string | null | undefined): string | undefined {
  return token && tokenAllowed(url, endpoint) ? `Bearer ${token}` : undefined;
}

/**
 * A fetch for @huggingface/hub that takes `Authorization` off any request not bound for the
 * endpoint's own origin (a `Link: next` page, say, that points elsewhere): the library sends
 * its token with every call it makes, so the check has to sit here. Given the user's `token`,
 * it takes off only that token: a commit's Xet upload goes to the Xet storage's own origin with
 * the short-lived write token the Hub handed out for it, which must get there.
 */
export function tokenGuardedFetch(endpoint: string, inner: typeof fetch = fetch, token?: string | null): typeof fetch {
  return (input, init) => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    const headers = new Headers(init?.headers ?? (input instanceof Request ? input.headers : undefined));
    const auth = headers.get('authorization');
    const ours = !token || !!auth?.includes(token);
    if (auth !== null && ours && !tokenAllowed(url, endpoint)) {
      headers.delete('authorization');
      return inner(input instanceof Request ? new Request(input, { headers }) : input, { ...init, headers });
    }
    return inner(input, init);
  };
}

/** Removes every copy of the token from a text (an error message from below, a log line). */
export function redactToken(text: string, token: string | null | undefined): string {
  return token && token.length >= 4 ? text.split(token).join('hf_***') : text;
}

const quote = (s: string) => JSON.stringify(s.length > 100 ? `${s.slice(0, 100)}…` : s);
