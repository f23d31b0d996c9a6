// The page's state in one store, and every button's enabled state derived from it in one place
// (controls()). Actions change the state; no action sets a button by hand. A hand-written store
// rather than a framework: the page is plain DOM, its state is a handful of fields, and a
// subscriber that re-derives thirteen flags on each change costs nothing; Preact or Lit would
// add a build step's worth of concepts for the same thing. (The chat keeps its own state object
// the same way: chat-view.ts.)

export interface PageState {
  /** The worker has a WebGPU device. */
  gpu: boolean;
  /** The stored model loaded onto the GPU (its store key), or null. */
  loaded: string | null;
  /** Data is prepared for the loaded model. */
  prepared: boolean;
  /** A run trains in this tab (paused or not). */
  training: boolean;
  /** The loaded model has an adapter: trained here, a kept run's, or loaded. */
  adapter: boolean;
  /** Actions under way, by their button's id (a run row's button: its label). */
  busy: ReadonlySet<string>;
}

export const INITIAL: PageState = {
  gpu: false,
  loaded: null,
  prepared: false,
  training: false,
  adapter: false,
  busy: new Set(),
};

export class Store<S extends object> {
  private listeners: ((s: S) => void)[] = [];

  constructor(private state: S) {}

  get(): S {
    return this.state;
  }

  set(patch: Partial<S>): void {
    this.state = { ...this.state, ...patch };
    for (const l of this.listeners) l(this.state);
  }

  /** Calls `f` now and on every change. */
  subscribe(f: (s: S) => void): void {
    this.listeners.push(f);
    f(this.state);
  }
}

/** Which of the page's buttons (by id) are enabled in state `s`. */
export function controls(s: PageState): Record<string, boolean> {
  const idle = (id: string) => !s.busy.has(id);
  const loaded = s.gpu && s.loaded !== null;
  // one change to the model, its data or its adapter at a time, and none while a run trains
  // (training itself is an action under way, from Train or Resume to its end)
  const quiet = s.busy.size === 0 && !s.training;
  const between = loaded && quiet;
  return {
    check: s.gpu && idle('check'),
    plan: s.gpu && idle('plan'),
    download: s.gpu && quiet,
    prepare: between,
    train: between && s.prepared,
    stop: s.training,
    'pause-training': s.training,
    reset: between,
    'save-adapter': loaded && idle('save-adapter'),
    'load-adapter': between,
    'load-hub-adapter': between,
    'push-adapter': between && s.adapter,
    'export-merged': between && s.adapter,
  };
}

/** Which of the page's seven steps are done in state `s`, in order (the chat and the adapter stay open). */
export function stepsDone(s: PageState): boolean[] {
  return [s.gpu, s.loaded !== null, s.prepared || s.adapter, s.adapter, s.adapter, false, false];
}

/**
 * The models' and kept runs' row buttons (Load, Resume, Open, Show, Delete): each loads, trains
 * or deletes, so none while a run trains here or another action is under way.
 */
export const rowButtonEnabled = (s: PageState) => s.busy.size === 0 && !s.training;
