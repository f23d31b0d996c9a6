// Adapters to and from the Hub, in the page against the local test Hub: a PEFT adapter saved by
// Python's stack (tests/fixtures/peft-adapter.ts) gives the greedy text the float64 reference
// computes for the same base model and adapter, and merged into the base it gives the weights
// the reference folds; trained on, it is pushed to the user's own repo, and the Hub then holds
// PEFT's two files and a model card with the run's settings and loss curve.
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AutoTokenizer, env } from '@huggingface/transformers';
import type { Page } from '@playwright/test';
import { expect, test } from './fixtures';
import { parseModelConfig } from '../../src/model/registry';
import { readSafetensorsSync, toFloat32 } from '../../src/formats/safetensors';
import { dequantizeNF4, quantizeNF4 } from '../../src/quant/nf4';
import { writePeftAdapter } from '../fixtures/peft-adapter';
import { LLAMA_SEED, LORA_SEED, WRITE_TOKEN, WRITE_USER } from '../fixtures/serve-hub';
import { writeTinyCheckpoint } from '../fixtures/tiny-checkpoint';
import { checkpointValues, llamaReference } from '../reference/checkpoint';
import { HUB } from './servers';

const shot = (page: Page, name: string) =>
  page.screenshot({ path: `test-results/screenshots/${name}.png`, fullPage: true });

const PROMPT = '### Human: Say hi. ### Assistant:';
const NEW_TOKENS = 12;

/**
 * The greedy continuation of PROMPT by the float64 reference of tiny-random/llama in NF4, with
 * and without the fixture adapter, as text; and the smallest gap between the top two logits on
 * the way (a gap near float32's rounding would make the comparison a coin toss).
 */
async function referenceTexts() {
  const root = await mkdtemp(join(tmpdir(), 'peft-reference-'));
  await writeTinyCheckpoint(join(root, 'llama'), 'llama', LLAMA_SEED);
  const adapter = await writePeftAdapter(join(root, 'lora'), 'tiny-random/llama', LORA_SEED);
  env.allowRemoteModels = false;
  env.localModelPath = root;
  const tokenizer = await AutoTokenizer.from_pretrained('llama');
  const c = parseModelConfig(JSON.parse(await readFile(join(root, 'llama', 'config.json'), 'utf8')));
  const prompt = tokenizer.encode(PROMPT);
  let gap = Infinity;
  const greedy = async (withAdapter: boolean) => {
    const ref = await llamaReference(join(root, 'llama'), true, c);
    if (withAdapter)
      for (const [path, { A, B }] of adapter.modules)
        Object.assign(ref.linears.get(path)!, { A, B, r: adapter.r, scale: adapter.alpha / adapter.r });
    const ids = [...prompt];
    for (let i = 0; i < NEW_TOKENS; i++) {
      const T = ids.length;
      const z = ref.logits(
        ids,
        Array.from({ length: T }, (_, t) => t),
        new Array(T).fill(0),
      );
      const last = Array.from(z.subarray((T - 1) * c.vocab, T * c.vocab));
      const order = last.map((v, k) => [v, k]).sort((a, b) => b[0] - a[0] || a[1] - b[1]);
      gap = Math.min(gap, order[0][0] - order[1][0]);
      ids.push(order[0][1]);
      if (c.eosTokenIds.includes(order[0][1])) break;
    }
    return tokenizer.decode(ids, { skip_special_tokens: true });
  };
  return { tuned: await greedy(true), base: await greedy(false), gap, dir: join(root, 'llama'), adapter };
}

/** Files the page wrote into the folder showDirectoryPicker gave it (a stand-in in the origin's private files). */
async function pickedFolder(page: Page): Promise<Map<string, Uint8Array>> {
  const files = await page.evaluate(async () => {
    const dir = await (await navigator.storage.getDirectory()).getDirectoryHandle('picked');
    const out: Record<string, string> = {};
    for await (const [name, h] of dir as unknown as AsyncIterable<[string, FileSystemFileHandle]>) {
      const bytes = new Uint8Array(await (await h.getFile()).arrayBuffer());
      let bin = '';
      for (const b of bytes) bin += String.fromCharCode(b);
      out[name] = btoa(bin);
    }
    return out;
  });
  return new Map(Object.entries(files).map(([k, v]) => [k, new Uint8Array(Buffer.from(v, 'base64'))]));
}

async function hubLog(): Promise<string[]> {
  return (await fetch(`${HUB}/__log`)).json();
}

const resolve = async (repo: string, path: string) => {
  const res = await fetch(`${HUB}/${repo}/resolve/main/${path}`);
  expect(res.status, `${repo}/${path}`).toBe(200);
  return new Uint8Array(await res.arrayBuffer());
};

async function greedyText(page: Page): Promise<string> {
  await page.getByRole('button', { name: 'Generate', exact: true }).click();
  await expect(page.locator('#outputs pre[data-done]')).toHaveCount(1, { timeout: 120_000 });
  return (await page.locator('#outputs pre').textContent())!;
}

test('a Hub PEFT adapter: its reference text, its merged weights; trained on, pushed with a card', async ({ page }) => {
  test.setTimeout(600_000);
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  const want = await referenceTexts();
  expect(want.gap, 'the reference greedy path has a clear winner at every step').toBeGreaterThan(1e-3);
  expect(want.tuned, 'the adapter changes what the model says').not.toBe(want.base);

  await page.goto(`/?hub=${encodeURIComponent(HUB)}&model=tiny-random/llama&data=tiny-random/guanaco`);
  await expect(page.locator('#download')).toBeEnabled({ timeout: 60_000 });
  await page.getByRole('button', { name: 'Download', exact: true }).click();
  await expect(page.locator('#model-status')).toContainText('Loaded tiny-random/llama', { timeout: 120_000 });

  // the adapter Python's PEFT saved, from its Hub repo
  await page.getByLabel('Adapter on the Hub').fill('tiny-random/llama-lora');
  await page.getByRole('button', { name: 'Load from the Hub' }).click();
  await expect(page.locator('#adapter-status')).toContainText('Loaded the adapter tiny-random/llama-lora from the Hub');
  await page.locator('#mode-completion').check();
  await page.locator('#prompt').fill(PROMPT);
  await page.locator('summary', { hasText: 'Sampling' }).click();
  await page.locator('#max-new').fill(String(NEW_TOKENS));
  expect(await greedyText(page)).toBe(want.tuned);
  await page.locator('#adapter-on').uncheck();
  expect(await greedyText(page)).toBe(want.base);
  await page.locator('#adapter-on').check();
  await shot(page, 'hub-adapter-loaded');

  // merged: the base with the adapter folded in, written into the folder the user picks
  await page.evaluate(async () => {
    (window as unknown as { showDirectoryPicker: () => Promise<FileSystemDirectoryHandle> }).showDirectoryPicker =
      async () => (await navigator.storage.getDirectory()).getDirectoryHandle('picked', { create: true });
    // a shard an older export left there
    const picked = await (await navigator.storage.getDirectory()).getDirectoryHandle('picked', { create: true });
    await (
      await (await picked.getFileHandle('model-00002-of-00002.safetensors', { create: true })).createWritable()
    ).close();
  });
  await page.getByRole('button', { name: 'Export merged model' }).click();
  await expect(page.locator('#adapter-status')).toContainText('Exported the merged model into picked', {
    timeout: 60_000,
  });
  await expect(page.locator('#adapter-status')).toContainText('(4 weights with the adapter folded in, BF16)');
  await expect(page.locator('#adapter-status')).toContainText(
    'The folder also holds model-00002-of-00002.safetensors from before: delete them',
  );
  const merged = await pickedFolder(page);
  merged.delete('model-00002-of-00002.safetensors');
  expect([...merged.keys()].sort()).toEqual([
    'config.json',
    'model.safetensors',
    'tokenizer.json',
    'tokenizer_config.json',
  ]);
  expect(JSON.parse(new TextDecoder().decode(merged.get('config.json')))).toEqual(
    JSON.parse(await readFile(join(want.dir, 'config.json'), 'utf8')),
  );
  const original = await checkpointValues(want.dir);
  let worst = 0;
  for (const { info, data } of readSafetensorsSync(merged.get('model.safetensors')!)) {
    expect(info.dtype).toBe('BF16');
    const have = toFloat32('BF16', data);
    const w = original.get(info.name)!;
    const path = info.name.replace(/\.weight$/, '');
    if (!/_proj\.weight$/.test(info.name)) {
      expect(have, info.name).toEqual(w); // embeddings and norms as they came
      continue;
    }
    const base = dequantizeNF4(quantizeNF4(w, 64)); // what the model trained against
    const d = want.adapter.modules.get(path);
    const [rows, cols] = info.shape;
    for (let o = 0; o < rows; o++)
      for (let i = 0; i < cols; i++) {
        let v = base[o * cols + i];
        if (d) for (let j = 0; j < want.adapter.r; j++) v += 2 * d.B[o * want.adapter.r + j] * d.A[j * cols + i];
        // a BF16 rounding of the float64 sum: within one unit of its last place
        worst = Math.max(
          worst,
          Math.abs(have[o * cols + i] - v) / 2 ** (Math.floor(Math.log2(Math.max(Math.abs(v), 1e-30))) - 7),
        );
      }
  }
  expect(worst).toBeLessThanOrEqual(1);

  // a loaded adapter has no run of its own to put in a card: the push says what to do
  await page.getByLabel('Push to your repo').fill(`${WRITE_USER}/guanaco-lora`);
  await page.getByRole('button', { name: 'Push to the Hub' }).click();
  await expect(page.locator('#error')).toContainText('this adapter was loaded, not trained in this tab');

  // keep training it: two steps on the tiny guanaco, from the loaded adapter (its r of 4, not the form's)
  await page.locator('#max-length').fill('48');
  await page.getByRole('button', { name: 'Prepare' }).click();
  await expect(page.locator('#data-status')).toContainText('4 rows');
  for (const [id, v] of [
    ['lr', '0.01'],
    ['steps', '2'],
    ['batch', '4'],
  ])
    await page.locator(`#${id}`).fill(v);
  await page.getByRole('button', { name: 'Train', exact: true }).click();
  await expect(page.locator('#train-status')).toContainText('Trained 2 steps', { timeout: 300_000 });
  const trained = await greedyText(page);
  expect(trained).not.toBe(want.tuned);

  // without a token the push is refused before any request, and says what to do
  await page.getByRole('button', { name: 'Push to the Hub' }).click();
  await expect(page.locator('#error')).toContainText('needs an access token with write access');
  await page.locator('summary', { hasText: 'Hub settings' }).click();
  await page.getByLabel('Access token').fill(WRITE_TOKEN);
  await page.getByLabel('Access token').press('Tab'); // saved for this Hub on change
  // the Hub refuses a repo under someone else's name, and the message says why and what to do
  await page.getByLabel('Push to your repo').fill('someone-else/guanaco-lora');
  await page.getByRole('button', { name: 'Push to the Hub' }).click();
  await expect(page.locator('#error')).toContainText('creating someone-else/guanaco-lora: the token may not write');
  await page.getByLabel('Push to your repo').fill(`${WRITE_USER}/guanaco-lora`);
  await page.getByRole('button', { name: 'Push to the Hub' }).click();
  await expect(page.locator('#adapter-status')).toContainText('Pushed: made the repo and committed', {
    timeout: 60_000,
  });
  await expect(page.locator('#error')).toBeHidden();
  await shot(page, 'hub-adapter-pushed');
  const repo = `${WRITE_USER}/guanaco-lora`;
  const log = await hubLog();
  expect(log).toContain(`create model ${repo} private`);
  expect(log.filter((l) => l.startsWith(`commit ${repo}:`))).toEqual([
    `commit ${repo}: adapter_config.json (inline), adapter_model.safetensors (lfs), README.md (inline): ` +
      'Upload LoRA adapter for tiny-random/llama (2 steps)',
  ]);

  // what the Hub holds: the adapter as PEFT reads it, and its card
  const config = JSON.parse(new TextDecoder().decode(await resolve(repo, 'adapter_config.json')));
  expect(config).toMatchObject({
    base_model_name_or_path: 'tiny-random/llama',
    r: 4,
    lora_alpha: 8,
    peft_type: 'LORA',
  });
  expect([...config.target_modules].sort()).toEqual(['q_proj', 'v_proj']);
  const tensors = readSafetensorsSync(await resolve(repo, 'adapter_model.safetensors'));
  expect(tensors.map((t) => t.info.name).sort()).toEqual(
    [0, 1].flatMap((l) =>
      ['q_proj', 'v_proj'].flatMap((m) =>
        ['A', 'B'].map((w) => `base_model.model.model.layers.${l}.self_attn.${m}.lora_${w}.weight`),
      ),
    ),
  );
  const card = new TextDecoder().decode(await resolve(repo, 'README.md'));
  expect(card).toContain('base_model: "tiny-random/llama"');
  expect(card).toContain('- "tiny-random/guanaco"'); // the data set, in the metadata
  expect(card).toMatch(/guanaco\) \(4 rows, 4 examples, \d+ tokens \(\d+ with a loss target\) in \d+ blocks\)/);
  expect(card).toMatch(/It trained on from the adapter tiny-random\/llama-lora \(commit [0-9a-f]{7}\)/);
  expect(card).toContain('| lora_r | 4 |');
  expect(card).toContain('| learning_rate | 0.01 |');
  expect(card).toContain('| max_steps | 2 |');
  const losses = JSON.parse((await page.locator('#chart').getAttribute('data-losses'))!) as number[];
  expect(card).toContain(
    `## Loss curve\n\n| step | loss | eval_loss |\n|---|---|---|\n` +
      `| 1 | ${losses[0].toFixed(4)} |  |\n| 2 | ${losses[1].toFixed(4)} |  |\n`,
  );

  // a second push commits on top of the repo it made
  await page.getByRole('button', { name: 'Push to the Hub' }).click();
  await expect(page.locator('#adapter-status')).toContainText(`Pushed: committed`, { timeout: 60_000 });
  expect((await hubLog()).filter((l) => l.startsWith(`create model ${repo}`)).length).toBe(1);
  expect((await hubLog()).filter((l) => l.startsWith(`commit ${repo}:`)).length).toBe(2);

  // after a reload the run is kept: reopened, its adapter says what it said, and it pushes again
  await page.reload();
  const kept = /tiny-random\/llama on tiny-random\/guanaco \(4 rows → \d+ blocks/;
  await expect(page.locator('#runs')).toContainText(kept);
  await page.getByRole('button', { name: /^Open the run of tiny-random\/llama/ }).click();
  await expect(page.locator('#train-status')).toContainText('its adapter at step 2 is loaded', { timeout: 60_000 });
  await page.locator('#mode-completion').check();
  await page.locator('#prompt').fill(PROMPT);
  await page.locator('summary', { hasText: 'Sampling' }).click();
  await page.locator('#max-new').fill(String(NEW_TOKENS));
  expect(await greedyText(page)).toBe(trained);
  await shot(page, 'run-reopened');
  await page.getByLabel('Push to your repo').fill(repo);
  await page.getByRole('button', { name: 'Push to the Hub' }).click();
  await expect(page.locator('#adapter-status')).toContainText('Pushed: committed', { timeout: 60_000 });
  expect((await hubLog()).filter((l) => l.startsWith(`commit ${repo}:`)).at(-1)).toContain('(2 steps)');
  expect(errors).toEqual([]);
});
