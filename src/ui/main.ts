// The page: one screen, top to bottom as a user goes — GPU, model, data, settings, training,
// chat, adapter. All the work happens in the engine worker; this file reads the form, calls
// the worker, and shows what comes back. Sections that grew into components of their own: the
// chat (chat-view.ts), the watched prompts (watch-prompts.ts), the adapter (adapter-view.ts).
import * as Comlink from 'comlink';
import { strToU8, zipSync } from 'fflate';
import type { EngineApi } from '../worker/engine.worker';
import type { ChatInfo, TrainEvent } from '../engine/engine';
import { formatBytes } from '../model/estimate';
import { exportRecipe } from '../recipe/recipe';
import { ChatView } from './chat-view';
import { showPresets } from './presets-view';
import type { DownloadProgress } from '../store/download';
import type { TrainSummary } from '../engine/training-run';
import { DEFAULT_HUB_ORIGIN, hubOrigin } from '../hub/token-policy';
import { TokenStore } from './token-store';
import { builtInEndpoint, DEMO_DATA, isBuiltIn } from './built-in';
import { WatchPrompts } from './watch-prompts';
import { readSettings, recipeSettings } from './settings-form';
import { controls, INITIAL, rowButtonEnabled, stepsDone, Store, type PageState } from './page-state';
import { AdapterView } from './adapter-view';
import { LossChart } from './loss-chart';
import { RunsView } from './runs-view';
import { DataSummaryView } from './data-summary-view';
import { StoredModelsView } from './models-view';
import { rows } from './dom';

const engine = Comlink.wrap<EngineApi>(
  new Worker(new URL('../worker/engine.worker.ts', import.meta.url), { type: 'module' }),
);

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;
const input = (id: string) => $<HTMLInputElement>(id);
const num = (id: string) => Number(input(id).value);
const checked = (id: string) => input(id).checked;
const tokens = new TokenStore(); // one token per Hub origin, encrypted at rest (token-store.ts)

const clock = (s: number) =>
  Number.isFinite(s) ? `${Math.floor(s / 60)}:${String(Math.round(s % 60)).padStart(2, '0')}` : '–';

function showError(e: unknown): void {
  const box = $('error');
  box.hidden = false;
  box.textContent = e instanceof Error ? e.message : String(e);
  box.scrollIntoView({ block: 'nearest' });
}

function clearError(): void {
  $('error').hidden = true;
}

// ---- the page's state (page-state.ts): every button's enabled state follows from it ---------

const state = new Store<PageState>(INITIAL);

/** The buttons as the state has them: the named ones by controls(), the models' and runs' rows by theirs. */
function applyControls(s: PageState): void {
  for (const [id, on] of Object.entries(controls(s))) $<HTMLButtonElement>(id).disabled = !on;
  for (const b of document.querySelectorAll<HTMLButtonElement>('#runs button, #models button'))
    b.disabled = !rowButtonEnabled(s);
}

state.subscribe(applyControls);
state.subscribe(showSteps);

/** The steps bar: each step done marked, the first not done (up to Train) marked as the next. */
function showSteps(s: PageState): void {
  const done = stepsDone(s);
  const next = done.findIndex((d, i) => !d && i <= 4);
  for (const [i, li] of [...document.querySelectorAll<HTMLLIElement>('#step-bar li')].entries()) {
    li.toggleAttribute('data-done', done[i]);
    li.toggleAttribute('data-next', i === next);
    const link = li.querySelector('a')!;
    if (i === next) link.setAttribute('aria-current', 'step');
    else link.removeAttribute('aria-current');
  }
}

/** An action's key in the state's busy set: its button's id, or a row button's label. */
const busyKey = (b: HTMLButtonElement) => b.id || b.getAttribute('aria-label') || b.textContent || '';

/** Runs an action, its button disabled meanwhile (the state's busy set), errors shown in the alert box. */
async function act(button: string | HTMLButtonElement, f: () => Promise<void>): Promise<void> {
  const key = typeof button === 'string' ? button : busyKey(button);
  state.set({ busy: new Set([...state.get().busy, key]) });
  clearError();
  try {
    await f();
  } catch (e) {
    showError(e);
  } finally {
    const busy = new Set(state.get().busy);
    busy.delete(key);
    state.set({ busy });
  }
}

// ---- the Hub and its token ------------------------------------------------------------------
// The token field shows the token of one Hub origin, `tokenOrigin`: the endpoint field's. When
// the endpoint changes, the field is emptied at once and refilled with the new origin's own token
// (if one was ever entered for it), so a token typed for one Hub is never sent to, or saved for,
// another. A link's `?hub=` is just such a change.
let tokenOrigin: string | null = null;

/** The Hub options for a request: an endpoint (checked), and the token saved for its origin only. */
async function hub(endpoint = input('hub-endpoint').value.trim()): Promise<{ endpoint: string; token: string | null }> {
  const origin = hubOrigin(endpoint); // a clear HubError for plain http:// to another machine, or no URL
  const field = input('hub-token').value.trim();
  return { endpoint, token: origin === tokenOrigin ? field || null : await tokens.load(origin) };
}

/** The Hub options for a repo: the page's own demo Hub for the built-in demo (no token), else hub(). */
async function hubFor(id: string, endpoint?: string): Promise<{ endpoint: string; token: string | null }> {
  return isBuiltIn(id) ? { endpoint: builtInEndpoint(), token: null } : hub(endpoint);
}

/** After the endpoint changed: the notice under the model field, and the token field for the new origin. */
async function endpointChanged(): Promise<void> {
  const endpoint = input('hub-endpoint').value.trim();
  tokenOrigin = null;
  input('hub-token').value = '';
  let origin: string | null = null,
    refused = '';
  try {
    origin = hubOrigin(endpoint);
  } catch (e) {
    refused = (e as Error).message;
  }
  const token = origin ? await tokens.load(origin) : null;
  if (input('hub-endpoint').value.trim() !== endpoint) return; // changed again meanwhile: that call fills it
  tokenOrigin = origin;
  input('hub-token').value = token ?? '';
  input('hub-token').disabled = !origin;
  const notice = $('hub-notice');
  notice.hidden = origin === DEFAULT_HUB_ORIGIN;
  notice.dataset.refused = String(!origin);
  const sent = token ? `the token saved for ${origin} is sent to it` : 'no token is sent';
  notice.textContent = `Hub: ${endpoint} — ${origin ? `not huggingface.co; ${sent}` : `refused: ${refused}`}`;
}

/** The token field was changed: save it for the origin it was entered for, and no other. */
async function tokenChanged(): Promise<void> {
  if (!tokenOrigin) {
    throw new Error('fix the Hub endpoint first: a token is saved for one Hub, and this endpoint is not one');
  }
  const origin = tokenOrigin;
  await tokens.save(origin, input('hub-token').value.trim() || null);
  input('hub-token').dataset.savedFor = origin; // for a script or a test to see it is kept
  if (tokenOrigin !== DEFAULT_HUB_ORIGIN) await endpointChanged(); // the notice says whether a token goes
}

/** The presets' estimates follow the page's max length, rank, targets and precision. */
function refreshPresets(): void {
  const f = readSettings();
  const settings = {
    max_length: f.prepare.max_length,
    r: f.lora.r,
    targets: f.lora.target_modules,
    load_in_4bit: f.model.load_in_4bit,
  };
  showPresets($<HTMLTableElement>('preset-table'), settings, (id) => {
    input('model-id').value = id;
    void act('plan', plan);
  });
}

// ---- 1. GPU ---------------------------------------------------------------------------------

async function checkKernels(): Promise<void> {
  $('status').textContent = 'Running the NF4 kernels…';
  const r = await engine.checkKernels();
  const ok = r.bytesIdentical && r.relError < 1e-5;
  rows($('result'), [
    ['Kernel', `NF4 quantize + GEMV, W [${r.shape.join(' × ')}]`],
    ['Bytes match the CPU quantizer', r.bytesIdentical ? 'yes' : 'NO'],
    ['Relative error vs CPU', r.relError.toExponential(2)],
    ['Time', `${r.ms.toFixed(1)} ms`],
  ]);
  $('result').dataset.ok = String(ok);
  $('status').textContent = ok ? 'Kernels OK' : 'Kernel mismatch';
}

// ---- 2. Model -------------------------------------------------------------------------------

/** The Hub id of the model loaded (the recipe's model_name_or_path). */
let loadedModelId: string | null = null;

// the models in this browser's storage (models-view.ts); loading and downloading are the page's
const models = new StoredModelsView({
  engine,
  act,
  rendered: () => applyControls(state.get()), // the new rows' buttons
  loaded: () => state.get().loaded,
  load: (key) => loadModel(key),
  resume: (id, endpoint) => download(id, endpoint),
  deleted: (key) => {
    if (state.get().loaded === key) setLoaded(null, '');
  },
});
const refreshModels = () => models.refresh();

async function plan(): Promise<void> {
  const f = readSettings();
  const p = await engine.planModel(f.model.id, await hubFor(f.model.id), {
    max_length: f.prepare.max_length,
    batch: f.run.per_device_train_batch_size,
    r: f.lora.r,
    lora_dropout: f.lora.lora_dropout,
    targets: f.lora.target_modules,
    load_in_4bit: f.model.load_in_4bit,
  });
  const t = $('plan-table');
  t.hidden = false;
  rows(t, [
    ['Architecture', `${p.modelType}, ${p.layers} layers, hidden ${p.hidden}`],
    ['Download', formatBytes(p.downloadBytes)],
    [
      'Stored (NF4 + 16-bit)',
      formatBytes(p.storeBytes) + (p.freeBytes !== null ? ` of ${formatBytes(p.freeBytes)} free` : ''),
    ],
    [
      'GPU memory to train',
      `about ${formatBytes(p.memory.total)} (weights ${formatBytes(p.memory.weights)}, adapter ` +
        `${formatBytes(p.memory.adapter)}, activations ${formatBytes(p.memory.activations)})`,
    ],
    ['This device', p.problems.length ? `cannot: ${p.problems.join('; ')}` : 'can hold it'],
  ]);
}

async function download(id = input('model-id').value.trim(), endpoint?: string): Promise<void> {
  const from = await hubFor(id, endpoint);
  $('download-progress').hidden = false;
  $('pause').hidden = false;
  const started = performance.now();
  // ask that the browser not evict what is stored (a window's request: workers cannot make it)
  void navigator.storage?.persist?.().catch(() => false);
  try {
    const settings = { ...from, load_in_4bit: checked('load-4bit') };
    const m = await engine.downloadModel(
      id,
      settings,
      Comlink.proxy((p: DownloadProgress) => {
        $<HTMLProgressElement>('download-bar').value = p.total ? p.done / p.total : 0;
        const left = p.bytesPerSecond > 0 ? (p.total - p.done) / p.bytesPerSecond : NaN;
        $('download-text').textContent =
          `${formatBytes(p.done)} of ${formatBytes(p.total)} · ${formatBytes(p.bytesPerSecond)}/s · ` +
          `${clock(left)} left · ${p.file}`;
      }),
    );
    $('download-text').textContent =
      `Downloaded and stored ${m.id} (${formatBytes(m.storedBytes)}) in ` +
      `${((performance.now() - started) / 1000).toFixed(1)} s`;
    await refreshModels();
    await loadModel(m.key);
  } catch (e) {
    await refreshModels();
    if ((e as Error).name === 'AbortError' || /paused/.test((e as Error).message))
      $('download-text').textContent = 'Paused: Resume continues from what is stored.';
    else throw e;
  } finally {
    $('pause').hidden = true;
  }
}

function setLoaded(key: string | null, text: string): void {
  // data is prepared for one model, an adapter sits on one: a new model has neither
  state.set({ loaded: key, prepared: false, adapter: false });
  $('model-status').textContent = key ? text : 'No model loaded.';
  if (!key) {
    chat.setModel(false, false);
    loadedModelId = null;
  }
}

async function loadModel(key: string): Promise<void> {
  $('model-status').textContent = 'Loading onto the GPU…';
  const info = await engine.loadModel(
    key,
    Comlink.proxy((done: number, total: number) => {
      $('model-status').textContent = `Loading onto the GPU… ${done}/${total} tensors`;
    }),
  );
  setLoaded(key, `Loaded ${info.id} (${info.modelType}, ${info.layers} layers) from this browser's storage.`);
  if (isBuiltIn(info.id)) {
    demoSettings();
    $('model-status').textContent +=
      " The settings are now the demo's (its data, learning rate 0.01, 150 steps): press Prepare, then Train.";
  }
  loadedModelId = info.id;
  showChatDefaults(info.chat);
  await refreshModels();
}

// ---- 3. Data --------------------------------------------------------------------------------

// the prepared data in numbers, its token lengths and its first blocks (data-summary-view.ts)
const dataView = new DataSummaryView();

/** The batch size changed after the data was prepared: its padding line follows. */
async function batchChanged(): Promise<void> {
  if (!dataView.shown) return;
  const at = await engine.paddingAt(num('batch'));
  if (at) dataView.batchChanged(at.stats, at.padding, num('batch'));
}

async function prepare(): Promise<void> {
  const form = readSettings();
  if (form.data.kind === 'file' && !form.data.file)
    throw new Error('choose a data file (JSONL, JSON, CSV, TXT or Parquet), or pick the Hub data set');
  const source =
    form.data.kind === 'file'
      ? { kind: 'file' as const, file: form.data.file! }
      : { kind: 'hub' as const, id: form.data.id };
  $('data-status').textContent = 'Reading and tokenizing…';
  const { packing, packing_strategy: strategy } = form.prepare;
  // a file of one's own needs no Hub (nor a valid endpoint)
  const s = await engine.prepareData(source, form.prepare, source.kind === 'hub' ? await hubFor(source.id) : {});
  dataView.show(s, { packing, strategy, maxLength: form.prepare.max_length, batch: num('batch') });
  state.set({ prepared: true });
}

/** What the built-in demo trains well with: a random tiny model learns its 24 conversations in 150 steps. */
function demoSettings(): void {
  (document.querySelector('input[name="data-kind"][value="hub"]') as HTMLInputElement).checked = true;
  input('data-id').value = DEMO_DATA;
  for (const [id, v] of [
    ['max-length', '128'],
    ['lr', '0.01'],
    ['steps', '150'],
    ['batch', '4'],
    ['warmup', '0'],
    ['eval-steps', '50'],
    ['test-size', '0.1'],
  ])
    input(id).value = v;
  // what it learns, shown as it learns it: two of its questions, answered at each evaluation
  if (!input('watch-prompts').value.trim()) {
    input('watch-prompts').value = 'What is QLoRA?\nWho are you?';
    watch.save();
  }
}

/** The worked example's data: guanaco's train split, its text column, 512 tokens, wrapped packing. */
function guanacoPreset(): void {
  (document.querySelector('input[name="data-kind"][value="hub"]') as HTMLInputElement).checked = true;
  input('data-id').value = 'timdettmers/openassistant-guanaco';
  input('text-field').value = 'text';
  input('max-length').value = '512';
  input('packing').checked = true;
  input('packing-strategy').value = 'wrapped';
}

// ---- 5. Train -------------------------------------------------------------------------------

const chart = new LossChart($('chart'));

/** The training section's buttons while a run trains (and back when it ends). */
function training(on: boolean): void {
  state.set({ training: on });
  const pause = $<HTMLButtonElement>('pause-training');
  pause.textContent = 'Pause training';
  pause.setAttribute('aria-pressed', 'false');
}

/** TRL's num_tokens as the last train log of a log_history has it. */
const tokensIn = (history: Record<string, number>[]) =>
  [...history].reverse().find((h) => 'num_tokens' in h)?.num_tokens ?? 0;

/** What a run reports, on the chart, the table and the status line; step times measured here. */
function trainEvents(): (e: TrainEvent) => Promise<void> {
  let last = { time: performance.now(), step: 0, num_tokens: 0 };
  return async (e) => {
    if (e.type === 'restored') {
      // a resumed run may have loaded its own model: the chat, and the watched prompts, take it
      const info = await engine.chatInfo().catch(() => null);
      if (info) showChatDefaults(info);
      chart.fromHistory(e.history);
      last = { time: performance.now(), step: e.step, num_tokens: tokensIn(e.history) };
      $('train-status').textContent = `Resumed at step ${e.step} of ${e.maxSteps}, from its checkpoint.`;
      return;
    }
    if (e.type === 'recovered') {
      chart.fromHistory(e.history);
      last = { time: performance.now(), step: e.resumedFrom, num_tokens: tokensIn(e.history) };
      $('train-note').textContent =
        `The GPU was lost at step ${e.lostAt} (${e.reason}). A new one took over from the checkpoint at step ` +
        `${e.resumedFrom}: ${e.redone} step${e.redone === 1 ? '' : 's'} done again, nothing lost.`;
      return;
    }
    if (e.type === 'save') {
      await refreshRuns(); // the run's row: its step, and that it is kept
      runs.say(`Checkpoint saved at step ${e.step}.`);
      return;
    }
    if (e.type === 'paused') {
      $('train-status').textContent = `Paused after step ${e.step}, checkpoint saved: Continue goes on from here.`;
      return;
    }
    if (e.type === 'eval') {
      chart.addEval(e.log.eval_loss);
      await watch.answer(chart.lastStep()!, chat.hasTemplate);
      return;
    }
    if (e.type !== 'train') return;
    const log = e.log;
    const now = performance.now();
    const stepTime = (now - last.time) / 1000 / Math.max(1, log.step - last.step);
    const tokensPerSecond = (log.num_tokens - last.num_tokens) / ((now - last.time) / 1000);
    last = { time: now, step: log.step, num_tokens: log.num_tokens };
    chart.addStep(log.step, log.loss, log.learning_rate);
    const mem = await engine.gpuBytes();
    // for a script or a test to read: what the GPU holds, and all it was ever given
    Object.assign($('train-stats').dataset, { gpuInUse: mem.inUse, gpuAllocated: mem.allocated, step: log.step });
    rows($('train-stats'), [
      ['Step', `${log.step} / ${log.max_steps} (epoch ${log.epoch})`],
      ['Loss', log.loss.toFixed(4)],
      ['Learning rate', log.learning_rate.toExponential(2)],
      ['Gradient norm', log.grad_norm.toFixed(3)],
      ['Token accuracy', `${(100 * log.mean_token_accuracy).toFixed(1)} %`],
      ['Tokens / s', tokensPerSecond.toFixed(0)],
      ['Step time', `${stepTime.toFixed(2)} s`],
      ['Time left', clock((log.max_steps - log.step) * stepTime)],
      ['GPU memory in use', `${formatBytes(mem.inUse)} between steps, ${formatBytes(mem.peak)} at most`],
    ]);
    const paused = $('pause-training').getAttribute('aria-pressed') === 'true';
    $('train-status').textContent =
      `Training: step ${log.step} of ${log.max_steps}${paused ? ' (pausing after this step)' : ''}`;
  };
}

/** Trains (or resumes) through `run`, the buttons and the runs table following. */
async function drive(run: (onEvent: (e: TrainEvent) => Promise<void>) => Promise<TrainSummary>): Promise<void> {
  training(true);
  watch.start();
  try {
    const summary = await run(Comlink.proxy(trainEvents()));
    state.set({ adapter: true });
    await watch.answer(summary.global_step, chat.hasTemplate);
    $('train-status').textContent =
      `Trained ${summary.global_step} steps (${summary.steps_this_session} now) in ` +
      `${summary.train_runtime.toFixed(1)} s: mean loss ${summary.train_loss.toFixed(4)}.`;
  } catch (e) {
    $('train-status').textContent = 'Not training: the message at the top of the page says why.';
    throw e;
  } finally {
    training(false);
    await refreshRuns();
  }
}

async function train(): Promise<void> {
  chart.reset();
  $('train-note').textContent = '';
  $('train-status').textContent = 'Training… (the first step compiles the shaders)';
  const { lora, run: settings } = readSettings();
  await refreshRuns(); // the new run is listed while it trains
  await drive((onEvent) => engine.train(lora, settings, onEvent));
}

// ---- runs kept: runs-view.ts; what Resume and Open do to the page is here ------------------------

const runs = new RunsView({
  engine,
  chart,
  act,
  rendered: () => applyControls(state.get()), // the new rows' buttons
  status: (text) => {
    $('train-status').textContent = text;
  },
  resume: async (r) => {
    $('train-status').textContent = 'Loading the run…';
    await drive((onEvent) => engine.resumeRun(r.id, onEvent));
    setLoaded(r.modelKey, r.modelId);
    state.set({ prepared: true, adapter: true }); // the run's data and the adapter it trained
    loadedModelId = r.modelId;
    // the run loaded its model: the chat takes it, with its defaults and its template (a run that
    // failed to load leaves none, and its message is up already)
    const info = await engine.chatInfo().catch(() => null);
    if (info) showChatDefaults(info);
  },
  open: async (r) => {
    $('train-status').textContent = 'Opening the run…';
    const o = await engine.openRun(r.id).catch(async (e) => {
      // a run whose model could not be loaded leaves none loaded: the page says so too
      if (!(await engine.chatInfo().catch(() => null))) setLoaded(null, '');
      throw e;
    });
    setLoaded(r.modelKey, `Loaded ${r.modelId} from this browser's storage, with the adapter of a kept run.`);
    state.set({ adapter: true });
    loadedModelId = r.modelId;
    showChatDefaults(o.chat);
    chart.fromHistory(o.history);
    $('train-status').textContent =
      `Opened the run of ${r.modelId} on ${r.data} started ${new Date(r.createdAt).toLocaleString()}: ` +
      `its adapter at step ${o.step} is loaded, to chat with, push or export.`;
    await refreshModels();
  },
});
const refreshRuns = () => runs.refresh();

async function togglePause(): Promise<void> {
  const b = $<HTMLButtonElement>('pause-training');
  const pausing = b.getAttribute('aria-pressed') !== 'true';
  if (pausing) await engine.pauseTraining();
  else await engine.resumeTraining();
  b.setAttribute('aria-pressed', String(pausing));
  b.textContent = pausing ? 'Continue training' : 'Pause training';
  $('train-status').textContent = pausing ? 'Pausing after this step (a checkpoint is saved there)…' : 'Training…';
}

// ---- 6. Chat --------------------------------------------------------------------------------

/**
 * The loaded model's generation defaults in the chat's fields, as transformers' generate() starts
 * from them (generation_config.json, else its own defaults); what the user then changes wins.
 */
function showChatDefaults(c: ChatInfo): void {
  chat.setModel(true, c.chatTemplate);
  const d = c.defaults;
  input('do-sample').checked = d.do_sample;
  input('temperature').value = String(d.temperature);
  input('top-k').value = String(d.top_k);
  input('top-p').value = String(d.top_p);
  if (d.max_new_tokens !== undefined) input('max-new').value = String(d.max_new_tokens);
  const box = input('chat-template');
  box.disabled = !c.chatTemplate;
  if (!c.chatTemplate) box.checked = false;
  $('thinking-field').hidden = !c.thinking;
  $<HTMLSelectElement>('thinking').value = '';
  const value = (k: string) => {
    const v = (d as unknown as Record<string, unknown>)[k];
    return Array.isArray(v) ? v.join(' or ') : String(v);
  };
  const stops = d.eos_token_id?.length ? `stops at token ${d.eos_token_id.join(' or ')}` : 'no end-of-sequence token';
  const fields = c.fromGenerationConfig.map((k) => `${k} ${value(k)}`).join(', ');
  $('chat-defaults').textContent = c.problem
    ? `The model's defaults are transformers' here: ${c.problem}`
    : fields
      ? `Defaults from the model's generation_config.json: ${fields}.`
      : `The model has no generation_config.json: transformers' defaults; ${stops} (config.json's eos_token_id).`;
}

/** The sampling panel's settings, for a conversation's reply or a completion. */
function samplingSettings() {
  return {
    do_sample: checked('do-sample'),
    temperature: num('temperature'),
    top_k: num('top-k'),
    top_p: num('top-p'),
    max_new_tokens: num('max-new'),
    seed: num('seed'),
  };
}

/** enable_thinking as chosen, where the template reads it; undefined: the template's default. */
function thinkingChoice(): boolean | undefined {
  const v = $<HTMLSelectElement>('thinking').value;
  return $('thinking-field').hidden || !v ? undefined : v === 'true';
}

// section 7 (adapter-view.ts)
new AdapterView({
  engine,
  proxy: Comlink.proxy,
  hub: () => hub(),
  act,
  showError,
  adapterLoaded: () => state.set({ adapter: true }),
});

// the prompts answered after each evaluation and at a run's end (watch-prompts.ts)
const watch = new WatchPrompts(
  document.getElementById('watch-prompts') as HTMLTextAreaElement,
  document.getElementById('watch-table') as HTMLTableElement,
  engine,
);
const chat = new ChatView({
  engine,
  proxy: (f) => Comlink.proxy(f),
  settings: samplingSettings,
  adapterOn: () => checked('adapter-on'),
  thinking: thinkingChoice,
  showError,
  clearError,
});

/** Completion mode: the prompt continued as it is (or as one chat message), several sequences side by side. */
async function generate(): Promise<void> {
  chat.setCompleting(true);
  try {
    await complete();
  } finally {
    chat.setCompleting(false);
  }
}

async function complete(): Promise<void> {
  const n = num('sequences');
  const boxes = Array.from({ length: n }, () => {
    const p = document.createElement('pre');
    p.className = 'output';
    return p;
  });
  $('outputs').replaceChildren(...boxes);
  const prompt = input('prompt').value;
  // as a chat message, the reply follows the message on a line of its own (the template's markup is not shown)
  const asMessage = checked('chat-template');
  const thinking = thinkingChoice();
  const shown = asMessage ? `${prompt}\n\n` : prompt;
  for (const b of boxes) b.textContent = shown;
  // repetition_penalty is not in the form: the model's default (generation_config.json's, else 1) holds
  const texts = await engine.generate(
    prompt,
    { ...samplingSettings(), num_return_sequences: n },
    checked('adapter-on'),
    Comlink.proxy((i: number, text: string) => {
      boxes[i].textContent = shown + text;
    }),
    { chat: asMessage, ...(asMessage && thinking !== undefined ? { enable_thinking: thinking } : {}) },
  );
  texts.forEach((t, i) => {
    boxes[i].textContent = shown + t;
    boxes[i].dataset.done = 'true';
  });
}

// ---- 7. Adapter: adapter-view.ts ------------------------------------------------------------

// ---- the run for the Python stack ---------------------------------------------------------

/** Export recipe: the run as trl sft, a script and an accelerate config, zipped. */
function exportRunRecipe(): void {
  const form = readSettings();
  const localFile = form.data.kind === 'file' ? form.data.file?.name : undefined;
  const r = exportRecipe(recipeSettings(form, loadedModelId ?? form.model.id), {
    madeBy: 'Exported from the QLoRA page',
    localFile,
  });
  const files = Object.fromEntries(Object.entries(r.files).map(([k, v]) => [`recipe/${k}`, strToU8(v)]));
  const a = document.createElement('a');
  a.href = URL.createObjectURL(new Blob([zipSync(files) as BlobPart], { type: 'application/zip' }));
  a.download = 'recipe.zip';
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
  $('train-note').textContent = `Exported recipe.zip: ${r.command}`;
}

// ---- start ----------------------------------------------------------------------------------

async function start(): Promise<void> {
  // the built page keeps itself (and the built-in demo) for offline use; the dev server's modules change as you edit
  if (!import.meta.env.DEV && 'serviceWorker' in navigator)
    navigator.serviceWorker.register(`${import.meta.env.BASE_URL}sw.js`).catch(showError);
  const params = new URLSearchParams(location.search);
  if (params.get('hub')) input('hub-endpoint').value = params.get('hub')!;
  if (params.get('model')) input('model-id').value = params.get('model')!;
  if (params.get('data')) input('data-id').value = params.get('data')!;
  input('hub-endpoint').addEventListener('input', () => void endpointChanged().catch(showError));
  input('hub-token').addEventListener('change', () => void tokenChanged().catch(showError));
  await tokens.migrate(localStorage).catch(showError); // the old page's plain-text token: huggingface.co's
  await endpointChanged().catch(showError);
  refreshPresets();
  for (const id of ['max-length', 'lora-r', 'targets', 'load-4bit'])
    input(id).addEventListener('change', refreshPresets);
  try {
    const info = await engine.init();
    rows($('adapter'), [
      ['Adapter', [info.vendor, info.architecture, info.description].filter(Boolean).join(' · ') || 'unnamed'],
      ['Features', info.features.join(', ') || 'none'],
      ['Largest buffer', `${(info.limits.maxBufferSize / 2 ** 20).toFixed(0)} MiB`],
      ['Largest binding', `${(info.limits.maxStorageBufferBindingSize / 2 ** 20).toFixed(0)} MiB`],
      ['f16 shaders', info.features.includes('shader-f16') ? 'yes' : 'no (f32 path)'],
    ]);
    state.set({ gpu: true });
    await refreshModels();
    await refreshRuns();
    await checkKernels();
  } catch (e) {
    $('status').textContent = 'WebGPU unavailable';
    showError(e);
  }
}

// another tab may have trained, finished or left a run meanwhile
document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible') void refreshRuns().catch(showError);
});
$('check').addEventListener('click', () => void act('check', checkKernels));
$('plan').addEventListener('click', () => void act('plan', plan));
$('download').addEventListener('click', () => void act('download', () => download()));
$('pause').addEventListener('click', () => void engine.pauseDownload());
$('prepare').addEventListener('click', () => void act('prepare', prepare));
$('guanaco').addEventListener('click', guanacoPreset);
$('train').addEventListener('click', () => void act('train', train));
$('stop').addEventListener('click', () => void engine.stopTraining());
$('pause-training').addEventListener('click', () => void togglePause().catch(showError));
$('reset').addEventListener(
  'click',
  () =>
    void act('reset', async () => {
      await engine.resetAdapter();
      state.set({ adapter: false });
      $('adapter-status').textContent = 'The adapter was dropped: the next training starts a fresh one.';
    }),
);
input('batch').addEventListener('input', () => void batchChanged().catch(showError));
$('export-recipe').addEventListener('click', () => {
  clearError();
  try {
    exportRunRecipe();
  } catch (e) {
    showError(e);
  }
});
$('generate').addEventListener('click', () => {
  clearError();
  generate().catch(showError);
});
// a data file dropped anywhere on the data section is the one to train on
const dataSection = $('data-h').parentElement!;
dataSection.addEventListener('dragover', (e) => e.preventDefault());
dataSection.addEventListener('drop', (e) => {
  e.preventDefault();
  if (!e.dataTransfer?.files.length) return;
  input('data-file').files = e.dataTransfer.files;
  (document.querySelector('input[name="data-kind"][value="file"]') as HTMLInputElement).checked = true;
});
void start();
