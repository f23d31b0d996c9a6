// The page to a screen reader and a keyboard: an axe-core scan (WCAG 2 A and AA rules) of the
// page with a model loaded, data prepared and a conversation under way finds nothing serious or
// critical.
import AxeBuilder from '@axe-core/playwright';
import { expect, test } from './fixtures';
import { ready } from './tiny-run';

test('an accessibility scan finds no serious violation, with a model loaded and a chat under way', async ({ page }) => {
  test.setTimeout(300_000);
  await ready(page, []);
  await page.getByLabel('Message', { exact: true }).fill('Say hi.');
  await page.getByRole('button', { name: 'Send' }).click();
  await expect(page.locator('#transcript li[data-done]')).toHaveCount(2, { timeout: 120_000 });
  await page.locator('summary', { hasText: 'Sampling' }).click();
  const scan = await new AxeBuilder({ page }).withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']).analyze();
  const serious = scan.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.id} (${v.impact}): ${v.help}: ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
  expect(serious).toEqual([]);
});
