// The stored base model with a LoRA adapter folded in, written as a transformers checkpoint
// (config.json, the tokenizer's files, safetensors shards with model.safetensors.index.json) for
// llama.cpp's converter, vLLM and the like, which read no adapters. PEFT's merge_and_unload
// adds scale · B A to each adapted weight; here that is done on the CPU, tensor by tensor:
//   W' [out, in] = W + scale · B [out, r] · A [r, in]      scale = alpha / r (alpha / √r: rsLoRA)
// W is what the model trained against: the stored 16-bit weight, or the stored NF4 weight
// dequantized (a model loaded in 4 bits keeps no 16-bit original in this browser). The sum is
// rounded once to the checkpoint's 16-bit dtype; every other tensor is copied as stored. At most
// a shard being built, its serialized copy and one f32 weight are held at once.
import { parseAdapterConfig, type LoraConfig } from '../formats/peft';
import { readSafetensorsSync, writeSafetensors, type TensorToWrite } from '../formats/safetensors';
import { halfBitsToFloat, packHalf, type HalfDtype } from '../quant/half';
import { dequantizeNF4 } from '../quant/nf4';
import type { Manifest, ModelStore, StoredTensor } from './model-store';

/** transformers' save_pretrained splits at 5 GB; a tab holds a shard in memory, so 2 GiB here. */
export const MERGED_SHARD_BYTES = 2 * 2 ** 30;

export interface MergedFile {
  name: string;
  bytes: Uint8Array;
}

export interface MergeOptions {
  /** Receives each file as it is made (a shard at a time); awaited before the next is built. */
  onFile: (f: MergedFile) => Promise<void>;
  onProgress?: (tensorsDone: number, tensors: number) => void;
  maxShardBytes?: number;
}

/** The adapter's A and B by module path, with its scale. */
function adapterDeltas(files: { config: string; weights: Uint8Array }) {
  const config: LoraConfig = parseAdapterConfig(files.config);
  const scale = config.use_rslora ? config.lora_alpha / Math.sqrt(config.r) : config.lora_alpha / config.r;
  const byModule = new Map<string, { A?: Float32Array; B?: Float32Array }>();
  for (const { info, data } of readSafetensorsSync(files.weights)) {
    const m = info.name.match(/^base_model\.model\.(.+)\.lora_([AB])\.weight$/);
    if (!m || info.dtype !== 'F32') throw new Error(`adapter_model.safetensors: unexpected tensor ${info.name}`);
    const values = new Float32Array(data.slice().buffer);
    const entry = byModule.get(m[1]) ?? {};
    entry[m[2] as 'A' | 'B'] = values;
    byModule.set(m[1], entry);
  }
  return { r: config.r, scale, byModule };
}

export async function exportMerged(
  store: Pick<ModelStore, 'get' | 'getMany'>,
  manifest: Manifest,
  adapter: { config: string; weights: Uint8Array },
  o: MergeOptions,
): Promise<{ files: string[]; merged: number; dtype: HalfDtype }> {
  const { r, scale, byModule } = adapterDeltas(adapter);
  const tensors = Object.values(manifest.tensors);
  // the checkpoint's 16-bit dtype: its own tensors' (embeddings, norms), which a merged weight takes too
  const dtype: HalfDtype = tensors.find((t) => t.kind === 'half')?.dtype ?? 'BF16';
  const size = (t: StoredTensor) => t.shape.reduce((a, b) => a * b, 1) * 2;

  // shards planned up front, as transformers plans them: in order, a new shard when the next tensor would overflow
  const max = o.maxShardBytes ?? MERGED_SHARD_BYTES;
  const shards: StoredTensor[][] = [[]];
  let bytes = 0;
  for (const t of tensors) {
    if (bytes > 0 && bytes + size(t) > max) {
      shards.push([]);
      bytes = 0;
    }
    shards[shards.length - 1].push(t);
    bytes += size(t);
  }
  const names =
    shards.length === 1
      ? ['model.safetensors']
      : shards.map((_, i) => `model-${pad5(i + 1)}-of-${pad5(shards.length)}.safetensors`);

  // the adapter checked against the model before a file is written: a folder half-written with
  // an adapter for another model would be worse than none
  for (const [path, d] of byModule) {
    const t = manifest.tensors[`${path}.weight`];
    if (t?.shape.length !== 2)
      throw new Error(`the adapter adapts ${path}, which this model does not have: it was made for another model`);
    if (!d.A || !d.B) throw new Error(`the adapter lacks lora_A or lora_B of ${path}`);
    if (d.A.length !== r * t.shape[1] || d.B.length !== t.shape[0] * r)
      throw new Error(`the adapter's A and B of ${path} do not fit its [${t.shape}] weight with r ${r}`);
  }

  const written: string[] = [];
  const emit = async (name: string, b: Uint8Array) => {
    await o.onFile({ name, bytes: b });
    written.push(name);
  };
  // config.json as a dense checkpoint's: no quantization_config (the weights are 16-bit again)
  const configText = await store.get<string>('file:config.json');
  if (typeof configText !== 'string') throw new Error('the stored model has no config.json: download it again');
  const config = JSON.parse(configText) as Record<string, unknown>;
  delete config.quantization_config;
  const torchDtype = dtype === 'BF16' ? 'bfloat16' : 'float16';
  if ('dtype' in config) config.dtype = torchDtype;
  else config.torch_dtype = torchDtype;
  await emit('config.json', new TextEncoder().encode(`${JSON.stringify(config, null, 2)}\n`));
  for (const f of manifest.files) {
    if (f.kind !== 'text' || f.path === 'config.json' || f.path === 'model.safetensors.index.json') continue;
    const text = await store.get<string>(`file:${f.path}`);
    if (typeof text === 'string') await emit(f.path, new TextEncoder().encode(text));
  }

  let done = 0,
    merged = 0;
  const weightMap: Record<string, string> = {};
  for (const [s, list] of shards.entries()) {
    const out: TensorToWrite[] = [];
    for (const t of list) {
      const path = t.name.replace(/\.weight$/, '');
      const delta = byModule.get(path);
      let data: Uint8Array;
      if (t.kind === 'half' && !delta) data = await concat(store, t.parts);
      else {
        const w = t.kind === 'nf4' ? await dequantized(store, t) : halfToFloat(await concat(store, t.parts), t.dtype!);
        if (delta) {
          addDelta(w, t.shape[0], t.shape[1], delta.A!, delta.B!, r, scale);
          merged++;
        }
        data = new Uint8Array(packHalf(w, dtype).words.buffer, 0, w.length * 2);
      }
      out.push({ name: t.name, dtype: t.kind === 'half' && !delta ? t.dtype! : dtype, shape: t.shape, data });
      weightMap[t.name] = names[s];
      o.onProgress?.(++done, tensors.length);
    }
    await emit(names[s], writeSafetensors(out, { format: 'pt' }));
  }
  if (shards.length > 1) {
    const total = tensors.reduce((n, t) => n + size(t), 0);
    const index = { metadata: { total_size: total }, weight_map: weightMap };
    await emit('model.safetensors.index.json', new TextEncoder().encode(`${JSON.stringify(index, null, 2)}\n`));
  }
  return { files: written, merged, dtype };
}

/** W += scale · B A, each row summed in float64 before it is written back. */
function addDelta(
  w: Float32Array,
  out: number,
  inF: number,
  A: Float32Array,
  B: Float32Array,
  r: number,
  scale: number,
): void {
  if (A.length !== r * inF || B.length !== out * r)
    throw new Error(`the adapter's A [${A.length}] and B [${B.length}] do not fit a [${out}, ${inF}] weight`);
  const row = new Float64Array(inF);
  for (let o = 0; o < out; o++) {
    row.fill(0);
    for (let j = 0; j < r; j++) {
      const c = scale * B[o * r + j];
      if (c === 0) continue;
      const a = j * inF;
      for (let i = 0; i < inF; i++) row[i] += c * A[a + i];
    }
    const at = o * inF;
    for (let i = 0; i < inF; i++) w[at + i] += row[i];
  }
}

async function concat(store: Pick<ModelStore, 'getMany'>, keys: string[]): Promise<Uint8Array> {
  const parts = await store.getMany<Uint8Array>(keys);
  const n = parts.reduce((k, p) => k + (p?.length ?? 0), 0);
  const out = new Uint8Array(n);
  let at = 0;
  for (const [i, p] of parts.entries()) {
    if (!p) throw new Error(`the store lacks ${keys[i]}: it is damaged; delete the model and download it again`);
    out.set(p, at);
    at += p.length;
  }
  return out;
}

async function dequantized(store: Pick<ModelStore, 'getMany'>, t: StoredTensor): Promise<Float32Array> {
  const length = t.shape[0] * t.shape[1];
  const packed = (await concat(store, t.parts)).subarray(0, Math.ceil(length / 2));
  const absmaxBytes = await concat(store, t.absmaxParts!);
  const absmax = new Float32Array(absmaxBytes.buffer, absmaxBytes.byteOffset, Math.ceil(length / t.blocksize!));
  return dequantizeNF4({ packed, absmax, blocksize: t.blocksize!, length });
}

function halfToFloat(bytes: Uint8Array, dtype: HalfDtype): Float32Array {
  const bits = new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.length / 2);
  const out = new Float32Array(bits.length);
  if (dtype === 'BF16') {
    const u = new Uint32Array(out.buffer);
    for (let i = 0; i < bits.length; i++) u[i] = bits[i] << 16;
  } else for (let i = 0; i < bits.length; i++) out[i] = halfBitsToFloat(bits[i], 'F16');
  return out;
}

const pad5 = (n: number) => String(n).padStart(5, '0');
