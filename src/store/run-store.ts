// Training runs kept in IndexedDB, so that a run survives a reload, a crash or a closed tab:
// each run's record (its settings, its model, its log so far, the checkpoints it keeps), the
// data it trains on (stored once, so a resume needs neither the file nor the network), and its
// checkpoints (src/train/checkpoint.ts's files). A checkpoint and the record that lists it are
// written in one transaction, as are a checkpoint's removal and the record without it: whenever
// the tab dies, what a record lists is there.
import { createStore, get, promisifyRequest, type UseStore } from 'idb-keyval';
import type { Block } from '../data/sft';
import type { LoraSettings } from '../engine/session';
import type { CheckpointStore, RunSettings } from '../engine/training-run';
import type { CheckpointFiles } from '../train/checkpoint';

export type RunState = 'running' | 'paused' | 'stopped' | 'finished' | 'failed';

export interface RunRecord {
  version: 1;
  id: string;
  createdAt: number;
  updatedAt: number;
  /** The stored model it trains (src/store/model-store.ts's key) and its Hub id. */
  modelKey: string;
  modelId: string;
  /** Where the data came from, for people: a Hub id or a file's name. */
  data: string;
  /** What the data came to when it was prepared (absent in runs recorded before it was kept). */
  dataSummary?: RunDataSummary;
  /** The adapter the run trained on from, in words; absent for a fresh one. */
  startedFrom?: string;
  lora: LoraSettings;
  settings: RunSettings;
  maxSteps: number;
  /** The last optimizer step logged. */
  step: number;
  state: RunState;
  /** Why it failed, in words. */
  error?: string;
  /** Global steps of the checkpoints kept, oldest first. */
  checkpoints: number[];
  /** transformers' log_history as it stands: the chart of a reopened run. */
  history: Record<string, number>[];
}

/** A run's data in numbers: rows read, examples, tokens trained on, blocks, evaluation blocks. */
export interface RunDataSummary {
  files: string[];
  rows: number;
  examples: number;
  /** Tokens after truncation, and those with a loss target. */
  tokens: number;
  targets: number;
  blocks: number;
  evalBlocks: number | null;
}

/** Blocks laid end to end in typed arrays: a data set of 10k blocks is one value, not 30k arrays. */
export interface PackedBlocks {
  lengths: Uint32Array;
  input_ids: Int32Array;
  labels: Int32Array;
  position_ids: Int32Array;
}

export function packBlocks(blocks: Block[]): PackedBlocks {
  const n = blocks.reduce((k, b) => k + b.input_ids.length, 0);
  const p: PackedBlocks = {
    lengths: Uint32Array.from(blocks, (b) => b.input_ids.length),
    input_ids: new Int32Array(n),
    labels: new Int32Array(n),
    position_ids: new Int32Array(n),
  };
  let at = 0;
  for (const b of blocks) {
    p.input_ids.set(b.input_ids, at);
    p.labels.set(b.labels, at);
    p.position_ids.set(b.position_ids, at);
    at += b.input_ids.length;
  }
  return p;
}

export function unpackBlocks(p: PackedBlocks): Block[] {
  const out: Block[] = [];
  let at = 0;
  for (const len of p.lengths) {
    const part = (a: Int32Array) => Array.from(a.subarray(at, at + len));
    out.push({ input_ids: part(p.input_ids), labels: part(p.labels), position_ids: part(p.position_ids) });
    at += len;
  }
  return out;
}

/**
 * What a run trains on, kept once: its blocks, and the adapter it started from when that was
 * not a fresh one (a loaded PEFT adapter, or one trained before): a run interrupted before its
 * first checkpoint starts again from it.
 */
export interface RunData {
  train: Block[];
  eval: Block[] | null;
  adapter?: { config: string; weights: Uint8Array };
}

type StoredData = { train: PackedBlocks; eval: PackedBlocks | null; adapter?: RunData['adapter'] };

let db: UseStore | null = null;
/** Created on first use, so importing this module touches no database. */
const runsDb = () => (db ??= createStore('qlora-runs', 'runs'));

// records apart from the bulk, so that listing the runs reads no data and no checkpoint
const recordKey = (id: string) => `record:${id}`;
const dataKey = (id: string) => `run:${id}:data`;
const checkpointKey = (id: string, step: number) => `run:${id}:checkpoint:${step}`;

export class RunStoreError extends Error {
  override name = 'RunStoreError';
}

/** One run's record, data and checkpoints: the CheckpointStore its training run saves into. */
export class RunStore implements CheckpointStore {
  private constructor(public record: RunRecord) {}

  /** A new run: its record and its data in one transaction. */
  static async create(
    r: Omit<RunRecord, 'version' | 'id' | 'createdAt' | 'updatedAt' | 'step' | 'checkpoints' | 'history' | 'state'>,
    data: RunData,
  ): Promise<RunStore> {
    const now = Date.now();
    // sortable by date, unique across tabs: 20261202T013512-k3x9qa
    const stamp = new Date(now).toISOString().replace(/[-:.]/g, '').slice(0, 15);
    const id = `${stamp}-${Math.random().toString(36).slice(2, 8)}`;
    const record: RunRecord = {
      ...r,
      version: 1,
      id,
      createdAt: now,
      updatedAt: now,
      step: 0,
      state: 'running',
      checkpoints: [],
      history: [],
    };
    const packed: StoredData = {
      train: packBlocks(data.train),
      eval: data.eval ? packBlocks(data.eval) : null,
      adapter: data.adapter,
    };
    await write((s) => {
      s.put(packed, dataKey(id));
      s.put(record, recordKey(id));
    });
    return new RunStore(record);
  }

  static async open(id: string): Promise<RunStore> {
    const record = await get<RunRecord>(recordKey(id), runsDb());
    if (!record) throw new RunStoreError(`there is no run ${id} in this browser's storage`);
    return new RunStore(record);
  }

  /** Every run kept, newest first. */
  static async list(): Promise<RunRecord[]> {
    const all = await runsDb()('readonly', (s) =>
      promisifyRequest(s.getAll(IDBKeyRange.bound('record:', 'record:\uffff'))),
    );
    return (all as RunRecord[]).filter((r) => r?.version === 1).sort((a, b) => b.createdAt - a.createdAt);
  }

  /** Removes a run: its record, data and checkpoints in one transaction. */
  static async delete(id: string): Promise<void> {
    await write((s) => {
      s.delete(recordKey(id));
      s.delete(IDBKeyRange.bound(`run:${id}:`, `run:${id}:\uffff`));
    });
  }

  get id(): string {
    return this.record.id;
  }

  async data(): Promise<RunData> {
    const p = await get<StoredData>(dataKey(this.id), runsDb());
    if (!p) throw new RunStoreError(`run ${this.id} has lost its data: delete it and start a new run`);
    return { train: unpackBlocks(p.train), eval: p.eval ? unpackBlocks(p.eval) : null, adapter: p.adapter };
  }

  async checkpoint(step: number): Promise<CheckpointFiles> {
    const files = await get<CheckpointFiles>(checkpointKey(this.id, step), runsDb());
    if (!files) throw new RunStoreError(`run ${this.id} lists checkpoint ${step}, and the store lacks it`);
    return files;
  }

  /** The record with `patch` applied, written. */
  async update(patch: Partial<RunRecord>): Promise<void> {
    this.record = { ...this.record, ...patch, updatedAt: Date.now() };
    const r = this.record;
    await write((s) => {
      s.put(r, recordKey(r.id));
    });
  }

  async save(step: number, files: CheckpointFiles): Promise<void> {
    const checkpoints = [...this.record.checkpoints.filter((s) => s !== step), step].sort((a, b) => a - b);
    const record: RunRecord = { ...this.record, checkpoints, updatedAt: Date.now() };
    testHook('checkpoint-writing');
    await write((s) => {
      s.put(files, checkpointKey(this.id, step));
      s.put(record, recordKey(this.id));
    });
    this.record = record;
  }

  async steps(): Promise<number[]> {
    return [...this.record.checkpoints];
  }

  async remove(step: number): Promise<void> {
    const record: RunRecord = { ...this.record, checkpoints: this.record.checkpoints.filter((s) => s !== step) };
    await write((s) => {
      s.delete(checkpointKey(this.id, step));
      s.put(record, recordKey(this.id));
    });
    this.record = record;
  }
}

/** Puts and deletes in one read-write transaction, resolved when it commits. */
function write(f: (s: IDBObjectStore) => void): Promise<void> {
  return runsDb()('readwrite', (s) => {
    f(s);
    return promisifyRequest(s.transaction);
  });
}

/**
 * The test build tells the end-to-end tests when a checkpoint write begins (a BroadcastChannel
 * of the page's origin), so that one can reload the page in the middle of it.
 */
function testHook(what: string): void {
  if (import.meta.env?.MODE !== 'test' || typeof BroadcastChannel === 'undefined') return;
  const channel = new BroadcastChannel('qlora-test');
  channel.postMessage(what);
  channel.close();
}
