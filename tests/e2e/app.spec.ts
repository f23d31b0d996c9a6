import { expect, test } from './fixtures';

test('the page gets a WebGPU device in its worker and runs the NF4 kernels', async ({ page }, info) => {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto('/');
  await expect(page.getByRole('heading', { name: 'QLoRA fine-tuning on your GPU' })).toBeVisible();
  // The adapter table fills in once the worker holds a device.
  await expect(page.locator('#adapter th', { hasText: 'Adapter' })).toBeVisible({ timeout: 60_000 });
  await expect(page.locator('#adapter')).toContainText('Largest binding');
  // The worker's kernel check: GPU quantizer bytes equal the CPU's, GEMV within 1e-5.
  await expect(page.locator('#status')).toHaveText('Kernels OK', { timeout: 120_000 });
  await expect(page.locator('#result')).toHaveAttribute('data-ok', 'true');
  await expect(page.locator('#result')).toContainText('Bytes match the CPU quantizer');
  const relError = Number(await page.locator('#result tr:nth-child(3) td').textContent());
  expect(relError).toBeLessThan(1e-5);
  await page.screenshot({ path: info.outputPath('kernel-check.png'), fullPage: true });
  await page.screenshot({ path: 'test-results/screenshots/kernel-check.png', fullPage: true });
  expect(errors).toEqual([]);
});

test('the suggested models show what each takes before anything is fetched, and follow the settings', async ({
  page,
}) => {
  const requests: string[] = [];
  page.on('request', (r) => requests.push(r.url()));
  await page.goto('/');
  const row = (id: string) => page.locator('#preset-table tr', { hasText: id });
  // from the presets' config facts (tests/unit/presets.test.ts checks them against the real ones)
  await expect(row('Qwen/Qwen3-0.6B')).toContainText('596M');
  await expect(row('Qwen/Qwen3-0.6B')).toContainText('559.0 MB');
  await expect(row('google/gemma-3-270m-it')).toContainText('268M');
  await expect(row('google/gemma-3-270m-it')).toContainText('gated');
  await expect(row('HuggingFaceTB/SmolLM3-3B')).toContainText('3.08B');
  await expect(row('meta-llama/Llama-3.2-1B-Instruct')).toContainText('1.24B');
  const before = (await row('Qwen/Qwen3-0.6B').locator('td').nth(3).textContent())!;
  await page.locator('#max-length').fill('1024');
  await page.locator('#max-length').dispatchEvent('change');
  await expect(page.locator('#preset-table th').nth(3)).toContainText('1024 tokens');
  expect(await row('Qwen/Qwen3-0.6B').locator('td').nth(3).textContent()).not.toBe(before);
  await page.locator('#presets').screenshot({ path: 'test-results/screenshots/app-presets.png' });
  expect(requests.filter((u) => /huggingface|config\.json/.test(u))).toEqual([]);
  await row('HuggingFaceTB/SmolLM3-3B').getByRole('button').click();
  await expect(page.locator('#model-id')).toHaveValue('HuggingFaceTB/SmolLM3-3B');
});
