// The models kept in this browser's storage (src/store/model-store.ts), in the Model section:
// each with its size (or how much of it is downloaded) and where it came from when that is not
// huggingface.co; Load, Resume (a partial download) and Delete. Loading and downloading are the
// page's to do (they change what the rest of the page shows); this view lists and deletes.
import type * as Comlink from 'comlink';
import type { StoredModel } from '../engine/engine';
import { isBuiltIn } from '../hub/built-in';
import { DEFAULT_HUB_ORIGIN } from '../hub/token-policy';
import { formatBytes } from '../model/estimate';
import type { EngineApi } from '../worker/engine.worker';

export interface ModelsHost {
  engine: Comlink.Remote<EngineApi>;
  /** Runs an action with its button disabled meanwhile, its error shown. */
  act(button: HTMLButtonElement, f: () => Promise<void>): Promise<void>;
  /** The rows were drawn again (their buttons take the page's state). */
  rendered(): void;
  /** The store key of the model loaded, or null. */
  loaded(): string | null;
  load(key: string): Promise<void>;
  resume(id: string, endpoint: string): Promise<void>;
  /** A model was deleted from the store. */
  deleted(key: string): void;
}

export class StoredModelsView {
  private readonly body = document.getElementById('models')!.querySelector('tbody')!;

  constructor(private readonly host: ModelsHost) {}

  async refresh(): Promise<void> {
    const models = await this.host.engine.listModels();
    this.body.replaceChildren(...models.map((m) => this.row(m)));
    if (models.length === 0) {
      const tr = document.createElement('tr');
      const td = tr.appendChild(document.createElement('td'));
      td.textContent = 'No models yet: download one above.';
      this.body.append(tr);
    }
    this.host.rendered();
  }

  private row(m: StoredModel): HTMLTableRowElement {
    const tr = document.createElement('tr');
    tr.dataset.key = m.key;
    const name = document.createElement('td');
    name.textContent = `${m.id}${m.revision === 'main' ? '' : `@${m.revision}`}`;
    if (m.endpoint !== DEFAULT_HUB_ORIGIN) {
      // a model from another Hub says where it came from
      const from = name.appendChild(document.createElement('small'));
      from.className = 'endpoint';
      from.textContent = isBuiltIn(m.id) ? ' (the built-in demo)' : ` from ${m.endpoint}`;
    }
    const size = document.createElement('td');
    size.textContent = m.complete
      ? `${formatBytes(m.storedBytes)} stored`
      : `partial: ${Math.round(m.progress * 100)}% downloaded`;
    const buttons = document.createElement('td');
    const button = (label: string, f: () => Promise<void>) => {
      const b = document.createElement('button');
      b.type = 'button';
      b.textContent = label;
      b.addEventListener('click', () => void this.host.act(b, f));
      buttons.append(b);
    };
    if (m.complete) button(this.host.loaded() === m.key ? 'Loaded' : 'Load', () => this.host.load(m.key));
    else button('Resume', () => this.host.resume(m.id, m.endpoint));
    button('Delete', async () => {
      await this.host.engine.deleteModel(m.key);
      this.host.deleted(m.key);
      await this.refresh();
    });
    tr.append(name, size, buttons);
    return tr;
  }
}
