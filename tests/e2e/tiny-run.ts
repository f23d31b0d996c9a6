// The page ready to train, for the end-to-end tests of long runs (runs.spec.ts, soak.spec.ts): the
// tiny Llama from the local test Hub, downloaded (or loaded from the store) and 4 rows of tiny
// guanaco prepared at max length 48, then the settings asked for.
import type { Page } from '@playwright/test';
import { expect } from './fixtures';
import { HUB } from './servers';

export const APP_URL = `/?hub=${encodeURIComponent(HUB)}&model=tiny-random/llama&data=tiny-random/guanaco`;

/** Opens the page afresh; `stored` loads the model from the store instead of downloading it. */
export async function ready(page: Page, settings: [string, string][], o: { stored?: boolean } = {}): Promise<void> {
  await page.goto(APP_URL);
  await expect(page.locator('#adapter')).toContainText('Largest binding', { timeout: 60_000 });
  if (o.stored)
    await page.locator('#models tr', { hasText: 'tiny-random/llama' }).getByRole('button', { name: 'Load' }).click();
  else await page.getByRole('button', { name: 'Download', exact: true }).click();
  await expect(page.locator('#model-status')).toContainText('Loaded tiny-random/llama', { timeout: 120_000 });
  await page.locator('#max-length').fill('48');
  await page.getByRole('button', { name: 'Prepare' }).click();
  await expect(page.locator('#data-status')).toContainText('4 rows → 4 examples');
  for (const [id, v] of settings) await page.locator(`#${id}`).fill(v);
}
