// The first visit and the offline one: the page opens on the built-in demo (a tiny chat model
// and a data set served from the page's own origin), which downloads, trains and chats with no
// request to any Hub; the service worker keeps the page and the demo, so with the network off a
// reload opens the page and trains the stored model again.
import type { Page } from '@playwright/test';
import { expect, test } from './fixtures';
import { APP_PORT } from './servers';

const shot = (page: Page, name: string) =>
  page.screenshot({ path: `test-results/screenshots/${name}.png`, fullPage: true });

async function prepareAndTrain(page: Page, steps: number): Promise<void> {
  await page.getByRole('button', { name: 'Prepare' }).click();
  await expect(page.locator('#data-status')).toContainText('train.jsonl: 24 rows', { timeout: 60_000 });
  await page.locator('#steps').fill(String(steps));
  await page.getByRole('button', { name: 'Train', exact: true }).click();
  await expect(page.locator('#train-status')).toContainText(`Trained ${steps} steps`, { timeout: 300_000 });
}

test('the built-in demo trains and chats with no Hub; offline, the page reopens and trains it again', async ({
  page,
  context,
}) => {
  test.setTimeout(600_000);
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  const elsewhere: string[] = [];
  context.on('request', (r) => {
    if (new URL(r.url()).origin !== `http://127.0.0.1:${APP_PORT}`) elsewhere.push(r.url());
  });

  await page.goto('/'); // no link parameters: what a first-time visitor gets
  await expect(page.locator('#model-id')).toHaveValue('built-in/tiny-chat');
  await expect(page.locator('#download')).toBeEnabled({ timeout: 60_000 });
  await shot(page, 'demo-start');
  // the steps bar: WebGPU is up, the model is the step to take
  const steps = page.getByRole('navigation', { name: 'Steps' });
  await expect(steps.locator('li[data-done]')).toHaveText(['GPU']);
  await expect(steps.locator('a[aria-current="step"]')).toHaveText('Model');
  await page.getByRole('button', { name: 'Download', exact: true }).click();
  await expect(page.locator('#model-status')).toContainText('Loaded built-in/tiny-chat', { timeout: 120_000 });
  await expect(page.locator('#model-status')).toContainText("The settings are now the demo's");
  await expect(page.locator('#data-id')).toHaveValue('built-in/chat');
  await prepareAndTrain(page, 3);
  const losses = JSON.parse((await page.locator('#chart').getAttribute('data-losses'))!) as number[];
  expect(losses.length).toBe(3);
  await expect(steps.locator('li[data-done]')).toHaveText(['GPU', 'Model', 'Data', 'Settings', 'Train']);
  await expect(steps.locator('a[aria-current="step"]')).toHaveCount(0);
  // the demo's two watched questions, answered after the evaluation at the last step (once: the end is that step)
  await expect(page.locator('#watch-prompts')).toHaveValue('What is QLoRA?\nWho are you?');
  const watched = page.getByRole('table', { name: "The watched prompts' answers, by step" });
  await expect(watched.locator('tr').first()).toHaveText(/^Promptstep 3$/);
  await expect(watched.getByRole('rowheader')).toHaveText(['What is QLoRA?', 'Who are you?']);
  const answers = await watched.getByRole('cell').allTextContents();
  expect(answers.length).toBe(2);
  for (const a of answers) expect(a.length, 'an answer, or what it was (never a blank cell)').toBeGreaterThan(0);

  // a chat model: the conversation view, through its template
  await expect(page.locator('#mode-conversation')).toBeChecked();
  await page.locator('summary', { hasText: 'Sampling' }).click();
  await page.locator('#max-new').fill('8');
  await page.getByLabel('Message', { exact: true }).fill('What is QLoRA?');
  await page.getByLabel('Message', { exact: true }).press('Enter');
  await expect(page.locator('#transcript li')).toHaveCount(2, { timeout: 120_000 });
  await expect(page.getByRole('button', { name: 'Regenerate' })).toBeEnabled({ timeout: 120_000 });
  await shot(page, 'demo-trained');
  // the demo is not on the Hub: its adapter is not pushed as if it were
  await page.getByLabel('Push to your repo').fill('someone/demo-lora');
  await page.getByRole('button', { name: 'Push to the Hub' }).click();
  await expect(page.locator('#error')).toContainText("built-in/tiny-chat is the page's built-in demo, not a Hub model");
  expect(elsewhere, 'the demo needs no other origin').toEqual([]);

  // the service worker has kept the page and the demo: with no network the page opens and trains again
  expect(await page.evaluate(async () => !!(await navigator.serviceWorker.ready).active)).toBe(true);
  await context.setOffline(true);
  await page.reload();
  await expect(page.locator('#models')).toContainText('built-in/tiny-chat', { timeout: 60_000 });
  expect(await page.evaluate(() => navigator.onLine)).toBe(false);
  await expect(page.locator('#watch-prompts')).toHaveValue('What is QLoRA?\nWho are you?'); // kept for the next visit
  expect(await page.evaluate(() => !!navigator.serviceWorker.controller)).toBe(true);
  await page.locator('#models tr', { hasText: 'built-in/tiny-chat' }).getByRole('button', { name: 'Load' }).click();
  await expect(page.locator('#model-status')).toContainText('Loaded built-in/tiny-chat');
  await prepareAndTrain(page, 2);
  await shot(page, 'demo-offline');
  await context.setOffline(false);
  expect(errors).toEqual([]);
});
