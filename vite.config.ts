// The build, the dev server and vitest (below), and the page's Content-Security-Policy, in one
// place: a Vite plugin puts it into index.html as a <meta> tag (so any static host serves it) and
// sends it as a header from `vite` and `vite preview` (so the engine worker, whose script is
// fetched on its own, is held to it as well: a worker takes the policy of its own script's
// response, not the page's meta tag; a static host should send the header too, see `cspHeader`).
// The page runs code only from its own origin and talks only to the Hub; the dev server and the
// test build (`--mode test`) also reach this machine over plain http (the local test Hub, Vite's
// hot reload).
import type { Connect, Plugin } from 'vite';
import { defineConfig } from 'vitest/config';

/** The Hub's origins: the API and resolve URLs, and the hosts its downloads redirect to. */
const HUB_SOURCES = [
  'https://huggingface.co', // the API (listings, repo info) and /resolve/ URLs
  // its subdomains: the LFS CDN (cdn-lfs.huggingface.co, cdn-lfs-us-1.huggingface.co, ...): CSP
  // wildcards take whole leading labels only, so `cdn-lfs*` cannot be written, and this covers it
  'https://*.huggingface.co',
  // hf.co: the CDN (cdn-lfs.hf.co, cdn-lfs-us-1.hf.co) and the Xet storage that /resolve/ now
  // redirects to (cas-bridge.xethub.hf.co, cas-server.xethub.hf.co, transfer.xethub.hf.co; the
  // wildcard matches any depth of subdomain), as @huggingface/hub's XetBlob reads it
  'https://*.hf.co',
];

/** This machine over plain http and ws: the local test Hub and Vite's hot-reload socket. */
// (CSP cannot name an IPv6 address such as [::1]: a Hub there is reached as localhost)
const LOOPBACK_SOURCES = ['http://127.0.0.1:*', 'http://localhost:*', 'ws://127.0.0.1:*', 'ws://localhost:*'];

type CspTarget = 'production' | 'test' | 'dev';

/** The policy's directives for a build (the meta tag's; the header adds frame-ancestors). */
function cspDirectives(target: CspTarget): Record<string, string[]> {
  return {
    'default-src': ["'self'"],
    // the app's own bundles only; 'wasm-unsafe-eval' lets WebAssembly compile (hash-wasm's SHA-256,
    // transformers.js' tokenizers), and nothing else is evaluated from text
    'script-src': ["'self'", "'wasm-unsafe-eval'"],
    'worker-src': ["'self'"], // the engine worker (and the tokenizer's worker inside it)
    // the built page links its CSS (the app's and uPlot's); the dev server injects <style> tags
    'style-src': target === 'dev' ? ["'self'", "'unsafe-inline'"] : ["'self'"],
    'img-src': ["'self'", 'data:', 'blob:'],
    'font-src': ["'self'"],
    'connect-src': ["'self'", ...HUB_SOURCES, ...(target === 'production' ? [] : LOOPBACK_SOURCES)],
    'object-src': ["'none'"],
    'base-uri': ["'none'"],
    'form-action': ["'none'"],
  };
}

const render = (d: Record<string, string[]>) =>
  Object.entries(d)
    .map(([k, v]) => `${k} ${v.join(' ')}`)
    .join('; ');

/** As a <meta> tag: frame-ancestors (and report-uri, sandbox) are ignored there, so it is left out. */
const cspMeta = (target: CspTarget) => render(cspDirectives(target));

/** As a header, which can also forbid framing the page (clickjacking the token field). */
const cspHeader = (target: CspTarget) => render({ ...cspDirectives(target), 'frame-ancestors': ["'none'"] });

/** `vite` serves the dev policy; `vite build` and `vite preview` the production one (`--mode test`: the test one). */
function csp(command: 'build' | 'serve', mode: string, isPreview = false): Plugin {
  const target: CspTarget = command === 'serve' && !isPreview ? 'dev' : mode === 'test' ? 'test' : 'production';
  // every response but the kernel bench's page (bench/index.html runs tfjs beside our kernels, outside the policy)
  const isApp = (path: string) => !path.startsWith('/bench/');
  const header: Connect.NextHandleFunction = (req, res, next) => {
    if (isApp(req.url ?? '/')) res.setHeader('Content-Security-Policy', cspHeader(target));
    next();
  };
  return {
    name: 'content-security-policy',
    transformIndexHtml: {
      order: 'pre',
      handler: (html, ctx) => {
        if (!isApp(ctx.path)) return html;
        const attrs = { 'http-equiv': 'Content-Security-Policy', content: cspMeta(target) };
        return [{ tag: 'meta', injectTo: 'head-prepend', attrs }];
      },
    },
    configureServer: (server) => void server.middlewares.use(header),
    configurePreviewServer: (server) => void server.middlewares.use(header),
  };
}

export default defineConfig(({ command, mode, isPreview }) => ({
  root: '.',
  plugins: [csp(command, mode, isPreview)], // the Content-Security-Policy (above)
  worker: { format: 'es' },
  build: { target: 'es2022', outDir: 'dist' },
  test: {
    include: ['tests/unit/**/*.test.ts'],
    // SwiftShader runs WGSL on the CPU at a few hundred MFLOP/s: generous timeouts, and one
    // process per file (each holds its own Dawn device). Two files at a time: much of a test's
    // time is single-threaded (shader compilation, the command line's process start-up), so
    // two overlap well even on two cores.
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 300_000,
    hookTimeout: 120_000,
    teardownTimeout: 10_000,
  },
}));
