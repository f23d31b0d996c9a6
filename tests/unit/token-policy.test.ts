// Where the access token may go (src/hub/token-policy.ts, enforced in src/hub/hub.ts), checked
// against real local servers that record every header they get: only the endpoint's own origin
// sees it, never a CDN the Hub redirects to, a listing page on another origin or a URL on
// another host; plain http to another machine is refused; errors never quote it. And the
// page's token store (src/ui/token-store.ts): one token per Hub origin, encrypted at rest, the
// old plain-text localStorage token moved to huggingface.co's.
import 'fake-indexeddb/auto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fetchFile, fileUrl, HubError, repoSnapshot } from '../../src/hub/hub';
import {
  authorization,
  checkEndpoint,
  hubOrigin,
  isLoopback,
  tokenAllowed,
  tokenGuardedFetch,
} from '../../src/hub/token-policy';
import { fetchWhole } from '../../src/hub/transfer';
import { LEGACY_TOKEN_KEY, TokenStore } from '../../src/ui/token-store';

const TOKEN = 'hf_SeCrEt_tOkEn_0123456789';
const COMMIT = 'a'.repeat(40);

interface Seen {
  server: string;
  path: string;
  headers: IncomingHttpHeaders;
}

/** A server that records what it receives and answers with `route`. */
interface Answer {
  status: number;
  headers?: Record<string, string>;
  body?: string;
}

interface Recording {
  url: string;
  port: number;
  server: Server;
}

async function recording(name: string, seen: Seen[], route: (path: string) => Answer): Promise<Recording> {
  const server = createServer((req, res) => {
    const path = req.url ?? '/';
    seen.push({ server: name, path, headers: req.headers });
    const r = route(path);
    res.writeHead(r.status, { 'Content-Type': 'application/json', ...r.headers }).end(r.body ?? '');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return { url: `http://127.0.0.1:${port}`, port, server };
}

const seen: Seen[] = [];
let hub: Recording;
let cdn: Recording;
const BODY = '{"ok":true}';
/** A URL on the "CDN": another origin than the Hub's. */
const elsewhere = (path: string) => `http://localhost:${cdn.port}${path}`;

beforeAll(async () => {
  // the "CDN": another origin (localhost, not 127.0.0.1), as cdn-lfs.hf.co is to huggingface.co
  cdn = await recording('cdn', seen, (path) =>
    path.startsWith('/api/')
      ? { status: 200, body: '[]' } // a listing's next page
      : { status: 200, body: BODY, headers: { 'Content-Length': String(BODY.length) } },
  );
  // errors that quote the header the request came with (as a careless server might)
  const echo = (status: number) => ({ status, body: `{"error": "bad: ${seen.at(-1)!.headers.authorization}"}` });
  hub = await recording('hub', seen, (path): Answer => {
    if (path.startsWith('/api/models/o/paged/revision/')) return { status: 200, body: JSON.stringify({ sha: COMMIT }) };
    // a listing whose next page is on another origin: the library follows Link with its token
    if (path.startsWith('/api/models/o/paged/tree/')) {
      const next = elsewhere('/api/models/o/paged/tree/next');
      return { status: 200, body: '[]', headers: { Link: `<${next}>; rel="next"` } };
    }
    if (path.startsWith('/api/models/o/echo/')) return echo(400);
    if (!path.includes('/resolve/')) return { status: 404, body: '{"error":"not found"}' };
    if (path.endsWith('/redirected.json')) {
      return { status: 302, headers: { Location: elsewhere('/cdn/redirected.json') } };
    }
    if (path.endsWith('/fails.json')) return echo(500);
    return { status: 200, body: BODY, headers: { 'Content-Length': String(BODY.length) } };
  });
});
afterAll(async () => {
  for (const s of [hub.server, cdn.server]) s.closeAllConnections();
  await Promise.all([hub, cdn].map((s) => new Promise((r) => s.server.close(r))));
});

/** What each server received since `from`: the path, and whether the token came with it. */
const received = (from: number) =>
  seen.slice(from).map((s) => {
    const auth = s.headers.authorization;
    const sent = auth === `Bearer ${TOKEN}` ? 'token' : auth ? 'other credentials' : 'no token';
    return `${s.server} ${s.path.split('?')[0]}: ${sent}`;
  });

describe('the token policy', () => {
  it('takes https endpoints, and http only to this machine; refuses the rest with what is allowed', () => {
    expect(checkEndpoint('https://huggingface.co/')).toBe('https://huggingface.co');
    expect(checkEndpoint('https://hub.example.com/mirror/')).toBe('https://hub.example.com/mirror');
    for (const loop of ['http://127.0.0.1:4174', 'http://127.9.8.7', 'http://localhost:1', 'http://[::1]:8080']) {
      expect(checkEndpoint(loop)).toBe(loop);
    }
    for (const host of ['localhost', 'a.localhost', '127.0.0.1', '[::1]', '::1']) expect(isLoopback(host)).toBe(true);
    for (const host of ['127.0.0.1.example.com', 'example.com', '10.0.0.1', '128.0.0.1', 'localhost.example.com']) {
      expect(isLoopback(host)).toBe(false);
    }
    const refused: [string, RegExp][] = [
      ['http://hub.example.com', /"http:\/\/hub.example.com" uses plain http:\/\/.*use https:\/\/.*127.0.0.1/],
      ['http://127.0.0.1.evil.example', /plain http/],
      ['ftp://huggingface.co', /not an http\(s\) URL/],
      ['javascript:alert(1)', /not an http\(s\) URL/],
      ['huggingface.co', /is not a URL: write it as https:\/\/host/],
      ['', /is not a URL/],
      [`https://user:${TOKEN}@huggingface.co`, /user name or password in its URL: remove them/],
      ['https://huggingface.co/?x=1', /query or fragment/],
    ];
    for (const [endpoint, why] of refused) {
      expect(() => checkEndpoint(endpoint), endpoint).toThrow(HubError);
      expect(() => checkEndpoint(endpoint), endpoint).toThrow(why);
    }
    // the password in a URL is never echoed back
    expect(() => checkEndpoint(`https://user:${TOKEN}@huggingface.co`)).not.toThrow(new RegExp(TOKEN));
    expect(hubOrigin('https://huggingface.co/some/path')).toBe('https://huggingface.co');
  });

  it("allows the token only to the endpoint's own origin", () => {
    const allowed: [string, string][] = [
      ['https://huggingface.co/o/n/resolve/main/config.json', 'https://huggingface.co'],
      ['https://huggingface.co/api/models/o/n', 'https://huggingface.co/'],
      ['http://127.0.0.1:4174/o/n/resolve/main/x', 'http://127.0.0.1:4174'],
    ];
    const refused: [string, string][] = [
      ['https://cdn-lfs.huggingface.co/repos/x', 'https://huggingface.co'], // a subdomain is another origin
      ['https://cas-bridge.xethub.hf.co/xet-bridge-us/x', 'https://huggingface.co'],
      ['http://huggingface.co/o/n', 'https://huggingface.co'], // the same host over http
      ['https://huggingface.co:444/o/n', 'https://huggingface.co'],
      ['http://127.0.0.1:4175/o/n', 'http://127.0.0.1:4174'], // another port
      ['https://evil.example/o/n', 'https://huggingface.co'],
      ['http://hub.example.com/o/n', 'http://hub.example.com'], // plain http to another machine: never
      ['not a url', 'https://huggingface.co'],
    ];
    for (const [url, endpoint] of allowed) expect(authorization(url, endpoint, TOKEN), url).toBe(`Bearer ${TOKEN}`);
    for (const [url, endpoint] of refused) expect(tokenAllowed(url, endpoint), `${url} for ${endpoint}`).toBe(false);
    expect(authorization('https://huggingface.co/x', 'https://huggingface.co', null)).toBeUndefined();
  });

  it('sends the token to the endpoint, never to a CDN it redirects to, another origin or a listing page', async () => {
    const from = seen.length;
    const o = { endpoint: hub.url, token: TOKEN };
    const snapshot = { repo: 'o/n', type: 'model' as const, commit: COMMIT };
    const file = (path: string) => ({ path, size: BODY.length, sha256: null });
    // the endpoint's own file: the token goes
    const text = async (path: string) =>
      Buffer.from(await fetchWhole(fileUrl(snapshot, path, o), file(path), o)).toString();
    expect(await text('config.json')).toBe(BODY);
    // redirected to the CDN: fetch follows it, and the CDN gets no token
    expect(await text('redirected.json')).toBe(BODY);
    // a URL on another origin, asked for directly with the endpoint's options: no token
    await (await fetchFile(elsewhere(`/o/n/resolve/${COMMIT}/direct.json`), BODY.length, 0, o)).cancel();
    // a listing whose next page is on another origin
    await repoSnapshot('o/paged', 'model', o);
    expect(received(from)).toEqual([
      `hub /o/n/resolve/${COMMIT}/config.json: token`,
      `hub /o/n/resolve/${COMMIT}/redirected.json: token`,
      'cdn /cdn/redirected.json: no token',
      `cdn /o/n/resolve/${COMMIT}/direct.json: no token`,
      'hub /api/models/o/paged/revision/main: token',
      `hub /api/models/o/paged/tree/${COMMIT}: token`,
      'cdn /api/models/o/paged/tree/next: no token',
    ]);
  });

  it("keeps the user's token on the Hub's origin, and lets another credential go where it was made for", async () => {
    const sent: [string, string | null][] = [];
    const inner = (async (input: RequestInfo | URL, init?: RequestInit) => {
      sent.push([String(input), new Headers(init?.headers).get('authorization')]);
      return new Response('{}');
    }) as typeof fetch;
    const endpoint = 'https://huggingface.co';
    const guarded = tokenGuardedFetch(endpoint, inner, TOKEN);
    const call = (url: string, auth: string) => guarded(url, { headers: { Authorization: auth } });
    await call('https://huggingface.co/api/models/o/n/commit/main', `Bearer ${TOKEN}`);
    await call('https://cdn.example/elsewhere', `Bearer ${TOKEN}`); // the user's token, elsewhere: taken off
    await call('https://cas-server.xethub.hf.co/v1/xorbs/x', 'Bearer xet-write-jwt'); // Xet's own: kept
    expect(sent).toEqual([
      ['https://huggingface.co/api/models/o/n/commit/main', `Bearer ${TOKEN}`],
      ['https://cdn.example/elsewhere', null],
      ['https://cas-server.xethub.hf.co/v1/xorbs/x', 'Bearer xet-write-jwt'],
    ]);
    // without the token to look for, any credential to another origin is taken off
    const strict = tokenGuardedFetch(endpoint, inner);
    await strict('https://cas-server.xethub.hf.co/v1/xorbs/x', { headers: { Authorization: 'Bearer xet-write-jwt' } });
    expect(sent.at(-1)).toEqual(['https://cas-server.xethub.hf.co/v1/xorbs/x', null]);
  });

  it('refuses plain http to another machine before any request, token or not', async () => {
    const from = seen.length;
    for (const token of [TOKEN, null]) {
      const o = { endpoint: 'http://hub.example.com', token };
      await expect(repoSnapshot('o/n', 'model', o)).rejects.toThrow(/plain http:\/\/.*use https:\/\//);
      await expect(fetchFile('http://hub.example.com/o/n/resolve/main/x', 1, 0, o)).rejects.toThrow(HubError);
    }
    expect(seen.length).toBe(from);
  });

  it('never puts the token in an error, even where the server quotes it back', async () => {
    const o = { endpoint: hub.url, token: TOKEN, retries: 0, backoff: 1 };
    const snapshot = { repo: 'o/n', type: 'model' as const, commit: COMMIT };
    const whole = (path: string, size: number, sha256: string | null = null) =>
      fetchWhole(fileUrl(snapshot, path, o), { path, size, sha256 }, o);
    const failures: (() => Promise<unknown>)[] = [
      () => repoSnapshot('o/echo', 'model', o), // 400 quoting the Authorization header
      () => repoSnapshot('o/missing', 'model', o), // 404
      () => repoSnapshot('o/n', 'model', { ...o, endpoint: 'http://127.0.0.1:1' }), // nothing listens
      () => whole('fails.json', 10), // 500 quoting it
      () => whole('config.json', 3), // the wrong size
      () => whole('config.json', BODY.length, 'b'.repeat(64)), // corrupt
    ];
    for (const [i, f] of failures.entries()) {
      const e = await f().then(
        () => null,
        (x: unknown) => x,
      );
      expect(e, `case ${i}`).toBeInstanceOf(HubError);
      const all = `${(e as Error).message}\n${(e as Error).stack}\n${JSON.stringify(e)}\n${String(e)}`;
      expect(all, `case ${i}`).not.toContain(TOKEN);
      expect(all, `case ${i}`).not.toContain(TOKEN.slice(3, 15));
    }
  });
});

describe("the page's token store", () => {
  it("keeps one token per Hub origin, encrypted, and never overwrites another origin's", async () => {
    const tokens = new TokenStore('test-tokens-1');
    await tokens.save('https://huggingface.co', TOKEN);
    await tokens.save('http://127.0.0.1:4174', 'hf_local');
    expect(await tokens.load('https://huggingface.co')).toBe(TOKEN);
    expect(await tokens.load('http://127.0.0.1:4174')).toBe('hf_local');
    expect(await tokens.load('http://127.0.0.1:4175')).toBeNull();
    await tokens.save('http://127.0.0.1:4175', 'hf_other');
    await tokens.save('http://127.0.0.1:4174', null); // forgotten
    expect(await tokens.load('http://127.0.0.1:4174')).toBeNull();
    expect(await tokens.load('https://huggingface.co')).toBe(TOKEN);
    // a second page (a new store object, the same database) reads them back with the same key
    expect(await new TokenStore('test-tokens-1').load('http://127.0.0.1:4175')).toBe('hf_other');
    // at rest: no plain text anywhere in the database, and a key no script can export
    const raw = await dump('test-tokens-1');
    type Sealed = { iv: Uint8Array; data: ArrayBuffer };
    const sealed = Object.entries(raw)
      .filter(([k]) => k.startsWith('token:'))
      .map(([, v]) => v as Sealed);
    expect(sealed.length).toBe(2);
    const bytes = Buffer.concat(sealed.flatMap((v) => [Buffer.from(v.data), Buffer.from(v.iv)]));
    expect(bytes.includes(Buffer.from(TOKEN))).toBe(false);
    expect(JSON.stringify(raw)).not.toContain(TOKEN);
    const key = raw.key as CryptoKey;
    expect(key.extractable).toBe(false);
    await expect(crypto.subtle.exportKey('raw', key)).rejects.toThrow();
  });

  it("moves the old page's plain-text token to huggingface.co's, removes it, and keeps a newer one", async () => {
    const storage = new Map<string, string>([[LEGACY_TOKEN_KEY, ` ${TOKEN} `]]);
    const local = { getItem: (k: string) => storage.get(k) ?? null, removeItem: (k: string) => void storage.delete(k) };
    const tokens = new TokenStore('test-tokens-2');
    await tokens.migrate(local);
    expect(storage.has(LEGACY_TOKEN_KEY)).toBe(false);
    expect(await tokens.load('https://huggingface.co')).toBe(TOKEN);
    expect(await tokens.load('http://127.0.0.1:4174')).toBeNull();
    storage.set(LEGACY_TOKEN_KEY, 'hf_stale');
    await tokens.migrate(local);
    expect(await tokens.load('https://huggingface.co')).toBe(TOKEN);
    expect(storage.has(LEGACY_TOKEN_KEY)).toBe(false);
  });
});

/** Every value in a token database, by key. */
async function dump(db: string): Promise<Record<string, unknown>> {
  const open = indexedDB.open(db);
  const d = await new Promise<IDBDatabase>((resolve, reject) => {
    open.onsuccess = () => resolve(open.result);
    open.onerror = () => reject(open.error);
  });
  const store = d.transaction('tokens').objectStore('tokens');
  const [ks, vs] = [store.getAllKeys(), store.getAll()];
  await new Promise((r) => (vs.onsuccess = r));
  d.close();
  return Object.fromEntries(ks.result.map((k, i) => [String(k), vs.result[i]]));
}
