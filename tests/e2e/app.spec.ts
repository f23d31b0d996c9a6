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
