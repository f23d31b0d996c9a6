// The page's buttons as its state has them (src/ui/page-state.ts): each flag follows from the
// state alone, in the order a user meets them.
import { describe, expect, it } from 'vitest';
import { controls, INITIAL, rowButtonEnabled, Store, type PageState } from '../../src/ui/page-state';

const on = (s: PageState) =>
  Object.entries(controls(s))
    .filter(([, v]) => v)
    .map(([k]) => k)
    .sort();

describe('the page state', () => {
  it('opens each step as the one before it is done, and closes what a run would disturb', () => {
    expect(on(INITIAL)).toEqual([]); // no WebGPU yet: nothing
    const gpu = { ...INITIAL, gpu: true };
    expect(on(gpu)).toEqual(['check', 'download', 'plan']);
    const loaded = { ...gpu, loaded: 'm' };
    const withModel = [
      'check',
      'download',
      'plan',
      'prepare',
      'reset',
      'save-adapter',
      'load-adapter',
      'load-hub-adapter',
    ];
    expect(on(loaded)).toEqual(withModel.sort());
    // an adapter (trained, opened or loaded) can be pushed and merged
    expect(on({ ...loaded, adapter: true })).toEqual([...withModel, 'push-adapter', 'export-merged'].sort());
    const prepared = { ...loaded, prepared: true };
    expect(on(prepared)).toContain('train');
    // training (an action under way from Train to its end): Stop and Pause; nothing that swaps the
    // model, the data or the adapter under the run, no download (it would load another model)
    const training = { ...prepared, adapter: true, training: true, busy: new Set(['train']) };
    expect(on(training)).toEqual(['check', 'pause-training', 'plan', 'save-adapter', 'stop']);
    expect(rowButtonEnabled(training)).toBe(false);
    expect(rowButtonEnabled(prepared)).toBe(true);
  });

  it('takes one change to the model or its adapter at a time', () => {
    // a push under way: no training, no other load or push, no row button; the kernel check still runs
    const s: PageState = {
      ...INITIAL,
      gpu: true,
      loaded: 'm',
      prepared: true,
      adapter: true,
      busy: new Set(['push-adapter']),
    };
    expect(on(s)).toEqual(['check', 'plan', 'save-adapter']);
    expect(rowButtonEnabled(s)).toBe(false);
    expect(controls({ ...s, busy: new Set(['check']) }).check).toBe(false);
  });

  it('tells its subscribers every change, and the state at once', () => {
    const store = new Store<PageState>(INITIAL);
    const seen: boolean[] = [];
    store.subscribe((s) => seen.push(s.gpu));
    store.set({ gpu: true });
    expect(seen).toEqual([false, true]);
    expect(store.get().loaded).toBe(null);
  });
});
