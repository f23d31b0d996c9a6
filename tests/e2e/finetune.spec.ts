// The app as a user meets it, in headless Chromium on SwiftShader, against the local test Hub:
// download a tiny model into IndexedDB, train it, chat with it, keep the adapter, come back
// later; and the ways downloads go wrong. Every state is screenshotted for a person to look at.
import { readFile } from 'node:fs/promises';
import type { Page } from '@playwright/test';
import { expect, test } from './fixtures';
import { unzipSync } from 'fflate';
import { parseAdapterConfig } from '../../src/formats/peft';
import { readSafetensorsSync } from '../../src/formats/safetensors';
import { GATED_TOKEN } from '../fixtures/serve-hub';
import { writeTinyDataset, writeTinyFormats } from '../fixtures/tiny-data';
import { HUB } from './servers';

const shot = (page: Page, name: string) =>
  page.screenshot({ path: `test-results/screenshots/${name}.png`, fullPage: true });

async function hubLog(): Promise<string[]> {
  return (await fetch(`${HUB}/__log`)).json();
}

async function fault(file: string, f: object | null): Promise<void> {
  await fetch(`${HUB}/__faults`, { method: 'POST', body: JSON.stringify(f ? { file, fault: f } : { clear: true }) });
}

async function open(page: Page, model: string): Promise<void> {
  await page.goto(`/?hub=${encodeURIComponent(HUB)}&model=${model}&data=tiny-random/guanaco`);
  await expect(page.locator('#adapter')).toContainText('Largest binding', { timeout: 60_000 });
  await expect(page.locator('#download')).toBeEnabled();
}

/** Every stored value of a model's database, hashed, by key (run in the page). */
function storeDigest(page: Page, key: string): Promise<Record<string, string>> {
  return page.evaluate(async (key) => {
    const db = await new Promise<IDBDatabase>((resolve, reject) => {
      const r = indexedDB.open(`qlora-model:${key}`);
      r.onsuccess = () => resolve(r.result);
      r.onerror = () => reject(r.error);
    });
    const all = await new Promise<[IDBValidKey[], unknown[]]>((resolve) => {
      const store = db.transaction('data').objectStore('data');
      const ks = store.getAllKeys();
      const vs = store.getAll();
      vs.onsuccess = () => resolve([ks.result, vs.result]);
    });
    db.close();
    const out: Record<string, string> = {};
    for (const [i, k] of all[0].entries()) {
      if (k === 'manifest') continue;
      const v = all[1][i];
      const bytes = typeof v === 'string' ? new TextEncoder().encode(v) : (v as Uint8Array);
      const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes as BufferSource));
      out[String(k)] = Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
    }
    return out;
  }, key);
}

test('the whole path: download, train, chat, keep the adapter, come back', async ({ page }) => {
  test.setTimeout(600_000);
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await open(page, 'tiny-random/llama');
  await shot(page, 'app-start');

  await page.getByRole('button', { name: 'Check size' }).click();
  await expect(page.locator('#plan-table')).toContainText('can hold it');
  await page.getByRole('button', { name: 'Download', exact: true }).click();
  await expect(page.locator('#model-status')).toContainText('Loaded tiny-random/llama', { timeout: 120_000 });
  await expect(page.locator('#download-text')).toContainText('Downloaded and stored tiny-random/llama');
  await shot(page, 'app-downloaded');

  await page.locator('#max-length').fill('48');
  await page.getByRole('button', { name: 'Prepare' }).click();
  await expect(page.locator('#data-status')).toContainText(
    'openassistant_best_replies_train.jsonl: 4 rows → 4 examples',
  );
  await expect(page.locator('#data-preview')).toContainText('### Human: Say hi.');

  for (const [id, v] of [
    ['lora-r', '8'],
    ['lora-alpha', '16'],
    ['lora-dropout', '0'],
    ['lr', '0.03'],
    ['steps', '24'],
    ['batch', '4'],
    ['accumulation', '1'],
  ]) {
    await page.locator(`#${id}`).fill(v);
  }
  await page.locator('#scheduler').selectOption('constant');
  await page.getByRole('button', { name: 'Train', exact: true }).click();
  // pause between steps, hold, and go on: the run continues where it stopped
  await expect(page.locator('#train-status')).toContainText(/step [3-9] of 24/, { timeout: 120_000 });
  await page.getByRole('button', { name: 'Pause training' }).click();
  await expect(page.locator('#pause-training')).toHaveAttribute('aria-pressed', 'true');
  await page.waitForTimeout(3000); // the step in flight finishes
  const held = await page.locator('#train-stats tr:first-child td').textContent();
  await page.waitForTimeout(3000);
  expect(await page.locator('#train-stats tr:first-child td').textContent()).toBe(held);
  await shot(page, 'app-training-paused');
  await page.getByRole('button', { name: 'Continue training' }).click();
  await expect(page.locator('#train-status')).toContainText('Trained 24 steps', { timeout: 420_000 });
  const losses = JSON.parse((await page.locator('#chart').getAttribute('data-losses'))!) as number[];
  expect(losses.length).toBe(24);
  expect(losses[23], losses.map((l) => l.toFixed(2)).join(' ')).toBeLessThan(losses[0] * 0.7);
  await expect(page.locator('#train-stats')).toContainText('GPU memory in use');
  await shot(page, 'app-trained');

  // the run for a GPU cluster: trl sft naming every setting that differs from TRL's defaults, and no other
  const [recipe] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('button', { name: 'Export recipe' }).click(),
  ]);
  expect(recipe.suggestedFilename()).toBe('recipe.zip');
  const recipeFiles = unzipSync(new Uint8Array(await readFile(await recipe.path())));
  expect(Object.keys(recipeFiles).sort()).toEqual(
    ['README.md', 'accelerate.yaml', 'sft.yaml', 'train.py', 'train.sh'].map((f) => `recipe/${f}`),
  );
  const command = new TextDecoder()
    .decode(recipeFiles['recipe/train.sh'])
    .split('\n')
    .filter((l) => l.startsWith('  --'))
    .map((l) => l.replace(/ \\$/, '').trim());
  expect(command).toEqual([
    '--model_name_or_path tiny-random/llama',
    '--load_in_4bit true',
    '--dataset_name tiny-random/guanaco',
    '--max_length 48',
    '--packing true',
    '--packing_strategy wrapped',
    '--use_peft true',
    '--lora_r 8',
    '--lora_alpha 16',
    '--lora_dropout 0',
    '--lora_target_modules all-linear',
    '--learning_rate 0.03',
    '--lr_scheduler_type constant',
    '--per_device_train_batch_size 4',
    '--max_steps 24',
    '--num_train_epochs 1',
    '--logging_steps 1',
    '--save_steps 10',
    '--save_total_limit 2',
  ]);

  // a model with a chat template opens the chat as a conversation; the worked example's prompt is a completion
  await expect(page.locator('#mode-conversation')).toBeChecked();
  await page.locator('#mode-completion').check();
  await page.locator('#prompt').fill('### Human: Say hi. ### Assistant:');
  await page.locator('summary', { hasText: 'Sampling' }).click();
  await page.locator('#max-new').fill('12');
  await page.getByRole('button', { name: 'Generate' }).click();
  await expect(page.locator('#outputs pre[data-done]')).toHaveCount(1, { timeout: 120_000 });
  const tuned = await page.locator('#outputs pre').textContent();
  await shot(page, 'app-completion');

  // the conversation: turns through the template, a reply streamed; Regenerate gives the greedy reply again
  await page.locator('#mode-conversation').check();
  await page.locator('#system-prompt').fill('Answer briefly.');
  await page.getByLabel('Message', { exact: true }).fill('Say hi.');
  await page.getByLabel('Message', { exact: true }).press('Enter');
  const turns = page.locator('#transcript li');
  await expect(turns).toHaveCount(2);
  await expect(turns.nth(0)).toHaveAttribute('data-role', 'user');
  await expect(turns.nth(1)).toHaveAttribute('data-done', 'true', { timeout: 120_000 });
  const reply = await turns.nth(1).locator('.text').textContent();
  expect(reply?.length).toBeGreaterThan(0);
  await page.getByRole('button', { name: 'Regenerate' }).click();
  await expect(turns.nth(1)).toHaveAttribute('data-done', 'true', { timeout: 120_000 });
  expect(await turns.nth(1).locator('.text').textContent()).toBe(reply);
  await expect(turns).toHaveCount(2);
  // Stop ends a long reply where it is: shorter than the one run to its end
  await page.locator('#max-new').fill('400');
  await page.getByLabel('Message', { exact: true }).fill('And again, at length.');
  await page.getByRole('button', { name: 'Send' }).click();
  await expect(turns).toHaveCount(4);
  await expect(turns.nth(3).locator('.text')).not.toBeEmpty({ timeout: 120_000 });
  await page.getByRole('button', { name: 'Stop reply' }).click();
  await expect(turns.nth(3)).toHaveAttribute('data-stopped', 'true', { timeout: 120_000 });
  await expect(page.getByRole('button', { name: 'Send' })).toBeDisabled(); // nothing typed
  await expect(page.getByRole('button', { name: 'Regenerate' })).toBeEnabled();
  await shot(page, 'app-chat');
  await page.getByRole('button', { name: 'Clear' }).click();
  await expect(turns).toHaveCount(0);
  // a reply that cannot be made (past the model's positions): the error says why, the message waits in its box
  await page.locator('#max-new').fill('5000');
  await page.getByLabel('Message', { exact: true }).fill('Too long.');
  await page.getByRole('button', { name: 'Send' }).click();
  await expect(page.locator('#error')).toContainText('max_position_embeddings');
  await expect(turns).toHaveCount(0);
  await expect(page.getByLabel('Message', { exact: true })).toHaveValue('Too long.');
  await page.getByLabel('Message', { exact: true }).fill('');
  await page.locator('#max-new').fill('12');

  // side by side, with the same seed: the base column is what the single view gives with the adapter
  // off, the tuned column what it gives with the adapter on (the reply above)
  await page.locator('#adapter-on').uncheck();
  await page.getByLabel('Message', { exact: true }).fill('Say hi.');
  await page.getByRole('button', { name: 'Send' }).click();
  await expect(turns.nth(1)).toHaveAttribute('data-done', 'true', { timeout: 120_000 });
  const base = await turns.nth(1).locator('.text').textContent();
  expect(base?.length).toBeGreaterThan(0);
  expect(base).not.toBe(reply); // the adapter changed the reply: the columns can be told apart
  await page.locator('#side-by-side').check();
  await expect(turns).toHaveCount(0); // a new conversation
  await page.getByLabel('Message', { exact: true }).fill('Say hi.');
  await page.getByRole('button', { name: 'Send' }).click();
  await expect(turns.nth(1)).toHaveAttribute('data-done', 'true', { timeout: 120_000 });
  expect(await turns.nth(1).locator('.said.base .text').textContent()).toBe(base);
  expect(await turns.nth(1).locator('.said.tuned .text').textContent()).toBe(reply);
  await shot(page, 'app-chat-side-by-side');
  await page.locator('#side-by-side').uncheck();
  await page.locator('#adapter-on').check();

  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('button', { name: 'Download adapter' }).click(),
  ]);
  expect(download.suggestedFilename()).toBe('tiny-random-llama-lora.zip');
  const zipPath = test.info().outputPath('adapter.zip');
  await download.saveAs(zipPath);
  const files = unzipSync(new Uint8Array(await readFile(zipPath)));
  expect(Object.keys(files).sort()).toEqual(['adapter_config.json', 'adapter_model.safetensors']);
  const config = parseAdapterConfig(new TextDecoder().decode(files['adapter_config.json']));
  expect(config).toMatchObject({
    base_model_name_or_path: 'tiny-random/llama',
    r: 8,
    lora_alpha: 16,
    target_modules: ['down_proj', 'gate_proj', 'k_proj', 'o_proj', 'q_proj', 'up_proj', 'v_proj'],
  });
  const tensors = readSafetensorsSync(files['adapter_model.safetensors']);
  expect(tensors.length).toBe(2 * 7 * 2);
  const a = tensors.find((t) => t.info.name === 'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight')!;
  expect(a.info.shape).toEqual([8, 64]);

  // later: the model comes from IndexedDB, with no new download, and the adapter gives the same text
  const shardsBefore = (await hubLog()).filter((l) => l.includes('.safetensors ')).length;
  await page.reload();
  await expect(page.locator('#models')).toContainText('tiny-random/llama', { timeout: 60_000 });
  await page.locator('#models tr', { hasText: 'tiny-random/llama' }).getByRole('button', { name: 'Load' }).click();
  await expect(page.locator('#model-status')).toContainText('Loaded tiny-random/llama');
  await page.locator('#load-adapter').setInputFiles(zipPath);
  await expect(page.locator('#adapter-status')).toContainText('Loaded the adapter from adapter.zip');
  await page.locator('#mode-completion').check();
  await page.locator('#prompt').fill('### Human: Say hi. ### Assistant:');
  await page.locator('summary', { hasText: 'Sampling' }).click();
  await page.locator('#max-new').fill('12');
  await page.getByRole('button', { name: 'Generate' }).click();
  await expect(page.locator('#outputs pre[data-done]')).toHaveCount(1, { timeout: 120_000 });
  expect(await page.locator('#outputs pre').textContent()).toBe(tuned);
  expect((await hubLog()).filter((l) => l.includes('.safetensors ')).length).toBe(shardsBefore);
  await shot(page, 'app-reloaded');
  expect(errors).toEqual([]);
});

const FAMILIES = [
  'tiny-random/falcon',
  'tiny-random/phi3',
  'tiny-random/gemma2',
  'tiny-random/llama-bnb-4bit',
  'tiny-random/qwen3',
  'tiny-random/gemma3',
  'tiny-random/smollm3',
];
for (const model of FAMILIES) {
  test(`${model} downloads, trains, evaluates and generates in the page`, async ({ page }) => {
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await open(page, model);
    await page.getByRole('button', { name: 'Check size' }).click();
    await expect(page.locator('#plan-table')).toContainText('can hold it');
    await page.getByRole('button', { name: 'Download', exact: true }).click();
    await expect(page.locator('#model-status')).toContainText(`Loaded ${model}`, { timeout: 120_000 });
    await page.locator('#max-length').fill('48');
    // evaluated once, at the last step, on the data set's eval split (prepared with the training data)
    await page.locator('#eval-steps').fill('4');
    await page.getByRole('button', { name: 'Prepare' }).click();
    await expect(page.locator('#data-status')).toContainText('4 rows');
    const settings = [
      ['lora-r', '8'],
      ['lora-alpha', '16'],
      ['lora-dropout', '0'],
      ['lr', '0.03'],
      ['steps', '4'],
      ['batch', '4'],
      ['accumulation', '1'],
    ];
    for (const [id, v] of settings) await page.locator(`#${id}`).fill(v);
    await page.locator('#scheduler').selectOption('constant');
    await page.getByRole('button', { name: 'Train', exact: true }).click();
    await expect(page.locator('#train-status')).toContainText('Trained 4 steps', { timeout: 300_000 });
    const losses = JSON.parse((await page.locator('#chart').getAttribute('data-losses'))!) as number[];
    expect(losses[3], losses.map((l) => l.toFixed(2)).join(' ')).toBeLessThan(losses[0]);
    const evals = JSON.parse((await page.locator('#chart').getAttribute('data-eval-losses'))!) as number[];
    expect(evals.length).toBe(1);
    expect(evals[0]).toBeGreaterThan(0);
    await page.locator('#mode-completion').check();
    await page.locator('summary', { hasText: 'Sampling' }).click();
    await page.locator('#max-new').fill('8');
    await page.getByRole('button', { name: 'Generate' }).click();
    await expect(page.locator('#outputs pre[data-done]')).toHaveCount(1, { timeout: 120_000 });
    await shot(page, `app-${model.split('/')[1]}`);
    expect(errors).toEqual([]);
  });
}

test('a connection dropped mid-shard resumes, and the store equals a clean download', async ({ page }) => {
  await open(page, 'tiny-random/llama');
  await page.getByRole('button', { name: 'Download', exact: true }).click();
  await expect(page.locator('#model-status')).toContainText('Loaded tiny-random/llama', { timeout: 120_000 });

  await fault('model-00002-of-00002.safetensors', { kind: 'drop', after: 20000, times: 1 });
  const start = (await hubLog()).length;
  await page.locator('#model-id').fill('tiny-random/llama-copy');
  await page.getByRole('button', { name: 'Download', exact: true }).click();
  await expect(page.locator('#model-status')).toContainText('Loaded tiny-random/llama-copy', { timeout: 120_000 });
  await fault('', null);
  const requests = (await hubLog()).slice(start).filter((l) => l.includes('model-00002-of-00002.safetensors'));
  expect(requests).toHaveLength(2);
  expect(requests[1]).toMatch(/bytes=\d+-$/);
  // the local Hub is part of a stored model's key (src/store/model-store.ts)
  const copy = await storeDigest(page, `${HUB} tiny-random/llama-copy@main`);
  expect(copy).toEqual(await storeDigest(page, `${HUB} tiny-random/llama@main`));
  await shot(page, 'app-resumed');
});

test('a paused download resumes from the store', async ({ page }) => {
  await open(page, 'tiny-random/qwen2');
  await fault('model-00001-of-00002.safetensors', { kind: 'trickle', bytesPerSecond: 40000, times: 1 });
  await page.getByRole('button', { name: 'Download', exact: true }).click();
  await expect(page.locator('#download-text')).toContainText('model-00001-of-00002.safetensors', { timeout: 30_000 });
  await page.waitForTimeout(1500);
  await page.getByRole('button', { name: 'Pause download' }).click();
  await expect(page.locator('#download-text')).toContainText('Paused');
  await expect(page.locator('#models')).toContainText('partial');
  await shot(page, 'app-paused');
  await fault('', null);
  const start = (await hubLog()).length;
  await page.locator('#models tr', { hasText: 'tiny-random/qwen2' }).getByRole('button', { name: 'Resume' }).click();
  await expect(page.locator('#model-status')).toContainText('Loaded tiny-random/qwen2', { timeout: 120_000 });
  expect((await hubLog()).slice(start).find((l) => l.includes('model-00001-of-00002.safetensors'))).toMatch(
    /bytes=[1-9]\d*-$/,
  );
});

test('a corrupt shard is refused with a clear message and the store stays consistent', async ({ page }) => {
  await open(page, 'tiny-random/qwen2');
  await fault('model-00002-of-00002.safetensors', { kind: 'corrupt', at: 25000, times: 1 });
  await page.getByRole('button', { name: 'Download', exact: true }).click();
  await expect(page.getByRole('alert')).toContainText('model-00002-of-00002.safetensors is corrupt', {
    timeout: 60_000,
  });
  await expect(page.locator('#models')).toContainText('partial');
  await shot(page, 'app-corrupt');
  await fault('', null);
  await page.locator('#models tr', { hasText: 'tiny-random/qwen2' }).getByRole('button', { name: 'Resume' }).click();
  await expect(page.locator('#model-status')).toContainText('Loaded tiny-random/qwen2', { timeout: 120_000 });
});

test('too little storage is refused with a clear message, and nothing is lost', async ({ page }) => {
  await open(page, 'tiny-random/llama');
  // Chromium enforces an overridden quota on writes but still reports the real one from
  // navigator.storage.estimate(), so the refusal here comes from IndexedDB's own check, at the
  // first write that does not fit (Chromium 150 lets the small text files in and refuses the
  // first tensor). The estimate-based refusal, which runs before any weights are requested, is
  // tested in tests/unit/store.test.ts.
  const cdp = await page.context().newCDPSession(page);
  const origin = new URL(page.url()).origin;
  await cdp.send('Storage.overrideQuotaForOrigin', { origin, quotaSize: 20_000 });
  await page.getByRole('button', { name: 'Download', exact: true }).click();
  await expect(page.getByRole('alert')).toContainText(
    /needs .* of storage and this browser allows|storage for the page is full/,
    { timeout: 60_000 },
  );
  await shot(page, 'app-quota');
  await cdp.send('Storage.overrideQuotaForOrigin', { origin });
  await page.getByRole('button', { name: 'Download', exact: true }).click();
  await expect(page.locator('#model-status')).toContainText('Loaded tiny-random/llama', { timeout: 120_000 });
});

test('a gated model asks for a token, and downloads with it', async ({ page }) => {
  await open(page, 'tiny-random/gated');
  await page.getByRole('button', { name: 'Download', exact: true }).click();
  await expect(page.getByRole('alert')).toContainText('asks for an access token (401)', { timeout: 60_000 });
  await page.locator('details', { hasText: 'Hub settings' }).locator('summary').click();
  await page.locator('#hub-token').fill(GATED_TOKEN);
  await page.getByRole('button', { name: 'Download', exact: true }).click();
  await expect(page.locator('#model-status')).toContainText('Loaded tiny-random/gated', { timeout: 120_000 });
  expect(await page.locator('body').textContent()).not.toContain(GATED_TOKEN);
});

test('prompt/completion and chat files: masks in the preview, packing numbers, evaluation on the chart', async ({
  page,
}) => {
  test.setTimeout(600_000);
  const formats = await writeTinyFormats(test.info().outputPath('formats'));
  await open(page, 'tiny-random/llama');
  await page.getByRole('button', { name: 'Download', exact: true }).click();
  await expect(page.locator('#model-status')).toContainText('Loaded tiny-random/llama', { timeout: 120_000 });
  for (const [id, v] of [
    ['lora-r', '8'],
    ['lora-alpha', '16'],
    ['lora-dropout', '0'],
    ['lr', '0.03'],
    ['steps', '4'],
    ['batch', '4'],
    ['accumulation', '1'],
    ['max-length', '128'],
  ]) {
    await page.locator(`#${id}`).fill(v);
  }
  await page.locator('#scheduler').selectOption('constant');

  // prompt/completion: the prompts greyed (no loss), a quarter held out, evaluated every 2 steps
  await page.getByLabel('A file (or drop one here)').check();
  await page.locator('#data-file').setInputFiles(formats.promptCompletion);
  await page.locator('#packing-strategy').selectOption('bfd');
  await page.locator('#eval-steps').fill('2');
  await page.locator('#test-size').fill('0.25');
  await page.getByRole('button', { name: 'Prepare' }).click();
  await expect(page.locator('#data-stats')).toContainText('prompt completion');
  await expect(page.locator('#data-stats')).toContainText('1 example from a held-out 0.25 of the training split');
  await expect(page.locator('#data-stats')).toContainText(
    'batches of 4 examples padded to their longest: 10 pad tokens (7.1% of 141); packed: 0 (0.0% of 131); ' +
      'packing saves 10 pad tokens',
  );
  // the padding follows the batch size set after the data was prepared: one example a batch pads nothing
  await page.locator('#batch').fill('1');
  await expect(page.locator('#data-stats')).toContainText('batches of 1 example padded to their longest: 0 pad tokens');
  await page.locator('#batch').fill('4');
  await expect(page.locator('#data-stats')).toContainText('batches of 4 examples padded to their longest: 10 pad');
  await expect(page.locator('#data-preview .masked').first()).toContainText('### Human:');
  await expect(page.locator('#data-preview .boundary').first()).toBeVisible(); // bfd: several examples a block
  await expect(page.locator('#lengths-bars > div').first()).toBeVisible();
  await shot(page, 'app-data-prompt-completion');
  await page.getByRole('button', { name: 'Train', exact: true }).click();
  await expect(page.locator('#train-status')).toContainText('Trained 4 steps', { timeout: 300_000 });
  const evals = JSON.parse((await page.locator('#chart').getAttribute('data-eval-losses'))!) as number[];
  expect(evals.length).toBe(2); // steps 2 and 4
  await shot(page, 'app-eval-chart');

  // conversations: rendered by the chat template, only the assistant's turns trained on
  await page.locator('#data-file').setInputFiles(formats.messages);
  await page.locator('#assistant-only').check();
  await page.locator('#eval-steps').fill('0');
  await page.getByRole('button', { name: 'Prepare' }).click();
  await expect(page.locator('#data-stats')).toContainText('messages');
  await expect(page.locator('#data-preview .masked').first()).toContainText('### system:\nAnswer briefly.');
  // a fresh data set, not the last
  await expect(page.locator('#data-preview pre').first()).not.toContainText('### Human');
  await shot(page, 'app-data-messages');
  await page.getByRole('button', { name: 'Train', exact: true }).click();
  await expect(page.locator('#train-status')).toContainText('Trained 4 steps', { timeout: 300_000 });

  // and a text file, wrapped: every token a target, EOS between the texts. The assistant-only loss,
  // still asked for, is refused on it, as TRL refuses it on data that is not conversational
  const texts = await writeTinyDataset(test.info().outputPath('texts'));
  await page.locator('#data-file').setInputFiles(texts.jsonl);
  await page.locator('#packing-strategy').selectOption('wrapped');
  await page.getByRole('button', { name: 'Prepare' }).click();
  await expect(page.locator('#error')).toContainText(
    "assistant_only_loss trains on the assistant's turns of conversations, but this data set is text",
  );
  await page.locator('#assistant-only').uncheck();
  await page.getByRole('button', { name: 'Prepare' }).click();
  await expect(page.locator('#data-stats')).toContainText('Formattext');
  await expect(page.locator('#error')).toBeHidden();
  await expect(page.locator('#data-preview .masked')).toHaveCount(0);
  await page.getByRole('button', { name: 'Train', exact: true }).click();
  await expect(page.locator('#train-status')).toContainText('Trained 4 steps', { timeout: 300_000 });
});
