// `npm run bench:page`: serves the bench page with Vite, opens it in headless chromium (WebGPU on
// whatever adapter chromium finds; SwiftShader here), prints the table and writes it as JSON
// under bench/results/. Pass --size small to force the small shapes.
import { mkdirSync, writeFileSync } from 'node:fs';
import { chromium } from '@playwright/test';
import { createServer } from 'vite';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const ARGS = [
  '--headless=new',
  '--no-sandbox',
  '--enable-unsafe-webgpu',
  '--enable-features=Vulkan',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
];
if (!process.env.BENCH_GPU) ARGS.push('--use-webgpu-adapter=swiftshader');
const size = process.argv.includes('--size') ? process.argv[process.argv.indexOf('--size') + 1] : '';

const server = await createServer({ logLevel: 'warn', server: { host: '127.0.0.1', port: 5199, strictPort: false } });
await server.listen();
const url = `${server.resolvedUrls.local[0]}bench/index.html${size ? `?size=${size}` : ''}`;
const browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS });
try {
  const page = await browser.newPage();
  page.on('console', (m) => m.type() === 'error' && console.error('[page]', m.text()));
  await page.goto(url);
  await page.waitForFunction(() => window.__bench !== undefined, null, { timeout: 30 * 60_000 });
  const result = await page.evaluate(() => window.__bench);
  if ('error' in result) throw new Error(result.error);
  console.log(
    `\nadapter: ${result.adapter} (${result.size} shapes); ` +
      `peer: @tensorflow/tfjs-backend-webgpu f32 matMul, same shape\n`,
  );
  console.log(result.table);
  mkdirSync('bench/results', { recursive: true });
  const stamp = new Date().toISOString().slice(0, 19).replace(/[:T]/g, '-');
  const file = `bench/results/${stamp}-${result.adapter.replace(/\W+/g, '_')}.json`;
  writeFileSync(
    file,
    JSON.stringify(
      {
        date: new Date().toISOString(),
        adapter: result.adapter,
        size: result.size,
        rows: result.rows,
        models: result.models,
      },
      null,
      2,
    ) + '\n',
  );
  console.log(`\nwritten to ${file}`);
} finally {
  await browser.close();
  await server.close();
}
