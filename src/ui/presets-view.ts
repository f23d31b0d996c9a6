// The preset models as a table in the Model section: each with its size, what it stores and what
// training it takes at the page's max length, rank and targets, from the config.json fields the
// preset carries — before anything is fetched. Picking one fills the model field and checks it
// against the Hub (its real config.json, and this device's limits).
import { estimateStoreBytes, estimateTrainingMemory, formatBytes, parameterCount } from '../model/estimate';
import { PRESETS, type Preset } from '../model/presets';
import { parseModelConfig } from '../model/registry';

export interface PresetSettings {
  max_length: number;
  r: number;
  targets: string[] | 'all-linear';
  load_in_4bit: boolean;
}

/** "0.6B", "268M": parameters as model cards give them. */
function formatParams(n: number): string {
  return n >= 1e9 ? `${(n / 1e9).toFixed(2)}B` : `${Math.round(n / 1e6)}M`;
}

function presetRow(p: Preset, s: PresetSettings, pick: (id: string) => void): HTMLTableRowElement {
  const c = parseModelConfig(p.config, `preset ${p.id}`);
  const targets = s.targets === 'all-linear' ? c.linearModules : s.targets.filter((t) => c.linearModules.includes(t));
  const m = estimateTrainingMemory(c, {
    max_length: s.max_length,
    batch: 1,
    r: s.r,
    targets,
    load_in_4bit: s.load_in_4bit,
  });
  const tr = document.createElement('tr');
  const name = document.createElement('td');
  const button = document.createElement('button');
  button.type = 'button';
  button.textContent = p.id;
  button.addEventListener('click', () => pick(p.id));
  const note = document.createElement('div');
  note.className = 'hint';
  note.textContent = p.gated ? `${p.note} · gated: accept its license on the Hub, then add a token below` : p.note;
  name.append(button, note);
  const cell = (text: string) => {
    const td = document.createElement('td');
    td.textContent = text;
    return td;
  };
  tr.append(
    name,
    cell(formatParams(parameterCount(c))),
    cell(formatBytes(estimateStoreBytes(c, s.load_in_4bit))),
    cell(`about ${formatBytes(m.total)}`),
  );
  tr.dataset.preset = p.id;
  return tr;
}

/**
 * Fills `table` with the presets, estimated at the page's settings. The same settings leave it as
 * it is: a field's change event also fires on blur, and a table rebuilt then would swallow the click
 * that moved the focus to one of its buttons.
 */
export function showPresets(table: HTMLTableElement, s: PresetSettings, pick: (id: string) => void): void {
  const key = JSON.stringify(s);
  if (table.dataset.settings === key) return;
  table.dataset.settings = key;
  const head = document.createElement('tr');
  for (const h of ['Model', 'Parameters', 'Stored', `GPU to train (${s.max_length} tokens, r ${s.r})`]) {
    const th = document.createElement('th');
    th.textContent = h;
    head.append(th);
  }
  table.replaceChildren(head, ...PRESETS.map((p) => presetRow(p, s, pick)));
}
