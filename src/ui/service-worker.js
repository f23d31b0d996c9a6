// The page's service worker: it keeps the built app and the built-in demo (public/demo-hub) in
// the Cache API, so after a first visit the page opens, and trains a stored model, with no
// network. vite.config.ts writes it to sw.js at build, with VERSION (a digest of the build) and
// FILES (every file the build emits, and public/) defined above this text. Hub requests (other
// origins) are never touched: downloads go to the network and into IndexedDB as before. Lookups
// ignore the query (the Hub API's ?expand=…) and Vary (a server's `Vary: Origin` would otherwise
// keep a module script, fetched with an Origin header, from the copy cached without one).
/* global VERSION, FILES */
const CACHE = `qlora-app-${VERSION}`;
const LOOKUP = { ignoreSearch: true, ignoreVary: true };

self.addEventListener('install', (event) => {
  // a file that fails to cache fails the install: the old worker (and its cache) stays in charge.
  // Each file from the server, not the HTTP cache (index.html and the demo's names do not change
  // with their content). A new build waits, as service workers do, until no tab runs the old one:
  // an open page keeps loading its own build's files (a model's tokenizer worker, say) from them.
  event.waitUntil(
    caches.open(CACHE).then((cache) => cache.addAll(FILES.map((f) => new Request(f, { cache: 'reload' })))),
  );
});

self.addEventListener('activate', (event) => {
  // no tab runs an older build any more: its cache goes
  event.waitUntil(
    caches
      .keys()
      .then((keys) => keys.filter((k) => k.startsWith('qlora-app-') && k !== CACHE))
      .then((old) => Promise.all(old.map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

/**
 * A Range request (a data file read in parts) answered from the cached whole file, as a server
 * would answer it; null when the file is not cached or the range is not one this answers.
 */
async function rangeFromCache(request) {
  const m = /^bytes=(\d+)-(\d*)$/.exec(request.headers.get('range') ?? '');
  const hit = m && (await caches.match(request, LOOKUP));
  if (!hit) return null;
  const whole = new Uint8Array(await hit.arrayBuffer());
  const start = Number(m[1]);
  const end = Math.min(whole.length, m[2] ? Number(m[2]) + 1 : whole.length);
  if (start >= whole.length || end <= start)
    return new Response(null, { status: 416, headers: { 'Content-Range': `bytes */${whole.length}` } });
  return new Response(whole.slice(start, end), {
    status: 206,
    headers: {
      'Content-Type': hit.headers.get('Content-Type') ?? 'application/octet-stream',
      'Content-Length': String(end - start),
      'Content-Range': `bytes ${start}-${end - 1}/${whole.length}`,
    },
  });
}

self.addEventListener('fetch', (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (request.method !== 'GET' || url.origin !== self.location.origin) return; // the Hub's are not ours
  if (request.headers.has('range')) {
    // from the cache where the file is kept (offline too), else from the network as asked
    event.respondWith(rangeFromCache(request).then((r) => r ?? fetch(request)));
    return;
  }
  if (request.mode === 'navigate') {
    // the page: the network's when online (a new build shows at once), else the cached one
    event.respondWith(
      fetch(request).catch(async () => (await caches.match('index.html', LOOKUP)) ?? Response.error()),
    );
    return;
  }
  // the build's files are named by their content and the demo's by its commit: the cache is right when it has them
  event.respondWith(
    caches.match(request, LOOKUP).then(
      (hit) =>
        hit ??
        fetch(request).then((response) => {
          if (response.ok && response.type === 'basic') {
            const copy = response.clone();
            event.waitUntil(caches.open(CACHE).then((cache) => cache.put(request, copy)));
          }
          return response;
        }),
    ),
  );
});
