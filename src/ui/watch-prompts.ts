// Prompts watched while a run trains: after each evaluation, and when the run ends, each one is
// answered greedily by the model as it stands (through its chat template where it has one), and
// the answers pile up by step beside the loss curve, so the user sees what the numbers mean.
// The training waits for the answers (the page's event handler is awaited before the next step).
import type { Message } from '../data/sft';
import type { GenerationRequest } from '../generate/generation-config';

/** Prompts watched at most: each answer holds the training up for a moment. */
export const MAX_WATCHED = 5;

/** Where the prompts are kept between visits (localStorage). */
const SAVED_KEY = 'qlora-watch-prompts';

/** Greedy and short: the same answer for the same weights, quickly. */
const WATCH_SETTINGS: GenerationRequest = { do_sample: false, max_new_tokens: 32 };

export interface WatchEngine {
  chat(messages: Message[], s: GenerationRequest, adapterOn: boolean): Promise<{ reply: string }>;
  generate(prompt: string, s: GenerationRequest, adapterOn: boolean): Promise<string[]>;
}

export class WatchPrompts {
  /** The answers so far: one column per step, one row per prompt. */
  private columns: { step: number; answers: string[] }[] = [];
  private prompts: string[] = [];

  constructor(
    private readonly field: HTMLTextAreaElement,
    private readonly table: HTMLTableElement,
    private readonly engine: WatchEngine,
    private readonly storage: Pick<Storage, 'getItem' | 'setItem'> | null = globalThis.localStorage ?? null,
  ) {
    // the prompts are kept across visits (they are the user's own test questions, not secrets)
    field.value = storage?.getItem(SAVED_KEY) ?? field.value;
    field.addEventListener('change', () => this.save());
  }

  /** Keeps the field's prompts for the next visit. */
  save(): void {
    this.storage?.setItem(SAVED_KEY, this.field.value);
  }

  /** A new run: the prompts are read from the field now, and the table starts empty. */
  start(): void {
    this.prompts = this.field.value
      .split('\n')
      .map((p) => p.trim())
      .filter(Boolean)
      .slice(0, MAX_WATCHED);
    this.columns = [];
    this.render();
  }

  /** Answers each prompt with the model as it is at `step` (once per step). */
  async answer(step: number, chat: boolean): Promise<void> {
    if (this.prompts.length === 0 || this.columns.at(-1)?.step === step) return;
    const answers: string[] = [];
    for (const p of this.prompts) {
      // a prompt that cannot be answered (no usable generation_config.json, say) says why in its
      // cell; it never stops the run, which waits on these answers
      try {
        answers.push(
          chat
            ? (await this.engine.chat([{ role: 'user', content: p }], WATCH_SETTINGS, true)).reply
            : (await this.engine.generate(p, WATCH_SETTINGS, true))[0],
        );
      } catch (e) {
        answers.push(`(no answer: ${e instanceof Error ? e.message : String(e)})`);
      }
    }
    this.columns.push({ step, answers });
    this.render();
  }

  private render(): void {
    this.table.hidden = this.columns.length === 0;
    // answers that arrive are shown: their folded panel opens
    const panel = this.table.closest('details');
    if (panel && this.columns.length) panel.open = true;
    const head = document.createElement('tr');
    const corner = document.createElement('th');
    corner.textContent = 'Prompt';
    head.append(corner);
    for (const c of this.columns) {
      const th = document.createElement('th');
      th.scope = 'col';
      th.textContent = `step ${c.step}`;
      head.append(th);
    }
    const body = this.prompts.map((p, i) => {
      const tr = document.createElement('tr');
      const th = document.createElement('th');
      th.scope = 'row';
      th.textContent = p;
      tr.append(th);
      for (const c of this.columns) {
        const td = document.createElement('td');
        // an empty reply is the model ending at once (its end-of-turn token first): said, not left blank
        td.textContent = c.answers[i] || '(an empty reply: the model ended at once)';
        tr.append(td);
      }
      return tr;
    });
    this.table.replaceChildren(head, ...body);
  }
}
