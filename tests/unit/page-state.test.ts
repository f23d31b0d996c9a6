// The page's buttons as its state has them (src/ui/page-state.ts): each flag follows from the
// state alone, in the order a user meets them.
import { describe, expect, it } from 'vitest';
import { controls, INITIAL, runButtonEnabled, Store, type PageState } from '../../src/ui/page-state';

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
    expect(on(loaded)).toEqual(
      [
        'check',
        'download',
        'plan',
        'prepare',
        'reset',
        'save-adapter',
        'load-adapter',
        'load-hub-adapter',
        'push-adapter',
        'export-merged',
      ].sort(),
    );
    const prepared = { ...loaded, prepared: true };
    expect(on(prepared)).toContain('train');
    // training: Stop and Pause; nothing that swaps the data, the model or the adapter under the run
    const training = { ...prepared, training: true };
    expect(on(training)).toEqual(['check', 'download', 'pause-training', 'plan', 'save-adapter', 'stop']);
    expect(runButtonEnabled(training, 'Open the run')).toBe(false);
    expect(runButtonEnabled(prepared, 'Open the run')).toBe(true);
  });

  it('disables an action while it is under way, and only that one', () => {
    const s: PageState = { ...INITIAL, gpu: true, loaded: 'm', prepared: true, busy: new Set(['train', 'Open x']) };
    expect(controls(s).train).toBe(false);
    expect(controls(s).prepare).toBe(true);
    expect(runButtonEnabled(s, 'Open x')).toBe(false);
    expect(runButtonEnabled(s, 'Delete x')).toBe(true);
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
