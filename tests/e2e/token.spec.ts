// The access token in the page (issue 11): it belongs to the Hub origin it was entered for. Two
// recording Hubs stand in front of the local test Hub (tests/e2e/recording-proxy.ts), so each
// is an origin of its own and says what it received: A, the one the token is entered for, and B,
// the one a crafted link points to. And the Content-Security-Policy: its watch (fixtures.ts)
// sees what it blocks, in the page and in the engine worker.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import type { Page } from '@playwright/test';
import { GATED_TOKEN } from '../fixtures/serve-hub';
import { expect, test } from './fixtures';
import { recordingHub, type RecordingHub } from './recording-proxy';
import { HUB } from './servers';

let a: RecordingHub;
let b: RecordingHub;
test.beforeAll(async () => {
  [a, b] = [await recordingHub(HUB), await recordingHub(HUB)];
});
test.afterAll(async () => {
  // what each server received, for the closing note
  await mkdir('test-results', { recursive: true });
  const record = { [`A ${a.url}`]: summary(a), [`B ${b.url}`]: summary(b) };
  await writeFile('test-results/token-policy-servers.json', JSON.stringify(record, null, 1));
  await Promise.all([a.close(), b.close()]);
});

/** Requests by method, path (without its query) and Authorization, each once, with a count. */
function summary(hub: RecordingHub): string[] {
  const counts = new Map<string, number>();
  for (const r of hub.received) {
    const auth = r.authorization === `Bearer ${GATED_TOKEN}` ? 'Bearer <the saved token>' : r.authorization;
    const line = `${r.method} ${r.path.split('?')[0]} Authorization: ${auth}`;
    counts.set(line, (counts.get(line) ?? 0) + 1);
  }
  return [...counts].map(([line, n]) => `${n}× ${line}`);
}

async function open(page: Page, query: string): Promise<void> {
  await page.goto(`/?${query}`);
  await expect(page.locator('#download')).toBeEnabled({ timeout: 60_000 });
}

const notice = (page: Page) => page.locator('#hub-notice');

test('a token goes only to its own Hub: a link to another gets none, says so, leaves it be', async ({ page }) => {
  test.setTimeout(420_000);
  const logged: string[] = [];
  page.on('console', (m) => logged.push(m.text()));
  page.on('worker', (w) => w.on('console', (m) => logged.push(m.text())));

  // the token is entered for Hub A and used there: a gated model downloads, trains, and its adapter is saved
  await open(page, `hub=${encodeURIComponent(a.url)}&model=tiny-random/gated&data=tiny-random/guanaco`);
  await expect(notice(page)).toHaveText(`Hub: ${a.url} — not huggingface.co; no token is sent`);
  await page.locator('details', { hasText: 'Hub settings' }).locator('summary').click();
  await page.locator('#hub-token').fill(GATED_TOKEN);
  await page.locator('#hub-token').press('Tab');
  await expect(page.locator('#hub-token')).toHaveAttribute('data-saved-for', a.url);
  const sent = `the token saved for ${a.url} is sent to it`;
  await expect(notice(page)).toHaveText(`Hub: ${a.url} — not huggingface.co; ${sent}`);
  await page.getByRole('button', { name: 'Download', exact: true }).click();
  await expect(page.locator('#model-status')).toContainText('Loaded tiny-random/gated', { timeout: 120_000 });
  await page.locator('#max-length').fill('48');
  await page.getByRole('button', { name: 'Prepare' }).click();
  await expect(page.locator('#data-status')).toContainText('4 rows');
  for (const [id, v] of [
    ['lora-r', '4'],
    ['steps', '2'],
    ['batch', '4'],
    ['accumulation', '1'],
  ]) {
    await page.locator(`#${id}`).fill(v);
  }
  await page.getByRole('button', { name: 'Train', exact: true }).click();
  await expect(page.locator('#train-status')).toContainText('Trained 2 steps', { timeout: 300_000 });
  const saved = page.waitForEvent('download');
  await page.getByRole('button', { name: 'Download adapter' }).click();
  const download = await saved;
  const zip = await readFile(await download.path());
  expect(zip.includes(Buffer.from(GATED_TOKEN)), 'the token is in the exported adapter').toBe(false);
  expect(zip.length).toBeGreaterThan(1000);
  const sentToA = a.received.filter((r) => r.authorization !== 'none');
  expect(sentToA.length).toBeGreaterThan(0);
  expect(sentToA.every((r) => r.authorization === `Bearer ${GATED_TOKEN}`)).toBe(true);

  // a crafted link to Hub B: no token, a notice in plain sight, and the gated model is refused
  await open(page, `hub=${encodeURIComponent(b.url)}&model=tiny-random/gated&data=tiny-random/guanaco`);
  await expect(notice(page)).toBeVisible();
  await expect(notice(page)).toHaveText(`Hub: ${b.url} — not huggingface.co; no token is sent`);
  await expect(page.locator('details', { hasText: 'Hub settings' })).not.toHaveAttribute('open', '');
  expect(await page.locator('#hub-token').inputValue()).toBe('');
  await page.screenshot({ path: 'test-results/screenshots/app-foreign-hub.png' }); // what the link's visitor sees
  await page.getByRole('button', { name: 'Check size' }).click();
  await expect(page.getByRole('alert')).toContainText('asks for an access token (401)', { timeout: 60_000 });
  await page.getByRole('button', { name: 'Download', exact: true }).click();
  await expect(page.getByRole('alert')).toContainText('asks for an access token (401)', { timeout: 60_000 });
  // an open model from B downloads, is listed as B's (A's stays A's), and data comes through B too
  await page.locator('#model-id').fill('tiny-random/llama');
  await page.getByRole('button', { name: 'Download', exact: true }).click();
  await expect(page.locator('#model-status')).toContainText('Loaded tiny-random/llama', { timeout: 120_000 });
  await expect(page.locator('#models')).toContainText(`tiny-random/llama from ${b.url}`);
  await expect(page.locator('#models')).toContainText(`tiny-random/gated from ${a.url}`);
  await page.locator('#max-length').fill('48');
  await page.getByRole('button', { name: 'Prepare' }).click();
  await expect(page.locator('#data-status')).toContainText('4 rows');
  expect(b.received.length).toBeGreaterThan(10);
  expect(b.received.filter((r) => r.authorization !== 'none')).toEqual([]);

  // back at A: its token is as it was entered
  await open(page, `hub=${encodeURIComponent(a.url)}`);
  expect(await page.locator('#hub-token').inputValue()).toBe(GATED_TOKEN);
  await expect(notice(page)).toContainText(`the token saved for ${a.url} is sent to it`);
  // and it was never shown, logged or put in an error
  expect(await page.locator('body').textContent()).not.toContain(GATED_TOKEN);
  expect(logged.filter((l) => l.includes(GATED_TOKEN))).toEqual([]);
});

test("the old page's token becomes huggingface.co's, leaves localStorage; another Hub gets none", async ({ page }) => {
  await open(page, '');
  await page.evaluate(() => localStorage.setItem('hf-token', 'hf_legacy_token'));
  await open(page, '');
  expect(await page.evaluate(() => localStorage.getItem('hf-token'))).toBeNull();
  expect(await page.locator('#hub-endpoint').inputValue()).toBe('https://huggingface.co');
  expect(await page.locator('#hub-token').inputValue()).toBe('hf_legacy_token');
  await expect(notice(page)).toBeHidden(); // huggingface.co itself: nothing to warn about
  await open(page, `hub=${encodeURIComponent(b.url)}`);
  expect(await page.locator('#hub-token').inputValue()).toBe('');
  await expect(notice(page)).toHaveText(`Hub: ${b.url} — not huggingface.co; no token is sent`);
  // typing another endpoint in the settings swaps the token field at once
  await page.locator('details', { hasText: 'Hub settings' }).locator('summary').click();
  await page.locator('#hub-endpoint').fill('https://huggingface.co');
  await expect(page.locator('#hub-token')).toHaveValue('hf_legacy_token');
  await expect(notice(page)).toBeHidden();
});

test('plain http to another machine is refused, in plain sight, before any request', async ({ page }) => {
  await open(page, 'hub=http://hub.example.com&model=tiny-random/llama');
  await expect(notice(page)).toContainText(
    'Hub: http://hub.example.com — refused: the Hub endpoint "http://hub.example.com" uses plain http://',
  );
  await expect(page.locator('#hub-token')).toBeDisabled();
  await page.getByRole('button', { name: 'Check size' }).click();
  await expect(page.getByRole('alert')).toContainText('plain http://, which anyone on the way can read: use https://');
});

test('the Content-Security-Policy blocks and reports what it forbids, in page and worker', async ({ page, csp }) => {
  await open(page, 'hub=https://hub.example.invalid&model=o/n');
  // the page: a connection to a foreign origin, and a worker from a blob
  const fetched = await page.evaluate(() =>
    fetch('https://example.invalid/steal').then(
      () => 'sent',
      () => 'refused',
    ),
  );
  expect(fetched).toBe('refused');
  await page.evaluate(() => void new Worker(URL.createObjectURL(new Blob(['1'], { type: 'text/javascript' }))));
  const seen: string[] = [];
  const taken = () => {
    seen.push(...csp.take());
    return seen.join('\n');
  };
  await expect.poll(taken).toContain('connect-src refused https://example.invalid/steal');
  await expect.poll(taken).toMatch(/Creating a worker from 'blob:.*violates .* directive: "worker-src 'self'"/);
  // the engine worker is held to the policy too (it gets it as a header): a Hub not in connect-src
  await page.getByRole('button', { name: 'Check size' }).click();
  await expect(page.getByRole('alert')).toContainText('o/n', { timeout: 60_000 });
  const inWorker = () => {
    taken();
    return seen.filter((l) => l.startsWith('worker')).join('\n');
  };
  await expect.poll(inWorker).toContain('connect-src refused https://hub.example.invalid/api/models/o/n');
});
