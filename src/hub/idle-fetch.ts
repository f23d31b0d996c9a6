// fetch with an idle timeout. A server can accept the connection and never answer, or send the
// headers and then go silent mid-body; fetch itself waits forever on both. Every read of the Hub
// (the listing calls through @huggingface/hub and each file's bytes) goes through idleFetch:
// the headers, and then each chunk of the body, must arrive within `idleMs` of being asked for,
// or the request is aborted with a HubError that names the URL. Only time spent waiting on the
// server counts, not time the reader spends elsewhere (quantizing a tensor between reads). The
// caller's own abort (a pause) still ends the request with the caller's reason, so a pause is
// told apart from a timeout. A network failure or a redirect loop becomes a HubError too.
import { HubError } from './hub';

/** How long a read may wait for the server by default: long enough for a slow CDN, short enough to notice. */
export const IDLE_MS = 30_000;

export interface IdleFetchOptions {
  fetch?: typeof fetch;
  signal?: AbortSignal;
  /** Milliseconds the headers, then each body chunk, may take to arrive (default IDLE_MS). */
  idleMs?: number;
  /** The most body bytes accepted (an API answer): more is an error, not an allocation. */
  maxBytes?: number;
}

/** A URL as errors show it: no user name, password or query (a signed CDN link's secrets). */
export function shownUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.origin}${u.pathname}`;
  } catch {
    return url.slice(0, 200);
  }
}

/** Like fetch(url, init), with the limits above; the Response's body enforces them as it is read. */
export async function idleFetch(url: string, init: RequestInit, o: IdleFetchOptions = {}): Promise<Response> {
  const idleMs = o.idleMs ?? IDLE_MS;
  if (o.signal?.aborted) throw o.signal.reason;
  const abort = new AbortController();
  const onAbort = () => abort.abort(o.signal!.reason);
  o.signal?.addEventListener('abort', onAbort, { once: true });
  const finish = () => o.signal?.removeEventListener('abort', onAbort);
  const stalled = (part: string) =>
    new HubError(
      `${shownUrl(url)}: the server sent no ${part} for ${seconds(idleMs)} (it stalled); try again later`,
      undefined,
      true,
    );

  let res: Response;
  try {
    const answer = (o.fetch ?? fetch)(url, { ...init, signal: abort.signal });
    res = await within(
      idleMs,
      answer,
      () => stalled('answer'),
      () => abort.abort(),
    );
  } catch (e) {
    finish();
    if (o.signal?.aborted) throw o.signal.reason;
    throw e instanceof HubError ? e : unreachable(url, e);
  }
  if (!res.body) {
    finish();
    return res;
  }
  if (res.status < 200 || res.status > 599) {
    // (a Response cannot even be built with such a status)
    finish();
    abort.abort();
    throw new HubError(
      `${shownUrl(url)}: the server answered status ${res.status}, which is not an HTTP answer ` +
        'to a request; check the Hub endpoint',
    );
  }
  const reader = res.body.getReader();
  let received = 0;
  const body = new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        try {
          const { done, value } = await within(
            idleMs,
            reader.read(),
            () => stalled('bytes'),
            () => abort.abort(),
          );
          if (done) {
            finish();
            return controller.close();
          }
          received += value.length;
          if (o.maxBytes !== undefined && received > o.maxBytes) {
            throw new HubError(
              `${shownUrl(url)}: the answer is over ${o.maxBytes} bytes, more than such an ` +
                'answer can be; this server is not a Hub that can be read here',
            );
          }
          controller.enqueue(value);
        } catch (e) {
          finish();
          abort.abort();
          // a dropped connection (undici reports a TypeError) stays a TypeError: the caller reconnects
          controller.error(o.signal?.aborted ? o.signal.reason : e);
        }
      },
      async cancel(reason) {
        finish();
        await reader.cancel(reason).catch(() => {});
      },
    },
    { highWaterMark: 0 },
  );
  return new Response(body, { status: res.status, headers: res.headers });
}

/** `p`, or the error `timeout()` gives when `ms` pass first; then `stop()` (after the error is settled on). */
function within<T>(ms: number, p: Promise<T>, timeout: () => Error, stop: () => void): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(timeout());
      stop(); // the abort rejects `p` too, but the race has already taken the timeout
    }, ms);
  });
  p.catch(() => {}); // a rejection after the timeout (the abort) has no one left to tell
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

/** fetch's own failures: a redirect loop is the server's fault; the rest may pass (transient). */
function unreachable(url: string, e: unknown): HubError {
  const cause = (e as { cause?: { message?: string } }).cause?.message ?? (e as Error).message ?? String(e);
  if (/redirect/i.test(cause)) {
    return new HubError(
      `${shownUrl(url)}: the server redirects without end (${cause}); ` + 'this is not a Hub that can be read here',
    );
  }
  return new HubError(
    `could not reach ${shownUrl(url)} (${cause}); check the connection and try again`,
    undefined,
    true,
  );
}

function seconds(ms: number): string {
  return ms >= 1000 ? `${+(ms / 1000).toFixed(1)} s` : `${ms} ms`;
}
