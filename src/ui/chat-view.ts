// The Chat section. For a model with a chat template, a conversation: an optional system
// prompt, the turns rendered by the model's template (Engine.chat), the reply streamed as it
// comes and ended by the model's end-of-turn tokens, Stop, Regenerate and Clear. Side by side,
// each message goes to the base model (adapter off) and to the tuned one, with the same seed and
// settings, each answering its own side of the conversation. Every model also has the plain
// completion mode (a base model has only it): text continued as it is.
//
// One state object; render() derives every button and panel from it, so no action sets a
// button's state by hand.
import type { Message } from '../data/sft';
import type { GenerationRequest } from '../generate/generation-config';

/** What the view needs of the engine (the Comlink proxy the page holds). */
export interface ChatEngine {
  chat(
    messages: Message[],
    s: GenerationRequest,
    adapterOn: boolean,
    onText?: (text: string) => void,
    o?: { enable_thinking?: boolean },
  ): Promise<{ reply: string; tokens: number; stopped: boolean }>;
  stopGeneration(): Promise<void> | void;
}

/** The page's side: the sampling panel's settings, the adapter switch, thinking, errors. */
export interface ChatHost {
  engine: ChatEngine;
  /** Wraps a callback for the engine's worker (Comlink.proxy). */
  proxy<F extends (...a: never[]) => unknown>(f: F): F;
  settings(): GenerationRequest;
  adapterOn(): boolean;
  /** enable_thinking as chosen, or undefined for the template's default. */
  thinking(): boolean | undefined;
  showError(e: unknown): void;
  clearError(): void;
}

export type ChatMode = 'conversation' | 'completion';

interface Turn extends Message {
  /** Side by side: the base model's reply (`content` is the tuned one's). */
  base?: string;
  /** An assistant turn still streaming. */
  streaming?: boolean;
  /** Ended by Stop rather than by the model. */
  stopped?: boolean;
}

interface ChatState {
  loaded: boolean;
  hasTemplate: boolean;
  mode: ChatMode;
  turns: Turn[];
  generating: boolean;
  /** Each message to the base model and the tuned one. */
  sideBySide: boolean;
}

const byId = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

export class ChatView {
  private state: ChatState = {
    loaded: false,
    hasTemplate: false,
    mode: 'completion',
    turns: [],
    generating: false,
    sideBySide: false,
  };

  private readonly el = {
    modeConversation: byId<HTMLInputElement>('mode-conversation'),
    modeCompletion: byId<HTMLInputElement>('mode-completion'),
    conversation: byId<HTMLElement>('conversation'),
    completion: byId<HTMLElement>('completion'),
    system: byId<HTMLTextAreaElement>('system-prompt'),
    transcript: byId<HTMLOListElement>('transcript'),
    message: byId<HTMLTextAreaElement>('message'),
    send: byId<HTMLButtonElement>('send'),
    stop: byId<HTMLButtonElement>('chat-stop'),
    regenerate: byId<HTMLButtonElement>('regenerate'),
    clear: byId<HTMLButtonElement>('clear-chat'),
    sideBySide: byId<HTMLInputElement>('side-by-side'),
    adapterOn: byId<HTMLInputElement>('adapter-on'),
    generate: byId<HTMLButtonElement>('generate'),
    sequences: byId<HTMLInputElement>('sequences'),
  };

  constructor(private readonly host: ChatHost) {
    const e = this.el;
    e.modeConversation.addEventListener('change', () => this.set({ mode: 'conversation' }));
    e.modeCompletion.addEventListener('change', () => this.set({ mode: 'completion' }));
    e.send.addEventListener('click', () => void this.send());
    e.stop.addEventListener('click', () => void this.host.engine.stopGeneration());
    e.regenerate.addEventListener('click', () => void this.regenerate());
    e.clear.addEventListener('click', () => this.set({ turns: [] }));
    // a side-by-side conversation and a single one are two different conversations: a switch starts afresh
    e.sideBySide.addEventListener('change', () => this.set({ sideBySide: e.sideBySide.checked, turns: [] }));
    // Enter sends; Shift+Enter is a new line, as chat boxes do
    e.message.addEventListener('keydown', (k) => {
      if (k.key === 'Enter' && !k.shiftKey && !k.isComposing) {
        k.preventDefault();
        if (!e.send.disabled) void this.send();
      }
    });
    e.message.addEventListener('input', () => this.render());
    this.render();
  }

  /** Whether the loaded model has a chat template (the watched prompts go through it too). */
  get hasTemplate(): boolean {
    return this.state.hasTemplate;
  }

  /** A model was loaded (or none is): conversations where it has a chat template. */
  setModel(loaded: boolean, hasTemplate: boolean): void {
    this.set({ loaded, hasTemplate, mode: hasTemplate ? 'conversation' : 'completion', turns: [] });
  }

  /** The completion mode's Generate is running (the page drives it): the conversation waits. */
  setCompleting(on: boolean): void {
    this.set({ generating: on });
  }

  private set(change: Partial<ChatState>): void {
    this.state = { ...this.state, ...change };
    this.render();
  }

  /** One side's conversation as the template takes it: the system prompt first, if any. */
  private messages(turns: Turn[], side: 'tuned' | 'base' = 'tuned'): Message[] {
    const system = this.el.system.value.trim();
    const said = turns.map((t) => ({ role: t.role, content: side === 'base' ? (t.base ?? t.content) : t.content }));
    return system ? [{ role: 'system', content: system }, ...said] : said;
  }

  private async send(): Promise<void> {
    const text = this.el.message.value;
    if (!text.trim()) return;
    this.el.message.value = '';
    // a reply that fails gives the message back to the box, unless something new was typed there
    if (!(await this.reply([...this.state.turns, { role: 'user', content: text }])) && !this.el.message.value) {
      this.el.message.value = text;
      this.render();
    }
  }

  /** The last reply again, from the conversation before it. */
  private async regenerate(): Promise<void> {
    const turns = this.state.turns;
    const last = turns.at(-1)?.role === 'assistant' ? turns.slice(0, -1) : turns;
    await this.reply(last);
  }

  /**
   * Streams the assistant's turn after `turns`: the base model's first when side by side, then the
   * tuned one's. False where it failed (the error shown, the conversation as it was before).
   */
  private async reply(turns: Turn[]): Promise<boolean> {
    const before = this.state.turns;
    this.host.clearError();
    const side = this.state.sideBySide;
    const streaming: Turn = { role: 'assistant', content: '', streaming: true, ...(side ? { base: '' } : {}) };
    this.set({ turns: [...turns, streaming], generating: true });
    const show = () => this.renderTurn(this.el.transcript.lastElementChild as HTMLLIElement, streaming);
    try {
      const ask = (messages: Message[], adapterOn: boolean, onText: (t: string) => void) => {
        const thinking = this.host.thinking();
        const o = thinking === undefined ? {} : { enable_thinking: thinking };
        return this.host.engine.chat(messages, this.host.settings(), adapterOn, this.host.proxy(onText), o);
      };
      let stopped = false;
      if (side) {
        const base = await ask(this.messages(turns, 'base'), false, (t) => {
          streaming.base = t;
          show();
        });
        streaming.base = base.reply;
        stopped = base.stopped;
      }
      const tuned = stopped
        ? null
        : await ask(this.messages(turns), side || this.host.adapterOn(), (t) => {
            streaming.content = t;
            show();
          });
      const done: Turn = { role: 'assistant', content: tuned?.reply ?? '', stopped: stopped || !!tuned?.stopped };
      if (side) done.base = streaming.base;
      this.set({ turns: [...turns, done] });
      return true;
    } catch (e) {
      this.set({ turns: before }); // the conversation as it was: a regenerated reply's old text kept
      this.host.showError(e);
      return false;
    } finally {
      this.set({ generating: false });
    }
  }

  /** Every control and panel from the state. */
  render(): void {
    const { loaded, hasTemplate, mode, turns, generating } = this.state;
    const e = this.el;
    const conversation = mode === 'conversation' && hasTemplate;
    e.modeConversation.disabled = !hasTemplate;
    e.modeConversation.checked = conversation;
    e.modeCompletion.checked = !conversation;
    e.conversation.hidden = !conversation;
    e.completion.hidden = conversation;
    e.send.disabled = !loaded || generating || !e.message.value.trim();
    e.stop.disabled = !generating;
    e.regenerate.disabled = !loaded || generating || !turns.some((t) => t.role === 'user');
    e.clear.disabled = generating || turns.length === 0;
    e.generate.disabled = !loaded || generating;
    e.sequences.disabled = conversation;
    e.sideBySide.disabled = generating;
    e.sideBySide.checked = this.state.sideBySide;
    // side by side, both models answer: the adapter switch does not apply
    e.adapterOn.disabled = conversation && this.state.sideBySide;
    e.transcript.classList.toggle('side-by-side', this.state.sideBySide);
    const items = turns.map((t) => this.renderTurn(document.createElement('li'), t));
    e.transcript.replaceChildren(...items);
  }

  private renderTurn(li: HTMLLIElement, t: Turn): HTMLLIElement {
    li.className = `turn ${t.role}`;
    li.dataset.role = t.role;
    if (t.streaming) delete li.dataset.done;
    else li.dataset.done = 'true';
    if (t.stopped) li.dataset.stopped = 'true';
    const said = (label: string, content: string, side: string) => {
      const box = document.createElement('div');
      box.className = `said ${side}`;
      const who = document.createElement('span');
      who.className = 'who';
      who.textContent = label;
      const text = document.createElement('div');
      text.className = 'text';
      text.textContent = content;
      box.append(who, text);
      return box;
    };
    const stopped = t.stopped ? ' (stopped)' : '';
    if (t.role !== 'assistant') li.replaceChildren(said('You', t.content, 'user'));
    else if (t.base === undefined) li.replaceChildren(said(`Model${stopped}`, t.content, 'tuned'));
    else li.replaceChildren(said(`Base model${stopped}`, t.base, 'base'), said(`Tuned${stopped}`, t.content, 'tuned'));
    return li;
  }
}
