// The build, the dev server and vitest (below), and the page's Content-Security-Policy, in one
// place: a Vite plugin puts it into index.html as a <meta> tag (so any static host serves it) and
// sends it as a header from `vite` and `vite preview` (so the engine worker, whose script is
// fetched on its own, is held to it as well: a worker takes the policy of its own script's
// response, not the page's meta tag; a static host should send the header too, see `cspHeader`).
// The page runs code only from its own origin and talks only to the Hub; the dev server and the
// test build (`--mode test`) also reach this machine over plain http (the local test Hub, Vite's
// hot reload).
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { runnerImport, type Connect, type Plugin } from 'vite';
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

/** Every file under `dir`, as paths relative to it with forward slashes. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => relative(dir, join(e.parentPath, e.name)).split('\\').join('/'));
}

/**
 * The built-in demo (scripts/demo-hub.ts) written into public/demo-hub before the dev server or
 * a build starts, when it is missing or older than what makes it (it is generated, not committed).
 */
function demoHub(): Plugin {
  const out = resolve('public/demo-hub');
  const sources = ['scripts/demo-hub.ts', 'scripts/demo/chat.jsonl', 'tests/fixtures/tiny-checkpoint.ts'];
  return {
    name: 'demo-hub',
    async buildStart() {
      const made = existsSync(out) ? statSync(out).mtimeMs : 0;
      if (sources.every((f) => statSync(f).mtimeMs < made)) return;
      const { module } = await runnerImport<{ writeDemoHub(dir: string): Promise<void> }>(
        resolve('scripts/demo-hub.ts'),
        {
          configFile: false,
          logLevel: 'error',
        },
      );
      await module.writeDemoHub(out);
    },
  };
}

/**
 * sw.js (src/ui/service-worker.js) for a build: the files to keep offline are every file the
 * build emits and every file of public/, and the version is their digest, so each build that
 * changes anything replaces the cache of the one before.
 */
function serviceWorker(): Plugin {
  return {
    name: 'service-worker',
    apply: 'build',
    generateBundle(_, bundle) {
      // (ONNX Runtime's 27 MB of WebAssembly comes with transformers.js, whose tokenizers never load it)
      const emitted = Object.keys(bundle).filter((f) => f !== 'index.html' && !/\/ort-wasm[^/]*\.wasm$/.test(f));
      const files = ['index.html', ...emitted, ...filesUnder('public')];
      const digest = createHash('sha256');
      for (const f of Object.keys(bundle).sort()) {
        const b = bundle[f];
        digest.update(f).update(b.type === 'chunk' ? b.code : b.source);
      }
      for (const f of filesUnder('public').sort()) digest.update(f).update(readFileSync(join('public', f)));
      const version = digest.digest('hex').slice(0, 16);
      const source = readFileSync('src/ui/service-worker.js', 'utf8');
      this.emitFile({
        type: 'asset',
        fileName: 'sw.js',
        source: `const VERSION = ${JSON.stringify(version)};\nconst FILES = ${JSON.stringify(files)};\n${source}`,
      });
    },
  };
}

export default defineConfig(({ command, mode, isPreview }) => ({
  root: '.',
  // the Content-Security-Policy (above); the built-in demo; the service worker that keeps both offline
  plugins: [csp(command, mode, isPreview), ...(process.env.VITEST ? [] : [demoHub()]), serviceWorker()],
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
