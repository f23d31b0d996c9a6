// The page: starts the engine worker and shows what the GPU can do.
import * as Comlink from 'comlink';
import type { EngineApi } from '../worker/engine.worker';

const engine = Comlink.wrap<EngineApi>(
  new Worker(new URL('../worker/engine.worker.ts', import.meta.url), { type: 'module' }),
);

const $ = (id: string) => document.getElementById(id)!;

function row(table: HTMLElement, name: string, value: string): void {
  const tr = document.createElement('tr');
  const th = document.createElement('th');
  const td = document.createElement('td');
  th.textContent = name;
  td.textContent = value;
  tr.append(th, td);
  table.append(tr);
}

function showError(e: unknown): void {
  const box = $('error');
  box.hidden = false;
  box.textContent = e instanceof Error ? e.message : String(e);
  $('status').textContent = 'WebGPU unavailable';
}

async function checkKernels(): Promise<void> {
  const button = $('check') as HTMLButtonElement;
  button.disabled = true;
  $('status').textContent = 'Running the NF4 kernels…';
  try {
    const r = await engine.checkKernels();
    const out = $('result');
    out.replaceChildren();
    row(out, 'Kernel', `NF4 quantize + GEMV, W [${r.shape.join(' × ')}]`);
    row(out, 'Bytes match the CPU quantizer', r.bytesIdentical ? 'yes' : 'NO');
    row(out, 'Relative error vs CPU', r.relError.toExponential(2));
    row(out, 'Time', `${r.ms.toFixed(1)} ms`);
    out.dataset.ok = String(r.bytesIdentical && r.relError < 1e-5);
    $('status').textContent = r.bytesIdentical && r.relError < 1e-5 ? 'Kernels OK' : 'Kernel mismatch';
  } catch (e) {
    showError(e);
  } finally {
    button.disabled = false;
  }
}

async function start(): Promise<void> {
  try {
    const info = await engine.init();
    const table = $('adapter');
    row(table, 'Adapter', [info.vendor, info.architecture, info.description].filter(Boolean).join(' · ') || 'unnamed');
    row(table, 'Features', info.features.join(', ') || 'none');
    row(table, 'Largest buffer', `${(info.limits.maxBufferSize / 2 ** 20).toFixed(0)} MiB`);
    row(table, 'Largest binding', `${(info.limits.maxStorageBufferBindingSize / 2 ** 20).toFixed(0)} MiB`);
    row(table, 'f16 shaders', info.features.includes('shader-f16') ? 'yes' : 'no (f32 path)');
    ($('check') as HTMLButtonElement).disabled = false;
    await checkKernels();
  } catch (e) {
    showError(e);
  }
}

$('check').addEventListener('click', () => void checkKernels());
void start();
