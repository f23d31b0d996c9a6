// The engine in a Web Worker, reached from the page through comlink. GPU work never blocks
// the page; callbacks (progress, training logs, generated text) come back as comlink proxies.
// This is the only place (with ui/) that touches `navigator`.
import * as Comlink from 'comlink';
import { Engine } from '../engine/engine';
import { webWorkerPort } from '../engine/tokenizer-client';

// the tokenizer runs in a worker of its own, nested in this one, so that a hostile tokenizer file can be stopped
const engine = new Engine({
  tokenizerWorker: () =>
    webWorkerPort(new Worker(new URL('./tokenizer.worker.ts', import.meta.url), { type: 'module' })),
  locks: navigator.locks,
  storage: navigator.storage,
});

const api = {
  init: () => engine.init(navigator.gpu),
  gpuInfo: () => engine.gpuInfo(),
  checkKernels: (out?: number, inF?: number, seed?: number) => engine.checkKernels(out, inF, seed),
  listModels: () => engine.listModels(),
  deleteModel: (key: string) => engine.deleteModel(key),
  planModel: (...a: Parameters<Engine['planModel']>) => engine.planModel(...a),
  downloadModel: (...a: Parameters<Engine['downloadModel']>) => engine.downloadModel(...a),
  pauseDownload: () => engine.pauseDownload(),
  loadModel: (...a: Parameters<Engine['loadModel']>) => engine.loadModel(...a),
  prepareData: (...a: Parameters<Engine['prepareData']>) => engine.prepareData(...a),
  train: (...a: Parameters<Engine['train']>) => engine.train(...a),
  stopTraining: () => engine.stopTraining(),
  pauseTraining: () => engine.pauseTraining(),
  resumeTraining: () => engine.resumeTraining(),
  listRuns: () => engine.listRuns(),
  resumeRun: (...a: Parameters<Engine['resumeRun']>) => engine.resumeRun(...a),
  openRun: (id: string) => engine.openRun(id),
  deleteRun: (id: string) => engine.deleteRun(id),
  resetAdapter: () => engine.resetAdapter(),
  generate: (...a: Parameters<Engine['generate']>) => engine.generate(...a),
  chat: (...a: Parameters<Engine['chat']>) => engine.chat(...a),
  stopGeneration: () => engine.stopGeneration(),
  paddingAt: (batch: number) => engine.paddingAt(batch),
  chatInfo: () => engine.chatInfo(),
  gpuBytes: () => engine.gpuBytes(),
  exportAdapter: async () => {
    const a = await engine.exportAdapter();
    return Comlink.transfer(
      a,
      Object.values(a.files).map((f) => f.buffer as ArrayBuffer),
    );
  },
  importAdapter: (config: string, weights: Uint8Array) => engine.importAdapter(config, weights),
  loadAdapterFromHub: (...a: Parameters<Engine['loadAdapterFromHub']>) => engine.loadAdapterFromHub(...a),
  pushAdapter: (...a: Parameters<Engine['pushAdapter']>) => engine.pushAdapter(...a),
  // each file's bytes are moved to the page, not copied: a shard is up to 2 GiB
  exportMerged: (onFile: Parameters<Engine['exportMerged']>[0], onProgress?: (done: number, total: number) => void) =>
    engine.exportMerged((f) => onFile(Comlink.transfer(f, [f.bytes.buffer as ArrayBuffer])), onProgress),
};

export type EngineApi = typeof api;
Comlink.expose(api);

// the test build takes orders from the end-to-end tests: lose the GPU as a driver reset would
if (import.meta.env.MODE === 'test')
  new BroadcastChannel('qlora-test').onmessage = (m) => {
    if (m.data === 'lose-device') engine.loseDevice();
  };
