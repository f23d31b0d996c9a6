// The Chat section. For a model with a chat template, a conversation: an optional system
// prompt, the turns rendered by the model's template (Engine.chat), the reply streamed as it
// comes and ended by the model's end-of-turn tokens, Stop, Regenerate and Clear. Every model
// also has the plain completion mode (a base model has only it): text continued as it is.
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
}

const byId = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

export class ChatView {
  private state: ChatState = { loaded: false, hasTemplate: false, mode: 'completion', turns: [], generating: false };

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

  /** The conversation as the template takes it: the system prompt first, if any. */
  private messages(turns: Turn[]): Message[] {
    const system = this.el.system.value.trim();
    const said = turns.map(({ role, content }) => ({ role, content }));
    return system ? [{ role: 'system', content: system }, ...said] : said;
  }

  private async send(): Promise<void> {
    const text = this.el.message.value;
    if (!text.trim()) return;
    this.el.message.value = '';
    await this.reply([...this.state.turns, { role: 'user', content: text }]);
  }

  /** The last reply again, from the conversation before it. */
  private async regenerate(): Promise<void> {
    const turns = this.state.turns;
    const last = turns.at(-1)?.role === 'assistant' ? turns.slice(0, -1) : turns;
    await this.reply(last);
  }

  /** Streams the assistant's turn after `turns`. */
  private async reply(turns: Turn[]): Promise<void> {
    this.host.clearError();
    const streaming: Turn = { role: 'assistant', content: '', streaming: true };
    this.set({ turns: [...turns, streaming], generating: true });
    try {
      const thinking = this.host.thinking();
      const done = await this.host.engine.chat(
        this.messages(turns),
        this.host.settings(),
        this.host.adapterOn(),
        this.host.proxy((text: string) => {
          streaming.content = text;
          this.renderTurn(this.el.transcript.lastElementChild as HTMLLIElement, streaming);
        }),
        thinking === undefined ? {} : { enable_thinking: thinking },
      );
      this.set({ turns: [...turns, { role: 'assistant', content: done.reply, stopped: done.stopped }] });
    } catch (e) {
      this.set({ turns }); // the conversation as it was before the reply was asked for
      this.host.showError(e);
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
    const items = turns.map((t) => this.renderTurn(document.createElement('li'), t));
    e.transcript.replaceChildren(...items);
  }

  private renderTurn(li: HTMLLIElement, t: Turn): HTMLLIElement {
    li.className = `turn ${t.role}`;
    li.dataset.role = t.role;
    if (t.streaming) delete li.dataset.done;
    else li.dataset.done = 'true';
    if (t.stopped) li.dataset.stopped = 'true';
    const who = document.createElement('span');
    who.className = 'who';
    who.textContent = t.role === 'user' ? 'You' : t.stopped ? 'Model (stopped)' : 'Model';
    const text = document.createElement('div');
    text.className = 'text';
    text.textContent = t.content;
    li.replaceChildren(who, text);
    return li;
  }
}
