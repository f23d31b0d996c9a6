// A long run in the page: three hundred training steps of the tiny Llama with a checkpoint every
// 25 (two kept). After the first steps nothing grows but the log: the GPU is given no new buffer,
// the engine worker's JS heap (after a garbage collection) stays put, and the run's IndexedDB
// holds its two checkpoints, its data and its record. The figures go to test-results/soak.json.
import { writeFile } from 'node:fs/promises';
import type { CDPSession, Page } from '@playwright/test';
import { expect, test } from './fixtures';
import { ready } from './tiny-run';

const STEPS = 300;

/** The engine worker's JS heap after a full garbage collection, through the DevTools protocol. */
async function workerHeap(page: Page): Promise<() => Promise<number>> {
  const cdp: CDPSession = await page.context().newCDPSession(page);
  let engineSession: string | null = null;
  cdp.on('Target.attachedToTarget', (e) => {
    if (e.targetInfo.type === 'worker' && e.targetInfo.url.includes('engine.worker')) engineSession = e.sessionId;
  });
  const replies = new Map<number, (r: { usedSize?: number }) => void>();
  cdp.on('Target.receivedMessageFromTarget', (e) => {
    const m = JSON.parse(e.message) as { id: number; result: { usedSize?: number } };
    replies.get(m.id)?.(m.result);
  });
  await cdp.send('Target.setAutoAttach', { autoAttach: true, waitForDebuggerOnStart: false, flatten: false });
  await expect.poll(() => engineSession).not.toBeNull();
  let id = 0;
  const ask = (method: string) =>
    new Promise<{ usedSize?: number }>((resolve) => {
      replies.set(++id, resolve);
      void cdp.send('Target.sendMessageToTarget', {
        sessionId: engineSession!,
        message: JSON.stringify({ id, method }),
      });
    });
  return async () => {
    await ask('HeapProfiler.collectGarbage');
    return (await ask('Runtime.getHeapUsage')).usedSize!;
  };
}

/** The bytes the runs database holds (records, data, checkpoints), counted value by value. */
function runsBytes(page: Page): Promise<number> {
  return page.evaluate(async () => {
    const db = await new Promise<IDBDatabase>((resolve, reject) => {
      const r = indexedDB.open('qlora-runs');
      r.onsuccess = () => resolve(r.result);
      r.onerror = () => reject(r.error);
    });
    const values = await new Promise<unknown[]>((resolve) => {
      const all = db.transaction('runs').objectStore('runs').getAll();
      all.onsuccess = () => resolve(all.result);
    });
    db.close();
    const size = (v: unknown): number =>
      ArrayBuffer.isView(v)
        ? v.byteLength
        : v && typeof v === 'object'
          ? Object.values(v).reduce((n: number, x) => n + size(x), 0)
          : String(v).length;
    return values.reduce((n: number, v) => n + size(v), 0);
  });
}

test('three hundred steps: no GPU buffer, JS heap or storage growth but the log', async ({ page }) => {
  test.setTimeout(1_200_000);
  await ready(page, [
    ['lora-r', '4'],
    ['lr', '0.001'],
    ['steps', String(STEPS)],
    ['batch', '1'],
    ['accumulation', '1'],
    ['save-steps', '25'],
    ['keep', '2'],
  ]);
  const heap = await workerHeap(page);
  await page.getByRole('button', { name: 'Train', exact: true }).click();

  // a sample every 50 steps: held at that step by pausing, so the figures are of one moment
  const samples: { step: number; gpuAllocated: number; gpuInUse: number; heap: number; runsBytes: number }[] = [];
  const stats = page.locator('#train-stats');
  for (let at = 50; at <= STEPS; at += 50) {
    if (at < STEPS) {
      await expect
        .poll(async () => Number(await stats.getAttribute('data-step')), { timeout: 600_000 })
        .toBeGreaterThanOrEqual(at - 1);
      await page.getByRole('button', { name: 'Pause training' }).click();
      await expect(page.locator('#train-status')).toContainText('Paused after step', { timeout: 120_000 });
    } else await expect(page.locator('#train-status')).toContainText(`Trained ${STEPS} steps`, { timeout: 600_000 });
    samples.push({
      step: Number(await stats.getAttribute('data-step')),
      gpuAllocated: Number(await stats.getAttribute('data-gpu-allocated')),
      gpuInUse: Number(await stats.getAttribute('data-gpu-in-use')),
      heap: await heap(),
      runsBytes: await runsBytes(page),
    });
    if (at < STEPS) await page.getByRole('button', { name: 'Continue training' }).click();
  }
  await writeFile('test-results/soak.json', JSON.stringify(samples, null, 2) + '\n');
  const [first, ...later] = samples;
  for (const s of later) {
    const steps = s.step - first.step;
    expect(s.gpuAllocated, `GPU bytes ever allocated at step ${s.step}`).toBe(first.gpuAllocated);
    expect(s.gpuInUse, `GPU bytes in use at step ${s.step}`).toBe(first.gpuInUse);
    // the log grows (a few hundred bytes a step, twice: the run's and the record's copy); a leak
    // of a step's tensors, batches or promises would be tens of kilobytes a step
    expect(s.heap - first.heap, `worker heap growth by step ${s.step}`).toBeLessThan(2048 * steps);
    // two checkpoints, the data and the record: only the log grows (in the record and each trainer_state.json);
    // a checkpoint left behind would add its adapter and moments, some 3.5 kB a step here
    expect(s.runsBytes - first.runsBytes, `stored bytes growth by step ${s.step}`).toBeLessThan(1024 * steps);
  }
});
