// The Adapter section: the adapter out and in as PEFT's files (a zip download, a zip or the two
// files chosen), to and from the Hub (a PEFT repo loaded; a push to the user's own repo with its
// model card), and merged into the base model as a checkpoint for tools that read no adapters.
// Each action is the engine's (src/engine/engine.ts); this view reads its fields and says what
// happened in its status line. Which of its controls are enabled is the page's state's to say
// (page-state.ts).
import type * as Comlink from 'comlink';
import { zipSync } from 'fflate';
import {
  MAX_ADAPTER_CONFIG_BYTES,
  MAX_ADAPTER_WEIGHTS_BYTES,
  readAdapterZip,
  type AdapterFiles,
} from '../formats/adapter-zip';
import { AdapterError } from '../formats/peft';
import type { EngineApi } from '../worker/engine.worker';

/** Where Chrome lets a page write a folder the user picks (the File System Access API). */
type PickDirectory = (o: { id?: string; mode: 'readwrite' }) => Promise<FileSystemDirectoryHandle>;

/** What the view needs of the page. */
export interface AdapterHost {
  engine: Comlink.Remote<EngineApi>;
  /** Wraps a callback for the engine's worker (Comlink.proxy). */
  proxy<F extends (...a: never[]) => unknown>(f: F): F;
  /** The Hub endpoint and the token saved for it. */
  hub(): Promise<{ endpoint: string; token: string | null }>;
  /** Runs an action with its button disabled meanwhile, its error shown. */
  act(button: HTMLButtonElement, f: () => Promise<void>): Promise<void>;
  showError(e: unknown): void;
  /** An adapter was loaded (files or a Hub repo) in place of the one before. */
  adapterLoaded(): void;
}

export class AdapterView {
  private readonly status = document.getElementById('adapter-status')!;

  constructor(private readonly host: AdapterHost) {
    const on = (id: string, f: () => Promise<void>) => {
      const button = this.el<HTMLButtonElement>(id);
      button.addEventListener('click', () => void host.act(button, f));
    };
    on('save-adapter', () => this.save());
    this.el('load-adapter').addEventListener('change', () => void this.loadFiles().catch(host.showError));
    on('load-hub-adapter', () => this.loadFromHub());
    on('push-adapter', () => this.push());
    on('export-merged', () => this.exportMerged());
  }

  private el<T extends HTMLElement = HTMLInputElement>(id: string): T {
    return document.getElementById(id) as T;
  }

  private async save(): Promise<void> {
    const { name, files } = await this.host.engine.exportAdapter();
    const zip = zipSync(files, { level: 0 });
    const a = document.createElement('a');
    a.href = URL.createObjectURL(new Blob([zip as BlobPart], { type: 'application/zip' }));
    a.download = `${name}.zip`;
    a.click();
    setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
    this.status.textContent = `Saved ${name}.zip (adapter_config.json, adapter_model.safetensors).`;
  }

  private async loadFiles(): Promise<void> {
    const chosen = [...(this.el('load-adapter').files ?? [])];
    // sizes are checked before a file is read; a zip's entries before they are inflated (adapter-zip.ts)
    const zip = chosen.find((f) => f.name.toLowerCase().endsWith('.zip'));
    let files: AdapterFiles;
    if (zip) {
      if (zip.size > MAX_ADAPTER_WEIGHTS_BYTES) {
        throw new AdapterError(`${zip.name} is ${zip.size} bytes: too large to be an adapter zip`);
      }
      files = readAdapterZip(new Uint8Array(await zip.arrayBuffer()), zip.name);
    } else {
      const pick = async (want: string, max: number) => {
        const f = chosen.find((x) => x.name === want);
        if (!f) {
          throw new AdapterError(
            'an adapter is adapter_config.json and adapter_model.safetensors: choose both, or a zip holding them',
          );
        }
        if (f.size > max) {
          throw new AdapterError(`${want} is ${f.size} bytes, over the ${max} bytes it may take: it is not an adapter`);
        }
        return new Uint8Array(await f.arrayBuffer());
      };
      const config = await pick('adapter_config.json', MAX_ADAPTER_CONFIG_BYTES);
      const weights = await pick('adapter_model.safetensors', MAX_ADAPTER_WEIGHTS_BYTES);
      files = { config: new TextDecoder().decode(config), weights };
    }
    await this.host.engine.importAdapter(files.config, files.weights);
    this.host.adapterLoaded();
    this.status.textContent = `Loaded the adapter from ${chosen.map((f) => f.name).join(', ')}.`;
    this.el('load-adapter').value = '';
  }

  /** A PEFT adapter from a Hub repo (the endpoint and token of the model's Hub), in place of the current one. */
  private async loadFromHub(): Promise<void> {
    const repo = this.el('adapter-repo').value.trim();
    const { commit } = await this.host.engine.loadAdapterFromHub(repo, await this.host.hub());
    this.host.adapterLoaded();
    this.status.textContent = `Loaded the adapter ${repo} from the Hub (commit ${commit.slice(0, 7)}).`;
  }

  /** The adapter, its files and its model card, to the user's own repo in one commit. */
  private async push(): Promise<void> {
    const repo = this.el('push-repo').value.trim();
    this.status.textContent = `Pushing to ${repo}…`;
    const r = await this.host.engine
      .pushAdapter(repo, { ...(await this.host.hub()), private: this.el('push-private').checked })
      .finally(() => (this.status.textContent = ''));
    const link = document.createElement('a');
    link.href = r.url;
    link.textContent = repo;
    link.rel = 'noopener';
    const how = r.created ? 'made the repo and ' : '';
    this.status.replaceChildren(
      `Pushed: ${how}committed adapter_config.json, adapter_model.safetensors and README.md to `,
      link,
      ` (commit ${r.commit.slice(0, 7)}).`,
    );
  }

  /**
   * The merged model, file by file: into a folder the user picks where the browser offers one
   * (shards are GBs, written straight to disk), else as downloads one after another.
   */
  private async exportMerged(): Promise<void> {
    const pick = (window as unknown as { showDirectoryPicker?: PickDirectory }).showDirectoryPicker;
    const folder = pick ? await pick({ id: 'merged-model', mode: 'readwrite' }) : null;
    const status = this.status;
    status.textContent = 'Merging…';
    const r = await this.host.engine
      .exportMerged(
        this.host.proxy(async (f: { name: string; bytes: Uint8Array }) => {
          if (folder) {
            const w = await (await folder.getFileHandle(f.name, { create: true })).createWritable();
            await w.write(f.bytes as BufferSource);
            await w.close();
          } else {
            const a = document.createElement('a');
            a.href = URL.createObjectURL(new Blob([f.bytes as BlobPart]));
            a.download = f.name;
            a.click();
            setTimeout(() => URL.revokeObjectURL(a.href), 60_000);
          }
        }),
        this.host.proxy((done: number, total: number) => {
          status.textContent = `Merging: ${done} of ${total} tensors…`;
        }),
      )
      .catch((e: unknown) => {
        status.textContent = '';
        throw e;
      });
    // an older export's shards left in the same folder would load beside these: say so
    const stale: string[] = [];
    if (folder)
      for await (const name of (folder as unknown as { keys(): AsyncIterable<string> }).keys())
        if (/\.safetensors$|^model\.safetensors\.index\.json$/.test(name) && !r.files.includes(name)) stale.push(name);
    status.textContent =
      `Exported the merged model${folder ? ` into ${folder.name}` : ''}: ${r.files.join(', ')} ` +
      `(${r.merged} weights with the adapter folded in, ${r.dtype}).` +
      (stale.length
        ? ` The folder also holds ${stale.join(', ')} from before: delete them, or tools will read them too.`
        : '');
  }
}
