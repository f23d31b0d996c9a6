// Loading a checkpoint of any family (config.json + safetensors, sharded or not) onto the GPU:
// linear weights are quantized to NF4 on the GPU as each tensor arrives (or kept 16-bit with
// load_in_4bit false), embeddings, norms, biases and the head stay 16-bit. Shards are streamed
// tensor by tensor; no shard is ever held whole. The family names the tensors and assembles them.
import type { Gpu, Tensor } from '../gpu/runtime';
import {
  checkShardAgainstIndex,
  nameOf,
  parseShardIndex,
  readSafetensors,
  toFloat32,
  type SafetensorsHeader,
  type TensorInfo,
} from '../formats/safetensors';
import { halfBuffers, halfVector, releaseHalf, uploadHalf, type HalfMatrix } from '../ops/half-matrix';
import { quantizeNF4Host, uploadNF4, type NF4Weight } from '../ops/nf4';
import { Bnb4bitCollector, bnbPartOf } from './bnb';
import { packHalf, type HalfDtype } from '../quant/half';
import { dequantizeAbsmax, quantizeAbsmax } from '../quant/nf4';
import type { ModelConfig } from './config';
import { familyOf, parseModelConfig } from './registry';
import type { BaseWeights, CausalLM } from './causal-lm';
import { ropeInverseFrequencies, type FamilyName } from './config';
import type { BuildNetwork, Family } from './family';
import { FalconModel, type FalconWeights } from './falcon/layer';
import { GemmaModel, type GemmaWeights } from './gemma/layer';
import { LlamaModel, type LlamaWeights } from './llama/layer';
import { ropeTables } from '../ops/rope';
import { LoraLinear, type FrozenWeight } from './lora-linear';

/** Where checkpoint files come from: a local folder, the Hub, the store, or memory in tests. */
export interface CheckpointFiles {
  /** A small text file (config.json, the shard index), or null when it does not exist. */
  text(name: string): Promise<string | null>;
  /** A large file as a stream of chunks, with its size when known. */
  stream(name: string): Promise<{ chunks: AsyncIterable<Uint8Array> | ReadableStream<Uint8Array>; size?: number }>;
}

export interface LoadSettings {
  load_in_4bit: boolean;
  /** NF4 block size (bitsandbytes' default 64). */
  blocksize?: number;
  /**
   * bitsandbytes' double quantization (bnb_4bit_use_double_quant): each block's absmax goes
   * through its 8-bit dynamic code, so the weights dequantize to exactly bitsandbytes' values.
   * The kernels read f32 absmax, so the memory it saves in bitsandbytes is not saved here.
   */
  nested?: boolean;
  /**
   * The most bytes one frozen tensor is staged in: 16-bit matrices split into row blocks of at
   * most this, and f32 weights go to the quantizer in bands of at most this. Default: the
   * device's binding limit; lower it to exercise the split on a device that does not need it.
   */
  maxBlockBytes?: number;
}

export class CheckpointError extends Error {
  override name = 'CheckpointError';
}

/** Tensors some checkpoints carry that the network recomputes. */
const IGNORED = /(^|\.)rotary_emb\.inv_freq$/;

export interface LoadedModel {
  config: ModelConfig;
  weights: BaseWeights;
  /** Every frozen linear layer by module path, for attaching LoRA. */
  linears: LoraLinear[];
}

export async function loadCheckpoint(
  gpu: Gpu,
  files: CheckpointFiles,
  s: LoadSettings,
  onTensor?: (name: string) => void,
): Promise<LoadedModel> {
  const configText = await files.text('config.json');
  if (configText === null) throw new CheckpointError('config.json is missing: this is not a transformers checkpoint');
  const c = parseConfigText(configText);
  const indexText = await files.text('model.safetensors.index.json');
  const index = indexText ? parseShardIndex(indexText) : null;
  const shards = index ? [...index.shards.keys()] : ['model.safetensors'];
  const tensors = new GpuTensors(gpu, c, s);
  try {
    for (const shard of shards) {
      const { chunks, size } = await files.stream(shard);
      // the whole header is checked (against the index and the config) before any tensor's bytes are read
      const onHeader = (h: SafetensorsHeader) => {
        if (index) checkShardAgainstIndex(index, shard, h);
        tensors.checkHeader(h, shard);
      };
      for await (const { info, data } of readSafetensors(chunks, { fileSize: size, file: shard, onHeader })) {
        await tensors.add(info, data, shard);
        onTensor?.(info.name);
      }
    }
    return tensors.assemble();
  } catch (e) {
    tensors.release();
    throw e;
  }
}

export function parseConfigText(text: string): ModelConfig {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new CheckpointError(`config.json is not valid JSON (${(e as Error).message}): the checkpoint is corrupt`);
  }
  return parseModelConfig(json);
}

/**
 * A checkpoint's tensors on the GPU as they arrive, checked against the config: linear weights
 * NF4 (quantized here) or 16-bit, the rest 16-bit. `assemble` builds the network once all are in.
 */
export class GpuTensors {
  private halves = new Map<string, HalfMatrix>();
  private linear = new Map<string, FrozenWeight>();
  private expected: Map<string, number[]>;
  private family: Family;

  /** The parts of pre-quantized modules not yet complete (bitsandbytes 4-bit checkpoints). */
  private bnb: Bnb4bitCollector | null;

  constructor(
    readonly gpu: Gpu,
    readonly config: ModelConfig,
    readonly settings: LoadSettings,
  ) {
    this.family = familyOf(config);
    this.expected = this.family.tensors(config);
    const pre = config.prequantized;
    if (pre && !settings.load_in_4bit) {
      throw new CheckpointError(
        'this checkpoint is bitsandbytes 4-bit already: it loads as NF4 (load_in_4bit true), or use its 16-bit ' +
          'original',
      );
    }
    this.bnb = pre ? new Bnb4bitCollector(pre.doubleQuant, (w) => this.expected.get(w)) : null;
  }

  /**
   * A linear module a pre-quantized checkpoint left 16-bit (llm_int8_skip_modules), matched as
   * transformers 5 matches them: the path itself or a regex full-matching it, a prefix followed by
   * a dot, or the path's last components.
   */
  private skipped(weight: string): boolean {
    const path = weight.replace(/\.weight$/, '');
    return (this.config.prequantized?.skipModules ?? []).some((k) => {
      if (path === k || path.includes(`${k}.`) || path.endsWith(`.${k}`)) return true;
      try {
        return new RegExp(`^(?:${k})$`).test(path);
      } catch {
        return false;
      }
    });
  }

  /** A frozen linear weight (one LoRA may adapt), by the module names of the architecture. */
  private isLinear(name: string): boolean {
    return this.config.linearModules.some((m) => name.endsWith(`.${m}.weight`));
  }

  /** Pre-quantized modules with parts still to come: a resumable point has none. */
  get pendingParts(): number {
    return this.bnb?.incomplete.length ?? 0;
  }

  /** Whether a tensor of the checkpoint is one the network uses (false: to skip). */
  /**
   * A checkpoint tensor under the name the family reads it by (a multimodal checkpoint's older
   * names), or null for one the language model does not use.
   */
  private renamed<T extends Pick<TensorInfo, 'name'>>(info: T): T | null {
    const name = this.family.rename ? this.family.rename(info.name, this.config) : info.name;
    return name === null ? null : name === info.name ? info : { ...info, name };
  }

  /** Whether a tensor of the checkpoint (under the family's name) is one the network uses (false: to skip). */
  check(info: Pick<TensorInfo, 'name' | 'shape' | 'dtype'>, file: string): boolean {
    if (IGNORED.test(info.name)) return false;
    // a tied head is the embedding: transformers ties it after loading, so a stored copy is not read
    if (info.name === 'lm_head.weight' && this.config.tieEmbeddings) return false;
    if (this.bnb && bnbPartOf(info, this.isLinear(info.name))) return true; // its shape is checked once whole
    const shape = this.expected.get(info.name);
    if (!shape) {
      throw new CheckpointError(
        `${file}: unexpected tensor ${nameOf(info.name)} for a ${this.config.modelType} ` +
          `model as config.json describes it`,
      );
    }
    if (info.shape.join() !== shape.join()) {
      throw new CheckpointError(
        `${file}: ${nameOf(info.name)} is [${info.shape}], config.json implies [${shape}]: ` + `the two disagree`,
      );
    }
    return true;
  }

  /**
   * Every tensor of a shard's header against the config, before any of its bytes are read: a
   * header that declares a giant or misshapen tensor is refused before that tensor is assembled.
   */
  checkHeader(h: SafetensorsHeader, file: string): void {
    for (const raw of h.tensors) {
      const t = this.renamed(raw);
      if (!t || !this.check(t, file)) continue;
      const weight = this.bnb && bnbPartOf(t, this.isLinear(t.name));
      // a pre-quantized weight's packed bytes: two 4-bit codes per byte of the [out, in] matrix
      const shape = weight === t.name ? this.expected.get(weight) : undefined;
      if (shape) {
        const bytes = Math.ceil((shape[0] * shape[1]) / 2);
        const numel = t.shape.reduce((a, b) => a * b, 1);
        if (numel !== bytes) {
          throw new CheckpointError(
            `${file}: ${nameOf(t.name)} holds ${numel} packed bytes; ` + `[${shape}] in 4 bits needs ${bytes}`,
          );
        }
      } else if (weight && !this.expected.has(weight)) {
        throw new CheckpointError(
          `${file}: unexpected tensor ${nameOf(t.name)} for a ${this.config.modelType} ` +
            `model as config.json describes it`,
        );
      }
    }
  }

  /**
   * A raw checkpoint tensor: quantized to NF4 when it is a linear weight and load_in_4bit.
   * Returns the name of the network tensor it completed (a 4-bit module completes with its
   * last part), or null.
   */
  async add(raw: TensorInfo, data: Uint8Array, file: string): Promise<string | null> {
    const info = this.renamed(raw);
    if (!info || !this.check(info, file)) return null;
    const { gpu, settings: s } = this;
    const weight = this.bnb && bnbPartOf(info, this.isLinear(info.name));
    if (weight) {
      const whole = this.bnb!.add(weight, info, data, file);
      if (!whole) return null;
      this.addNF4(weight, uploadNF4(gpu, whole.q, whole.shape));
      return weight;
    }
    if (this.isLinear(info.name) && s.load_in_4bit && !this.skipped(info.name)) {
      const q = quantizeNF4Host(gpu, toFloat32(info.dtype, data), [info.shape[0], info.shape[1]], {
        blocksize: s.blocksize ?? 64,
        maxBytes: this.maxBlockBytes,
      });
      if (s.nested) gpu.write(q.absmax, dequantizeAbsmax(quantizeAbsmax(await gpu.read(q.absmax))));
      this.linear.set(info.name, { kind: 'nf4', w: q });
    } else {
      const { words, dtype } = toHalf(info, data);
      this.addHalf(info.name, uploadHalf(gpu, info.shape, dtype, words, this.maxBlockBytes));
    }
    return info.name;
  }

  /** An NF4 weight already quantized (from the store, or a pre-quantized checkpoint). */
  addNF4(name: string, w: NF4Weight): void {
    const shape = this.expected.get(name);
    if (!shape || shape.join() !== w.shape.join()) {
      releaseFrozen({ kind: 'nf4', w });
      throw new CheckpointError(
        `${name} is [${w.shape}] in 4 bits; the config implies ${shape ? `[${shape}]` : 'no such weight'}`,
      );
    }
    this.linear.set(name, { kind: 'nf4', w });
  }

  /** Where 16-bit matrices split, and f32 weights are quantized in bands. */
  get maxBlockBytes(): number {
    return this.settings.maxBlockBytes ?? this.gpu.maxBinding;
  }

  /** A 16-bit tensor already on the GPU. */
  addHalf(name: string, h: HalfMatrix): void {
    if (this.isLinear(name)) this.linear.set(name, { kind: 'half', w: h });
    else this.halves.set(name, h);
  }

  /** The tensors the config needs that are neither here nor in `elsewhere`. */
  missing(elsewhere: string[]): string[] {
    const have = new Set(elsewhere);
    return [...this.expected.keys()].filter((n) => !have.has(n) && !this.halves.has(n) && !this.linear.has(n));
  }

  /** The linear weights as stored: NF4, or 16-bit where load_in_4bit is false. */
  frozen(name: string): FrozenWeight | undefined {
    return this.linear.get(name);
  }

  half(name: string): HalfMatrix | undefined {
    return this.halves.get(name);
  }

  release(): void {
    for (const h of this.halves.values()) releaseHalf(h);
    for (const l of this.linear.values()) releaseFrozen(l);
    this.halves.clear();
    this.linear.clear();
  }

  assemble(): LoadedModel {
    const c = this.config;
    const { halves, linear } = this;
    if (this.bnb?.incomplete.length) {
      throw new CheckpointError(
        `the checkpoint lacks parts of ${this.bnb.incomplete.length} 4-bit module(s): ` +
          `${this.bnb.incomplete.slice(0, 3).join(', ')}`,
      );
    }
    const missing = [...this.expected.keys()].filter((n) => !halves.has(n) && !linear.has(n));
    if (missing.length) {
      throw new CheckpointError(
        `the checkpoint lacks ${missing.length} tensor(s) the config needs: ` +
          `${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', …' : ''}`,
      );
    }
    const lin = (path: string) => {
      const bias = halves.get(`${path}.bias`);
      return new LoraLinear(path, linear.get(`${path}.weight`)!, bias ? halfVector(bias) : null);
    };
    const parts = { vec: (n: string) => halfVector(halves.get(n)!), mat: (n: string) => halves.get(n)!, lin };
    return { config: c, ...this.family.assemble(c, parts) };
  }
}

/** The network for a loaded checkpoint, by its family. */
export function buildModel(gpu: Gpu, loaded: LoadedModel): CausalLM {
  const c = loaded.config;
  // config.json bounds the table (CONFIG_LIMITS); this device must also bind it whole
  const ropeBytes = c.maxPositions * (c.headDim / 2) * 4;
  if (ropeBytes > gpu.maxBinding) {
    throw new CheckpointError(
      `config.json's max_position_embeddings ${c.maxPositions} needs RoPE tables of ${ropeBytes} bytes each, ` +
        `over this device's ${gpu.maxBinding}-byte binding limit: lower max_position_embeddings in config.json`,
    );
  }
  const rope = ropeTables(gpu, ropeInverseFrequencies(c), c.maxPositions);
  const local = c.ropeLocal
    ? ropeTables(gpu, ropeInverseFrequencies({ ...c, rope: c.ropeLocal }), c.maxPositions)
    : null;
  return NETWORKS[c.family](gpu, c, loaded.weights, rope, local);
}

/** Each family's network (see BuildNetwork: apart from the registry, which the page's main thread reads). */
const NETWORKS: Record<FamilyName, BuildNetwork> = {
  llama: (gpu, c, w, rope, local) => new LlamaModel(gpu, c, w as LlamaWeights, rope, local),
  gemma: (gpu, c, w, rope, local) => new GemmaModel(gpu, c, w as GemmaWeights, rope, local),
  falcon: (gpu, c, w, rope) => new FalconModel(gpu, c, w as FalconWeights, rope),
};

/** 16-bit tensors go to the GPU as their bytes; F32 ones are rounded to BF16 first. */
function toHalf(info: TensorInfo, data: Uint8Array): { words: Uint32Array; dtype: HalfDtype } {
  const n = info.shape.reduce((a, b) => a * b, 1);
  let words: Uint32Array;
  let dtype: HalfDtype;
  if (info.dtype === 'BF16' || info.dtype === 'F16') {
    words = new Uint32Array(Math.ceil(n / 2));
    new Uint8Array(words.buffer).set(data);
    dtype = info.dtype;
  } else if (info.dtype === 'F32') {
    ({ words } = packHalf(toFloat32('F32', data), 'BF16'));
    dtype = 'BF16';
  } else {
    throw new CheckpointError(`${info.name} is ${info.dtype}; weights must be F32, F16 or BF16`);
  }
  return { words, dtype };
}

function releaseFrozen(f: FrozenWeight): void {
  const tensors: Tensor[] = f.kind === 'nf4' ? [f.w.packed, f.w.absmax] : halfBuffers(f.w);
  for (const t of tensors) t.release();
}
