// Long runs survive, in the page as a user meets it (headless Chromium on SwiftShader, the local
// test Hub): a reload mid-run, a reload in the middle of a checkpoint's write and a lost GPU each
// end in the losses the uninterrupted run logs, bit for bit (dropout and shuffling on); a second
// tab says what the first is doing instead of training or downloading over it.
import type { Page } from '@playwright/test';
import { expect, test } from './fixtures';
import { ready as readyToTrain } from './tiny-run';

const shot = (page: Page, name: string) =>
  page.screenshot({ path: `test-results/screenshots/${name}.png`, fullPage: true });

// an epoch is 4 steps at batch 1 (reshuffled each), dropout on, a checkpoint every 2 steps
const SETTINGS: [string, string][] = [
  ['lora-r', '4'],
  ['lora-alpha', '8'],
  ['lora-dropout', '0.1'],
  ['lr', '0.02'],
  ['warmup', '1'],
  ['steps', '8'],
  ['batch', '1'],
  ['accumulation', '1'],
  ['save-steps', '2'],
  ['keep', '2'],
];

/** The page afresh, ready to train 8 steps (cosine schedule); `stored`: the model from the store. */
async function ready(page: Page, o: { stored?: boolean } = {}): Promise<void> {
  await readyToTrain(page, SETTINGS, o);
  await page.locator('#scheduler').selectOption('cosine');
}

const chartLosses = async (page: Page) =>
  JSON.parse((await page.locator('#chart').getAttribute('data-losses'))!) as number[];

/** Trains the 8 steps to the end and gives the chart's losses. */
async function trainToEnd(page: Page): Promise<number[]> {
  await page.getByRole('button', { name: 'Train', exact: true }).click();
  await expect(page.locator('#train-status')).toContainText('Trained 8 steps', { timeout: 300_000 });
  return chartLosses(page);
}

/** After a reload: the interrupted run offered, and resumed to its end; the chart's losses. */
async function resumeAfterReload(page: Page): Promise<number[]> {
  await expect(page.locator('#adapter')).toContainText('Largest binding', { timeout: 60_000 });
  await expect(page.locator('#runs-status')).toContainText('was interrupted at step');
  const row = page.locator('#runs tr', { hasText: 'interrupted' });
  await expect(row).toHaveCount(1);
  await row.getByRole('button', { name: /^Resume/ }).click();
  await expect(page.locator('#train-status')).toContainText('Trained 8 steps', { timeout: 300_000 });
  return chartLosses(page);
}

/**
 * Resolves as soon as the status line reports step 3 (watched in the page as it changes, not
 * polled: on a fast machine or a busy one, steps go by between two polls), having first done
 * `then` in the page when given it.
 */
function atStep3(page: Page, then?: 'lose-device'): Promise<void> {
  return page.evaluate(
    (then) =>
      new Promise<void>((resolve) => {
        const el = document.getElementById('train-status')!;
        const check = () => {
          if (!/step [3-6] of 8/.test(el.textContent ?? '')) return;
          seen.disconnect();
          if (then) new BroadcastChannel('qlora-test').postMessage(then);
          resolve();
        };
        const seen = new MutationObserver(check);
        seen.observe(el, { childList: true, characterData: true, subtree: true });
        check();
      }),
    then,
  );
}

/** Every run's record and checkpoints as the store holds them: each listed checkpoint whole. */
function storedRuns(page: Page): Promise<{ id: string; checkpoints: number[]; files: Record<number, string[]> }[]> {
  return page.evaluate(async () => {
    const db = await new Promise<IDBDatabase>((resolve, reject) => {
      const r = indexedDB.open('qlora-runs');
      r.onsuccess = () => resolve(r.result);
      r.onerror = () => reject(r.error);
    });
    const [keys, values] = await new Promise<[IDBValidKey[], unknown[]]>((resolve) => {
      const store = db.transaction('runs').objectStore('runs');
      const ks = store.getAllKeys();
      const vs = store.getAll();
      vs.onsuccess = () => resolve([ks.result, vs.result]);
    });
    db.close();
    const byKey = new Map(keys.map((k, i) => [String(k), values[i]]));
    return [...byKey.entries()]
      .filter(([k]) => k.startsWith('record:'))
      .map(([, v]) => {
        const r = v as { id: string; checkpoints: number[] };
        const files: Record<number, string[]> = {};
        for (const s of r.checkpoints)
          files[s] = Object.keys((byKey.get(`run:${r.id}:checkpoint:${s}`) as object) ?? {}).sort();
        return { id: r.id, checkpoints: r.checkpoints, files };
      });
  });
}

const CHECKPOINT = [
  'adapter_config.json',
  'adapter_model.safetensors',
  'optimizer.safetensors',
  'trainer_state.json',
  'training_state.json',
];

test('a reload mid-run and one mid-checkpoint-write resume to the losses of the run never stopped', async ({
  page,
}) => {
  test.setTimeout(900_000);
  await ready(page);
  const uninterrupted = await trainToEnd(page);
  expect(uninterrupted.length).toBe(8);
  await expect(page.locator('#runs tr', { hasText: 'finished' })).toHaveCount(1);

  // a reload once step 3 is logged (a checkpoint every 2 steps): the run waits in the list, and
  // resumes from its checkpoint
  await ready(page, { stored: true });
  await page.getByRole('button', { name: 'Train', exact: true }).click();
  await atStep3(page);
  await page.reload();
  await shot(page, 'runs-interrupted');
  expect(await resumeAfterReload(page)).toEqual(uninterrupted);
  await shot(page, 'runs-resumed');
  // the resumed run loaded its model: the chat has it, as a conversation (the model has a chat template)
  await expect(page.locator('#mode-conversation')).toBeChecked();
  await page.getByLabel('Message', { exact: true }).fill('Hi');
  await expect(page.getByRole('button', { name: 'Send' })).toBeEnabled();
  await page.getByLabel('Message', { exact: true }).fill('');

  // a reload the moment a checkpoint's write begins (the test build announces it): the store
  // lists only whole checkpoints, and the run resumes from the last of them
  await ready(page, { stored: true });
  await page.evaluate(() => {
    let writes = 0;
    new BroadcastChannel('qlora-test').onmessage = (m) => {
      if (m.data === 'checkpoint-writing' && ++writes === 2) location.reload();
    };
  });
  const reloaded = page.waitForEvent('load');
  await page.getByRole('button', { name: 'Train', exact: true }).click();
  await reloaded;
  for (const r of await storedRuns(page))
    for (const s of r.checkpoints) expect(r.files[s], `run ${r.id}, checkpoint ${s}`).toEqual(CHECKPOINT);
  expect(await resumeAfterReload(page)).toEqual(uninterrupted);
  await expect(page.locator('#runs tr', { hasText: 'finished' })).toHaveCount(3);

  // the runs are kept: after a reload each is listed with its losses, shown on the chart, compared
  await page.reload();
  const finished = page.locator('#runs tr', { hasText: 'finished' });
  await expect(finished).toHaveCount(3, { timeout: 60_000 });
  await expect(finished.first()).toContainText(`loss ${uninterrupted[7].toFixed(4)}`);
  await finished.nth(1).getByRole('button', { name: /^Show/ }).click();
  expect(await chartLosses(page)).toEqual(uninterrupted);
  await finished
    .nth(0)
    .getByRole('checkbox', { name: /^Compare/ })
    .check();
  await finished
    .nth(2)
    .getByRole('checkbox', { name: /^Compare/ })
    .check();
  const compared = JSON.parse((await page.locator('#chart').getAttribute('data-compare'))!) as {
    runs: string[];
    losses: number[][];
  };
  expect(compared.losses).toEqual([uninterrupted, uninterrupted]); // the same run three times: one curve
  await expect(page.locator('#train-status')).toContainText('Comparing two runs');
  await shot(page, 'runs-compared');
});

test('a GPU lost mid-run is replaced, the model reloaded from the store, and the run goes on', async ({ page }) => {
  test.setTimeout(900_000);
  await ready(page);
  const uninterrupted = await trainToEnd(page);
  await ready(page, { stored: true });
  await page.getByRole('button', { name: 'Train', exact: true }).click();
  // as a driver reset would, once step 3 is logged (the test build's worker listens for this)
  await atStep3(page, 'lose-device');
  await expect(page.locator('#train-note')).toContainText(/The GPU was lost at step \d/, { timeout: 300_000 });
  await expect(page.locator('#train-note')).toContainText('nothing lost');
  await shot(page, 'runs-gpu-lost');
  await expect(page.locator('#train-status')).toContainText('Trained 8 steps', { timeout: 300_000 });
  expect(await chartLosses(page)).toEqual(uninterrupted);
});

test('a second tab says what the first is doing instead of training or downloading over it', async ({ page }) => {
  test.setTimeout(600_000);
  await ready(page);
  await page.locator('#steps').fill('60');
  await page.getByRole('button', { name: 'Train', exact: true }).click();
  await expect(page.locator('#train-status')).toContainText(/step \d+ of 60/, { timeout: 300_000 });

  const second = await page.context().newPage();
  await ready(second, { stored: true });
  const theirs = second.locator('#runs tr', { hasText: 'training in another tab' });
  await expect(theirs).toHaveCount(1);
  await expect(theirs.getByRole('button')).toHaveCount(0); // neither resumed nor deleted from here
  await second.getByRole('button', { name: 'Train', exact: true }).click();
  await expect(second.locator('#error')).toContainText(
    'another tab of this page is training tiny-random/llama: wait for it to finish there, or stop it in that tab',
  );
  await expect(second.locator('#train-status')).toHaveText(
    'Not training: the message at the top of the page says why.',
  );
  await second.getByRole('button', { name: 'Download', exact: true }).click();
  await expect(second.locator('#error')).toContainText('another tab of this page is training tiny-random/llama');
  await shot(second, 'runs-second-tab');

  // once the first tab stops, the second trains
  await page.getByRole('button', { name: 'Stop', exact: true }).click();
  await expect(page.locator('#train-status')).toContainText('Trained', { timeout: 300_000 });
  await second.locator('#steps').fill('2');
  await second.getByRole('button', { name: 'Train', exact: true }).click();
  await expect(second.locator('#train-status')).toContainText('Trained 2 steps', { timeout: 300_000 });
  await second.close();
});
