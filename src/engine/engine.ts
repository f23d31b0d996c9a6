// The engine: one facade over everything below it, which the page's worker exposes through
// comlink. It is handed its `GPU` object and never looks for one itself. Long operations take
// callbacks (comlink proxies in the page) and can be stopped: a download pauses (it resumes
// from the store), training stops after its current step with the adapter kept.
import type { AdapterSummary } from '../gpu/device';
import { Gpu } from '../gpu/runtime';
import { checkKernels, type KernelCheck } from '../ops/kernel-check';
import { fileUrl, HUB_ENDPOINT, repoSnapshot, type HubOptions } from '../hub/hub';
import { fetchWhole } from '../hub/transfer';
import { datasetFiles } from '../hub/select';
import { HubBlob } from '../hub/hub-blob';
import { parseConfigText } from '../model/load';
import { estimateStoreBytes, estimateTrainingMemory, formatBytes, type MemoryEstimate } from '../model/estimate';
import { downloadModel, freeStorageBytes, type DownloadProgress } from '../store/download';
import { loadStoredModel } from '../store/load-stored';
import { deleteModel, listModels, manifestEndpoint, ModelStore, modelKey, type Manifest } from '../store/model-store';
import { configSplitFiles, prepareData, type DataSplits, type PrepareSettings } from '../data/prepare';
import type { DataBlob } from '../data/read';
import {
  packingStats,
  paddingSaved,
  type Block,
  type Example,
  type Message,
  type PackingStats,
  type PaddingSaved,
} from '../data/sft';
import { dataSummary, type DataSummary } from './data-summary';
import { streamGeneration } from './stream-generation';
import { Session, type LoraSettings } from './session';
import { TrainingRun, type RunEvent, type RunSettings, type TrainSummary } from './training-run';
import { fetchAdapter, runModelCard } from './adapter-hub';
import { exportMerged, type MergedFile } from '../store/merged-export';
import { pushFiles, type PushResult } from '../hub/push';
import { isBuiltIn } from '../hub/built-in';
import { RunStore, type RunDataSummary, type RunRecord } from '../store/run-store';
import { chatPrompt, storeTokenizer, type Tokenizer } from './tokenizer';
import type { SpawnTokenizerWorker } from './tokenizer-client';
import type { GenerateSettings } from '../generate/generate';
import {
  fieldsSet,
  generationSettings,
  parseGenerationConfig,
  type GenerationConfig,
  type GenerationRequest,
} from '../generate/generation-config';

export interface StoredModel {
  key: string;
  id: string;
  revision: string;
  /** The Hub it came from (https://huggingface.co for models stored before endpoints were recorded). */
  endpoint: string;
  storedBytes: number;
  downloadBytes: number;
  complete: boolean;
  /** Fraction of the download's bytes received. */
  progress: number;
}

export interface ModelPlan {
  id: string;
  modelType: string;
  layers: number;
  hidden: number;
  downloadBytes: number;
  storeBytes: number;
  memory: MemoryEstimate;
  /** Free storage for this origin, when the browser says. */
  freeBytes: number | null;
  /** Problems that stop this device from training it, in words; empty when it fits. */
  problems: string[];
}

export type { DataSummary };

/** Where the data comes from: a Hub data set (its `config`, else its default one) or a file. */
export type DataSource = { kind: 'hub'; id: string; config?: string | null } | { kind: 'file'; file: File };

/** What training reports to the page: the run's events, and the engine's own. */
export type TrainEvent =
  | RunEvent
  /** A kept run reopened: the log up to its checkpoint, for the chart. */
  | { type: 'restored'; step: number; maxSteps: number; history: Record<string, number>[] }
  /** The GPU was lost at step `lostAt`; a new one carries on from the checkpoint at `resumedFrom`. */
  | {
      type: 'recovered';
      lostAt: number;
      resumedFrom: number;
      redone: number;
      reason: string;
      history: Record<string, number>[];
    };

/** What the chat of a loaded model starts from, for the page to show. */
export interface ChatInfo {
  /** The settings a chat runs with unless the user changes them (src/generate/generation-config.ts). */
  defaults: GenerateSettings;
  /** The fields of those the model's generation_config.json set (none without one). */
  fromGenerationConfig: string[];
  /** Why the model's generation_config.json cannot be used; generating says so until another model is loaded. */
  problem: string | null;
  /** The tokenizer has a chat template (a message can be rendered as the model was trained to read it). */
  chatTemplate: boolean;
  /** The template reads enable_thinking (Qwen3's): thinking can be switched. */
  thinking: boolean;
}

/** How a chat prompt is given: as it is, or as a user's message through the chat template. */
export interface ChatOptions {
  chat?: boolean;
  /** For templates that read it; absent, the template's default. */
  enable_thinking?: boolean;
}

const summary = (m: Manifest): StoredModel => ({
  key: m.key,
  id: m.id,
  revision: m.revision,
  endpoint: manifestEndpoint(m),
  storedBytes: m.storedBytes,
  downloadBytes: m.downloadBytes,
  complete: m.complete,
  progress: m.downloadBytes ? m.files.reduce((n, f) => n + f.offset, 0) / m.downloadBytes : 0,
});

/** What the engine takes from its host (the page's worker passes navigator's; Node, what it has). */
export interface EnginePorts {
  /** Starts the worker the tokenizer runs in (src/engine/tokenizer-client.ts). */
  tokenizerWorker?: SpawnTokenizerWorker;
  /** navigator.locks: downloads and training of one model, and each run, in one tab at a time. */
  locks?: LockManager;
  /** navigator.storage: the quota a model must fit in. */
  storage?: Pick<StorageManager, 'estimate'>;
}

/** Another tab of the page holds what this one asks for. */
export class BusyError extends Error {
  override name = 'BusyError';
}

/** A kept run, and whether a tab trains it now: this one, another, or none (an interrupted run). */
export type RunListing = RunRecord & { live: 'here' | 'another tab' | null };

const modelLock = (key: string) => `qlora-model ${key}`;
const runLock = (id: string) => `qlora-run ${id}`;
// held beside a model's lock, shared: its name says what the holder does, for the other tabs to read
const doingLock = (what: string, key: string) => `qlora-doing ${what} ${key}`;

export class Engine {
  /**
   * `tokenizerWorker` starts the worker the tokenizer runs in (a nested Worker in the page, a
   * worker thread in Node; src/engine/tokenizer-client.ts): a hostile tokenizer file stalls that
   * worker, which is stopped, never the engine.
   */
  constructor(private readonly ports: EnginePorts = {}) {}

  private gpu: Gpu | null = null;
  private session: Session | null = null;
  private tokenizer: Tokenizer | null = null;
  private blocks: Block[] = [];
  private evalBlocks: Block[] | null = null;
  private download: AbortController | null = null;
  /** The prepared data's name for people (a Hub id or a file name), kept with a run. */
  private dataLabel = '';
  /** The prepared data in numbers, kept with each run trained on it. */
  private dataSummary: RunDataSummary | undefined;

  async init(gpu: GPU | undefined | null): Promise<AdapterSummary> {
    this.gpuSource = gpu;
    if (this.gpu?.lostInfo) this.gpu = null; // a lost device is replaced
    this.gpu ??= await Gpu.create(gpu);
    return this.gpu.info;
  }

  /** Where devices come from (navigator.gpu in the page): a lost one is replaced from it. */
  private gpuSource: GPU | undefined | null = null;

  gpuInfo(): AdapterSummary {
    return this.device().info;
  }

  /** GPU memory held by tensors now, at the most so far, and created in all, in bytes. */
  gpuBytes(): { inUse: number; peak: number; allocated: number } {
    return { ...this.device().memory };
  }

  // ---- models ----------------------------------------------------------------------------

  async listModels(): Promise<StoredModel[]> {
    return (await listModels()).map(summary);
  }

  async deleteModel(key: string): Promise<void> {
    if (this.run && this.loadedKey === key) throw new Error('this model is training: stop it first');
    await this.holding(modelLock(key), 'deleting', key, key, async () => {
      if (this.session && this.loadedKey === key) this.unload();
      await deleteModel(key);
    });
  }

  /**
   * Runs `f` holding `lock` (and a shared one that says `what` this tab does to `key`); where
   * another tab holds it, refuses with what that tab is doing. Without a lock manager (Node),
   * runs `f` as it is.
   */
  private async holding<T>(lock: string, what: string, key: string, name: string, f: () => Promise<T>): Promise<T> {
    const locks = this.ports.locks;
    if (!locks) return f();
    return locks.request(lock, { ifAvailable: true }, async (held) => {
      if (!held) {
        const doing = ((await locks.query()).held ?? [])
          .map((l) => l.name ?? '')
          .find((n) => n.startsWith('qlora-doing ') && n.endsWith(` ${key}`));
        const activity = doing?.split(' ')[1] ?? 'using';
        throw new BusyError(
          `another tab of this page is ${activity} ${name}: wait for it to finish there, or stop it in that tab`,
        );
      }
      return locks.request(doingLock(what, key), { mode: 'shared' }, () => f());
    });
  }

  /** What a Hub model needs, from its listing and config.json, before downloading it. */
  async planModel(
    id: string,
    hub: HubOptions,
    o: {
      max_length: number;
      batch: number;
      r: number;
      lora_dropout?: number;
      targets: string[] | 'all-linear';
      load_in_4bit: boolean;
    },
  ): Promise<ModelPlan> {
    const snapshot = await repoSnapshot(id, 'model', hub);
    const configFile = snapshot.files.find((f) => f.path === 'config.json');
    if (!configFile) throw new Error(`${id} has no config.json: it is not a transformers model`);
    const text = new TextDecoder().decode(await fetchWhole(fileUrl(snapshot, 'config.json', hub), configFile, hub));
    const c = parseConfigText(text);
    const targets = o.targets === 'all-linear' ? c.linearModules : o.targets;
    const memory = estimateTrainingMemory(c, { ...o, targets, maxBinding: this.device().maxBinding });
    const weights = snapshot.files.filter((f) => /^model(-\d+-of-\d+)?\.safetensors$/.test(f.path));
    const freeBytes = await freeStorageBytes(this.ports.storage);
    const storeBytes = estimateStoreBytes(c, o.load_in_4bit);
    const binding = this.device().maxBinding;
    const problems: string[] = [];
    if (freeBytes !== null && storeBytes > freeBytes)
      problems.push(`it needs ${formatBytes(storeBytes)} of storage; this browser allows ${formatBytes(freeBytes)}`);
    if (memory.largestBuffer > binding) {
      problems.push(
        `one of its buffers (an NF4 weight, or one layer's attention scores) needs ` +
          `${formatBytes(memory.largestBuffer)}; this GPU binds at most ${formatBytes(binding)} at once: ` +
          'a shorter max length shrinks the scores',
      );
    }
    return {
      id,
      modelType: c.modelType,
      layers: c.layers,
      hidden: c.hidden,
      downloadBytes: weights.reduce((n, f) => n + f.size, 0),
      storeBytes,
      memory,
      freeBytes,
      problems,
    };
  }

  async downloadModel(
    id: string,
    hub: HubOptions & { revision?: string; load_in_4bit?: boolean },
    onProgress?: (p: DownloadProgress) => void,
  ): Promise<StoredModel> {
    this.download?.abort();
    const abort = (this.download = new AbortController());
    const key = modelKey(id, hub.revision ?? 'main', hub.load_in_4bit ?? true, hub.endpoint);
    try {
      return await this.holding(modelLock(key), 'downloading', key, id, async () =>
        summary(
          await downloadModel(this.device(), id, {
            ...hub,
            signal: abort.signal,
            onProgress,
            storage: this.ports.storage,
          }),
        ),
      );
    } finally {
      if (this.download === abort) this.download = null;
    }
  }

  /** Stops a download; what is stored stays, and the next download resumes from it. */
  pauseDownload(): void {
    this.download?.abort(new DOMException('paused', 'AbortError'));
  }

  private loadedKey: string | null = null;

  /** The loaded model's generation_config.json, or why it cannot be used (training does not need it). */
  private generationConfig: GenerationConfig | Error = {};

  async loadModel(
    key: string,
    onProgress?: (done: number, total: number) => void,
  ): Promise<{ id: string; modelType: string; layers: number; chat: ChatInfo }> {
    this.unload();
    const gpu = this.device();
    const { loaded, manifest, store } = await loadStoredModel(gpu, key, onProgress);
    this.session = Session.fromLoaded(gpu, loaded, manifest.id, manifest.revision);
    const spawn = this.ports.tokenizerWorker;
    if (!spawn) {
      throw new Error('this engine was made without a tokenizer worker: pass tokenizerWorker to new Engine()');
    }
    try {
      this.tokenizer = await storeTokenizer(store, manifest.id, spawn, { vocabSize: loaded.config.vocab });
    } catch (e) {
      this.unload();
      throw e;
    }
    const text = await store.get<string>('file:generation_config.json');
    try {
      this.generationConfig = parseGenerationConfig(typeof text === 'string' ? text : null, `${manifest.id}: `);
    } catch (e) {
      this.generationConfig = e as Error;
    }
    this.loadedKey = key;
    return { id: manifest.id, modelType: loaded.config.modelType, layers: loaded.config.layers, chat: this.chatInfo() };
  }

  /** The loaded model's chat defaults (generation_config.json over config.json) and its template's switches. */
  chatInfo(): ChatInfo {
    const { session, tokenizer } = this.ready();
    const file = this.generationConfig instanceof Error ? {} : this.generationConfig;
    let defaults: GenerateSettings;
    let problem = this.generationConfig instanceof Error ? this.generationConfig.message : null;
    try {
      defaults = generationSettings({}, file, session.config);
    } catch (e) {
      // a file whose values sampling cannot use: transformers' defaults are shown, and the problem
      defaults = generationSettings({}, {}, session.config);
      problem = (e as Error).message;
    }
    return {
      defaults,
      fromGenerationConfig: problem ? [] : fieldsSet(file),
      problem,
      chatTemplate: tokenizer.hasChatTemplate,
      thinking: tokenizer.thinking,
    };
  }

  // ---- data ------------------------------------------------------------------------------

  async prepareData(source: DataSource, s: PrepareSettings, hub: HubOptions = {}): Promise<DataSummary> {
    const { session, tokenizer } = this.ready();
    const splits =
      source.kind === 'file'
        ? { train: [{ name: source.file.name, blob: source.file as Blob }] }
        : await hubDataSplits(source.id, source.config ?? null, hub);
    const d = await prepareData(splits, tokenizer, s, session.config.vocab);
    this.blocks = d.train.blocks;
    this.evalBlocks = d.eval?.blocks ?? null;
    this.dataLabel = source.kind === 'file' ? source.file.name : source.id;
    this.prepared = { examples: d.train.examples, blocks: d.train.blocks, settings: s };
    const summary = await dataSummary(d, tokenizer);
    const st = summary.stats;
    this.dataSummary = {
      files: summary.files,
      rows: summary.rows,
      examples: st.examples,
      tokens: st.keptTokens,
      targets: st.targets,
      blocks: st.blocks,
      evalBlocks: summary.eval?.blocks ?? null,
    };
    return summary;
  }

  /** The prepared data's training examples and blocks, for the padding numbers at another batch size. */
  private prepared: { examples: Example[]; blocks: Block[]; settings: PrepareSettings } | null = null;

  /**
   * The padding numbers of the prepared data in micro-batches of `batch` (the Settings' batch
   * size, which may change after the data was prepared); null where no data is prepared.
   */
  paddingAt(batch: number): { stats: PackingStats; padding: PaddingSaved } | null {
    const p = this.prepared;
    if (!p || !(Number.isInteger(batch) && batch >= 1)) return null;
    const stats = packingStats(p.examples, p.blocks, p.settings, batch);
    return { stats, padding: paddingSaved(stats) };
  }

  // ---- training --------------------------------------------------------------------------

  /**
   * Trains the adapter (a fresh one unless one is attached) on the prepared data, through the
   * one training loop (./training-run.ts), as a run kept in IndexedDB (src/store/run-store.ts):
   * its checkpoints go there every save_steps steps and on pause, so a reload, a crash or a
   * closed tab loses at most the steps since the last (resumeRun continues it), and a lost GPU
   * is replaced and the run carried on from there. `eval_steps` > 0 evaluates on the prepared
   * evaluation data that often; `onEvent` is awaited before the next step, so the page has
   * shown a step before the next (and the end) arrives.
   */
  async train(
    lora: LoraSettings,
    s: RunSettings,
    onEvent?: (e: TrainEvent) => void | Promise<void>,
  ): Promise<TrainSummary> {
    const { session } = this.ready();
    if (this.blocks.length === 0) throw new Error('prepare a data set first');
    if (this.run) throw new Error('training is already running: stop it first');
    if (s.eval_steps && !this.evalBlocks)
      throw new Error(
        'evaluating every few steps needs evaluation data, and the data was prepared without it: press Prepare again',
      );
    const evalBlocks = s.eval_steps ? this.evalBlocks : null;
    await this.refuseIfBusy(this.loadedKey!, session.name);
    const fresh = !session.lora;
    if (fresh) session.attachLora(lora, s.seed);
    let run: TrainingRun;
    try {
      run = new TrainingRun(session, this.blocks, s, { eval: evalBlocks ?? undefined });
    } catch (e) {
      if (fresh) session.releaseLora(); // settings refused: nothing of this attempt stays
      throw e;
    }
    const store = await RunStore.create(
      {
        modelKey: this.loadedKey!,
        modelId: session.name,
        data: this.dataLabel,
        dataSummary: this.dataSummary,
        ...(fresh ? {} : { startedFrom: this.adapterSource ?? 'an adapter trained before' }),
        lora: session.loraSettings!,
        settings: s,
        maxSteps: run.maxSteps,
      },
      { train: this.blocks, eval: evalBlocks, adapter: fresh ? undefined : await adapterFiles(session) },
    );
    run.saveInto(store);
    return this.driveHolding(run, store, onEvent);
  }

  /** drive() holding the model's lock and the run's, so that no other tab trains either meanwhile. */
  private driveHolding(
    run: TrainingRun,
    store: RunStore,
    onEvent?: (e: TrainEvent) => void | Promise<void>,
  ): Promise<TrainSummary> {
    const r = store.record;
    return this.holding(modelLock(r.modelKey), 'training', r.modelKey, r.modelId, () =>
      this.holding(runLock(r.id), 'training', r.id, `run ${r.id}`, () => this.drive(run, store, onEvent)),
    );
  }

  /** Refuses at once when another tab holds the model (before a run is recorded for nothing). */
  private async refuseIfBusy(key: string, name: string): Promise<void> {
    await this.holding(modelLock(key), 'checking', key, name, async () => {});
  }

  /** The runs kept in this browser, newest first, each with whether a tab trains it now. */
  async listRuns(): Promise<RunListing[]> {
    const held = new Set(((await this.ports.locks?.query())?.held ?? []).map((l) => l.name));
    return (await RunStore.list()).map((r) => ({
      ...r,
      live: this.runStore?.id === r.id ? 'here' : held.has(runLock(r.id)) ? 'another tab' : null,
    }));
  }

  async deleteRun(id: string): Promise<void> {
    const live = (await this.listRuns()).find((r) => r.id === id)?.live;
    if (live === 'here') throw new Error('this run is training: stop it first');
    if (live) throw new BusyError(`another tab of this page is training run ${id}: stop it there first`);
    await RunStore.delete(id);
  }

  /**
   * Continues a kept run from its latest checkpoint: its model is loaded from the store if it
   * is not the loaded one, its data comes from the run's record. The losses that follow are the
   * ones the run would have logged had it never stopped.
   */
  async resumeRun(id: string, onEvent?: (e: TrainEvent) => void | Promise<void>): Promise<TrainSummary> {
    if (this.run) throw new Error('training is already running: stop it first');
    const store = await RunStore.open(id);
    const r = store.record;
    if (r.state === 'finished') throw new Error(`run ${id} finished: there is nothing to resume`);
    await this.refuseIfBusy(r.modelKey, r.modelId);
    if ((await this.listRuns()).find((x) => x.id === id)?.live)
      throw new BusyError(`another tab of this page is training run ${id}: it goes on there`);
    if (this.loadedKey !== r.modelKey) await this.loadModel(r.modelKey);
    const data = await store.data();
    this.blocks = data.train;
    this.evalBlocks = data.eval;
    this.dataLabel = r.data;
    this.dataSummary = r.dataSummary;
    const run = await this.runFromStore(store);
    await onEvent?.({ type: 'restored', step: run.step, maxSteps: run.maxSteps, history: [...run.history] });
    return this.driveHolding(run, store, onEvent);
  }

  /**
   * Reopens a kept run that no tab trains: its model loaded (from the store, if it is not the
   * loaded one) with its last checkpoint's adapter, to chat with, push or merge. The run itself is
   * not continued (resumeRun does that).
   */
  async openRun(id: string): Promise<{ step: number; history: Record<string, number>[]; chat: ChatInfo }> {
    if (this.run) throw new Error('training is running: open another run when it has stopped');
    if ((await this.listRuns()).find((x) => x.id === id)?.live)
      throw new BusyError(`another tab of this page is training run ${id}: open it when it has stopped`);
    const store = await RunStore.open(id);
    const r = store.record;
    const last = r.checkpoints.at(-1);
    if (last === undefined)
      throw new Error(`run ${id} kept no checkpoint, so it has no adapter to open: Resume trains it from the start`);
    if (this.loadedKey !== r.modelKey) await this.loadModel(r.modelKey);
    const files = await store.checkpoint(last);
    if (this.run) throw new Error('training started meanwhile: open the run when it has stopped');
    const config = new TextDecoder().decode(files['adapter_config.json']);
    this.ready().session.loadAdapter({ config, weights: files['adapter_model.safetensors'] }, { replace: true });
    // the run as far as the adapter goes: its card (pushAdapter) describes these steps
    const history = r.history.filter((h) => h.step <= last);
    this.adapterRun = { ...r, step: last, history };
    this.adapterSource = `this page's run ${r.id} (to step ${last})`;
    return { step: last, history, chat: this.chatInfo() };
  }

  /** A kept run as its latest checkpoint left it; from the start (the same seed) if it saved none. */
  private async runFromStore(store: RunStore): Promise<TrainingRun> {
    const { session } = this.ready();
    const r = store.record;
    const data = { eval: this.evalBlocks ?? undefined, store };
    const last = r.checkpoints.at(-1);
    if (last !== undefined)
      return new TrainingRun(session, this.blocks, r.settings, { ...data, resume: await store.checkpoint(last) });
    const start = (await store.data()).adapter;
    session.releaseLora();
    if (start) session.loadAdapter(start);
    else session.attachLora(r.lora, r.settings.seed);
    return new TrainingRun(session, this.blocks, r.settings, data);
  }

  /**
   * Runs a run's events to its end, keeping its record current; when the GPU is lost on the
   * way, takes a new device, reloads the model from the store and carries on from the last
   * checkpoint (a `recovered` event says where, and how many steps are done again).
   */
  private async drive(
    first: TrainingRun,
    store: RunStore,
    onEvent?: (e: TrainEvent) => void | Promise<void>,
  ): Promise<TrainSummary> {
    let run = first;
    let losses = 0,
      lastLostAt = -1;
    this.run = run;
    this.runStore = store;
    await store.update({ state: 'running' });
    try {
      for (;;) {
        let summary: TrainSummary;
        try {
          summary = await this.runEvents(run, store, onEvent);
        } catch (e) {
          if (!(await this.deviceLost())) throw e;
          const lostAt = Math.max(run.step, store.record.step);
          const reason = this.gpu?.lostInfo?.message || (e as Error).message;
          // a device lost again and again without the run getting further is not recovered forever
          losses = lostAt > lastLostAt ? 1 : losses + 1;
          lastLostAt = Math.max(lastLostAt, lostAt);
          if (losses > 3)
            throw new Error(
              `the GPU was lost ${losses} times without training past step ${lastLostAt} (${reason}): the run is ` +
                'kept with its checkpoints; resume it when the GPU is stable',
            );
          const lost = run; // a Stop or Pause pressed before or during the recovery still holds
          await this.replaceDevice();
          run = this.run = await this.runFromStore(store);
          if (lost.asked.stop) run.stop();
          if (lost.asked.pause) run.pause();
          const recovered: TrainEvent = {
            type: 'recovered',
            lostAt,
            resumedFrom: run.step,
            redone: lostAt - run.step,
            reason,
            history: [...run.history],
          };
          await store.update({ step: run.step, history: [...run.history] });
          await onEvent?.(recovered);
          continue;
        }
        await store.update({ state: summary.global_step >= run.maxSteps ? 'finished' : 'stopped' });
        return summary;
      }
    } catch (e) {
      await store.update({ state: 'failed', error: (e as Error).message }).catch(() => {});
      throw e;
    } finally {
      this.run = null;
      this.runStore = null;
      this.adapterRun = store.record; // the run that trained the adapter now held: its card (pushAdapter)
      this.adapterSource = `this page's run ${store.record.id} (to step ${store.record.step})`;
    }
  }

  private async runEvents(
    run: TrainingRun,
    store: RunStore,
    onEvent?: (e: TrainEvent) => void | Promise<void>,
  ): Promise<TrainSummary> {
    const events = run.events();
    for (;;) {
      const next = await events.next();
      if (next.done) return next.value;
      const e = next.value;
      if (e.type === 'train' || e.type === 'eval') await store.update({ step: run.step, history: [...run.history] });
      else if (e.type === 'paused') await store.update({ state: 'paused' });
      else if (e.type === 'resumed') await store.update({ state: 'running' });
      await onEvent?.(e);
    }
  }

  /** Whether the device is lost (its promise may settle a moment after the error it caused). */
  private async deviceLost(): Promise<boolean> {
    const gpu = this.gpu;
    if (!gpu) return false;
    if (!gpu.lostInfo) await new Promise<void>((r) => setTimeout(r, 200));
    return gpu.lostInfo !== null && this.loadedKey !== null;
  }

  /** A new device in place of a lost one, with the loaded model reloaded onto it from the store. */
  private async replaceDevice(): Promise<void> {
    const key = this.loadedKey!;
    const blocks = { train: this.blocks, eval: this.evalBlocks };
    this.unload();
    this.gpu = await Gpu.create(this.gpuSource);
    await this.loadModel(key);
    this.blocks = blocks.train;
    this.evalBlocks = blocks.eval;
  }

  private run: TrainingRun | null = null;
  private runStore: RunStore | null = null;
  /** The run that last trained the adapter held now; null for a fresh or a loaded one. */
  private adapterRun: RunRecord | null = null;
  /** Where the adapter held now came from, in words, for the card of a run trained on from it. */
  private adapterSource: string | null = null;

  /** Destroys the device as a driver reset would: the page's end-to-end tests lose it on purpose. */
  loseDevice(): void {
    this.gpu?.device.destroy();
  }

  /** Stops training after its current step; the adapter keeps what it learnt. */
  stopTraining(): void {
    this.run?.stop();
  }

  /** Holds training between two steps (optimizer state, schedule and data order kept), checkpoint saved. */
  pauseTraining(): void {
    this.run?.pause();
  }

  resumeTraining(): void {
    this.run?.resume();
  }

  /** Drop the adapter (a fresh one is attached by the next training). */
  resetAdapter(): void {
    this.session?.releaseLora();
    this.adapterRun = null;
    this.adapterSource = null;
  }

  /**
   * Continues `prompt`, or with `o.chat` answers it as a user's message rendered by the chat
   * template. Settings `s` leaves unset come from the model (generation_config.json, config.json).
   */
  /** Set by stopGeneration: the generation under way ends after its current token. */
  private stopRequested = false;

  /** Ends the generation under way after its current token (the chat's Stop button). */
  stopGeneration(): void {
    this.stopRequested = true;
  }

  /**
   * Text continued from `prompt` (as it is, or with `o.chat` as one user message through the chat
   * template): each sequence streamed to `onText` as its tokens come, decoded after the prompt.
   */
  async generate(
    prompt: string,
    s: GenerationRequest,
    adapterOn: boolean,
    onText?: (sequence: number, text: string) => void,
    o: ChatOptions = {},
  ): Promise<string[]> {
    const { tokenizer } = this.ready();
    const kwargs = o.enable_thinking === undefined ? undefined : { enable_thinking: o.enable_thinking };
    const promptIds = o.chat ? (await chatPrompt(tokenizer, prompt, kwargs)).ids : await tokenizer.encode(prompt);
    return (await this.continueFrom(promptIds, s, adapterOn, onText)).texts;
  }

  /**
   * The assistant's next turn in a conversation: the messages (a system prompt first, if any)
   * rendered by the chat template with its generation prompt, the reply streamed to `onText` and
   * ended by the model's end-of-turn tokens (generation_config.json's eos_token_id), by
   * max_new_tokens, or by stopGeneration. One sequence.
   */
  async chat(
    messages: Message[],
    s: GenerationRequest,
    adapterOn: boolean,
    onText?: (text: string) => void,
    o: Omit<ChatOptions, 'chat'> = {},
  ): Promise<{ reply: string; tokens: number; stopped: boolean }> {
    const { tokenizer } = this.ready();
    const kwargs = o.enable_thinking === undefined ? undefined : { enable_thinking: o.enable_thinking };
    const { ids } = await chatPrompt(tokenizer, messages, kwargs);
    const { texts, ids: reply } = await this.continueFrom(
      ids,
      { ...s, num_return_sequences: 1 },
      adapterOn,
      onText && ((_, text) => onText(text)),
    );
    return { reply: texts[0], tokens: reply[0].length, stopped: this.stopRequested };
  }

  private async continueFrom(
    prompt: number[],
    s: GenerationRequest,
    adapterOn: boolean,
    onText?: (sequence: number, text: string) => void,
  ): Promise<{ texts: string[]; ids: number[][] }> {
    const { session, tokenizer } = this.ready();
    if (this.generationConfig instanceof Error) throw this.generationConfig;
    const settings = generationSettings(s, this.generationConfig, session.config);
    this.stopRequested = false;
    session.setAdapterEnabled(adapterOn);
    try {
      return await streamGeneration(session, tokenizer, prompt, settings, onText, () => this.stopRequested);
    } finally {
      session.setAdapterEnabled(true);
    }
  }

  /** PEFT's two files, named for download. */
  async exportAdapter(): Promise<{ name: string; files: Record<string, Uint8Array> }> {
    const { session } = this.ready();
    const files = await session.exportAdapter();
    return {
      name: `${session.name.replace(/[^\w.-]+/g, '-')}-lora`,
      files: {
        'adapter_config.json': new TextEncoder().encode(files['adapter_config.json']),
        'adapter_model.safetensors': files['adapter_model.safetensors'],
      },
    };
  }

  /** Replaces the adapter with PEFT's files; a file that does not fit leaves the current one. */
  async importAdapter(config: string, weights: Uint8Array): Promise<void> {
    this.ready().session.loadAdapter({ config, weights }, { replace: true });
    this.adapterRun = null;
    this.adapterSource = 'an adapter loaded from its files';
  }

  /**
   * The stored base model with the adapter folded in, as a transformers checkpoint: each file to
   * `onFile` as it is made (src/store/merged-export.ts), a shard at a time.
   */
  async exportMerged(
    onFile: (f: MergedFile) => Promise<void>,
    onProgress?: (done: number, total: number) => void,
  ): Promise<{ files: string[]; merged: number; dtype: string }> {
    const { session } = this.ready();
    if (this.run) throw new Error('training is running: export the merged model when it has stopped');
    if (!session.lora) throw new Error('there is no adapter to fold in: train one or load one first');
    const store = ModelStore.open(this.loadedKey!);
    const manifest = await store.manifest();
    if (!manifest?.complete) throw new Error(`${session.name} is not fully stored: download it again`);
    const a = await session.exportAdapter();
    const adapter = { config: a['adapter_config.json'], weights: a['adapter_model.safetensors'] };
    return exportMerged(store, manifest, adapter, { onFile, onProgress });
  }

  /** Replaces the adapter with a PEFT adapter from a Hub repo; returns the commit it was read at. */
  async loadAdapterFromHub(repo: string, hub: HubOptions): Promise<{ commit: string }> {
    const { session } = this.ready();
    if (this.run) throw new Error('training is running: load another adapter when it has stopped');
    const { files, commit } = await fetchAdapter(repo, hub);
    // a run started while the files came would train on the adapter replaced under it
    if (this.run) throw new Error('training started meanwhile: load the adapter when it has stopped');
    session.loadAdapter(files, { replace: true });
    this.adapterRun = null;
    this.adapterSource = `the adapter ${repo} (commit ${commit.slice(0, 7)})`;
    return { commit };
  }

  /**
   * Pushes the adapter to the user's own Hub repo (`owner/name`, made if missing) in one commit:
   * PEFT's two files and a model card with the base model, the data, the settings and the loss
   * curve of the run that trained it here.
   */
  async pushAdapter(repo: string, hub: HubOptions & { private: boolean }): Promise<PushResult> {
    const { session } = this.ready();
    if (this.run) throw new Error('training is running: push the adapter when it has stopped');
    const r = this.adapterRun;
    if (isBuiltIn(session.name)) {
      throw new Error(
        `${session.name} is the page's built-in demo, not a Hub model: an adapter for it could not name its base ` +
          'model on the Hub. Train a Hub model to push its adapter',
      );
    }
    if (!session.lora || !r) {
      throw new Error(
        session.lora
          ? 'this adapter was loaded, not trained in this tab, so there is no run to describe in its model card: ' +
              'train it (a few steps carry it on), then push'
          : 'there is no adapter to push: train one first',
      );
    }
    const files = await session.exportAdapter();
    return pushFiles(
      repo,
      {
        'adapter_config.json': new TextEncoder().encode(files['adapter_config.json']),
        'adapter_model.safetensors': files['adapter_model.safetensors'],
        'README.md': new TextEncoder().encode(runModelCard(r)),
      },
      {
        endpoint: hub.endpoint ?? HUB_ENDPOINT,
        token: hub.token ?? null,
        private: hub.private,
        message: `Upload LoRA adapter for ${session.name} (${r.step} steps)`,
      },
    );
  }

  /** Quantize a random weight on the GPU and multiply by it, checked against the CPU. */
  /** The device's own kernels against the CPU (see ops/kernel-check.ts). */
  async checkKernels(out = 257, inF = 384, seed = 1): Promise<KernelCheck> {
    return checkKernels(this.device(), out, inF, seed);
  }

  private unload(): void {
    this.adapterRun = null;
    this.adapterSource = null;
    this.session?.release();
    this.session = null;
    this.tokenizer?.close();
    this.tokenizer = null;
    this.generationConfig = {};
    this.loadedKey = null;
    this.blocks = [];
  }

  private ready(): { session: Session; tokenizer: Tokenizer } {
    if (!this.session || !this.tokenizer) throw new Error('load a model first');
    return { session: this.session, tokenizer: this.tokenizer };
  }

  private device(): Gpu {
    if (!this.gpu) throw new Error('the engine has no GPU yet: call init() first');
    return this.gpu;
  }
}

/** A Hub data set's files by split, read lazily from the Hub as the pipeline asks (src/hub/hub-blob.ts). */
async function hubDataSplits(id: string, config: string | null, hub: HubOptions): Promise<DataSplits> {
  const got = await datasetFiles(id, hub, config);
  const files = got.files.map((f) => ({ name: f.path, blob: HubBlob.of(got.snapshot, f, hub) as DataBlob }));
  return configSplitFiles(files, got.config, id);
}

/** The session's adapter as PEFT's two files, in the form loadAdapter takes. */
async function adapterFiles(session: Session): Promise<{ config: string; weights: Uint8Array }> {
  const files = await session.exportAdapter();
  return { config: files['adapter_config.json'], weights: files['adapter_model.safetensors'] };
}
