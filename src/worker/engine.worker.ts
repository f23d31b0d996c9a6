// The engine in a Web Worker, reached from the page through comlink. GPU work never blocks
// the page. This is the only place (with ui/) that touches `navigator`.
import * as Comlink from 'comlink';
import { Engine } from '../engine/engine';

const engine = new Engine();

const api = {
  init: () => engine.init(navigator.gpu),
  gpuInfo: () => engine.gpuInfo(),
  checkKernels: (out?: number, inF?: number, seed?: number) => engine.checkKernels(out, inF, seed),
};

export type EngineApi = typeof api;
Comlink.expose(api);
