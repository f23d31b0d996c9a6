// Loading a checkpoint (Llama family, Gemma 2 or Falcon) (config.json + safetensors, sharded or not) onto the GPU:
// linear weights are quantized to NF4 on the GPU as each tensor arrives (or kept 16-bit with
// load_in_4bit false), embeddings, norms, biases and the head stay 16-bit. Shards are
// streamed tensor by tensor; no shard is ever held whole.
import type { Gpu, Tensor } from '../gpu/runtime';
import {
  checkShardAgainstIndex, nameOf, parseShardIndex, readSafetensors, toFloat32, type SafetensorsHeader, type TensorInfo,
} from '../formats/safetensors';
import { halfBuffers, halfVector, releaseHalf, uploadHalf, type HalfMatrix } from '../ops/half-matrix';
import { quantizeNF4Host, uploadNF4, type NF4Weight } from '../ops/nf4';
import { Bnb4bitCollector, bnbPartOf } from './bnb';
import type { HalfVector } from '../ops/norm';
import { packHalf, type HalfDtype } from '../quant/half';
import { dequantizeAbsmax, quantizeAbsmax } from '../quant/nf4';
import { parseModelConfig, type ModelConfig } from './config';
import type { CausalLM } from './causal-lm';
import { ropeInverseFrequencies } from './config';
import { FalconModel, type FalconLayerWeights, type FalconWeights } from './falcon';
import { GemmaModel, type GemmaLayerWeights, type GemmaWeights } from './gemma';
import { LlamaModel, type LayerWeights, type LlamaWeights } from './llama';
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

/** The Llama layer's linear modules by checkpoint path, apart or fused (Phi-3). */
function llamaLinears(c: ModelConfig): Record<string, keyof LayerWeights> {
  return {
    ...(c.fused.qkv ? { 'self_attn.qkv_proj': 'qkv' } : { 'self_attn.q_proj': 'q', 'self_attn.k_proj': 'k', 'self_attn.v_proj': 'v' }),
    'self_attn.o_proj': 'o',
    ...(c.fused.gateUp ? { 'mlp.gate_up_proj': 'gateUp' } : { 'mlp.gate_proj': 'gate', 'mlp.up_proj': 'up' }),
    'mlp.down_proj': 'down',
  };
}
/** Tensors some checkpoints carry that the network recomputes. */
const IGNORED = /(^|\.)rotary_emb\.inv_freq$/;

export interface LoadedModel {
  config: ModelConfig;
  weights: LlamaWeights | GemmaWeights | FalconWeights;
  /** Every frozen linear layer by module path, for attaching LoRA. */
  linears: LoraLinear[];
}

export async function loadCheckpoint(gpu: Gpu, files: CheckpointFiles, s: LoadSettings, onTensor?: (name: string) => void): Promise<LoadedModel> {
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

  /** The parts of pre-quantized modules not yet complete (bitsandbytes 4-bit checkpoints). */
  private bnb: Bnb4bitCollector | null;

  constructor(readonly gpu: Gpu, readonly config: ModelConfig, readonly settings: LoadSettings) {
    this.expected = config.falcon ? falconShapes(config) : expectedShapes(config);
    const pre = config.prequantized;
    if (pre && !settings.load_in_4bit) {
      throw new CheckpointError('this checkpoint is bitsandbytes 4-bit already: it loads as NF4 (load_in_4bit true), or use its 16-bit original');
    }
    this.bnb = pre ? new Bnb4bitCollector(pre.doubleQuant, (w) => this.expected.get(w)) : null;
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
  check(info: Pick<TensorInfo, 'name' | 'shape' | 'dtype'>, file: string): boolean {
    if (IGNORED.test(info.name)) return false;
    // a tied head is the embedding: transformers ties it after loading, so a stored copy is not read
    if (info.name === 'lm_head.weight' && this.config.tieEmbeddings) return false;
    if (this.bnb && bnbPartOf(info, this.isLinear(info.name))) return true; // its shape is checked once whole
    const shape = this.expected.get(info.name);
    if (!shape) {
      throw new CheckpointError(`${file}: unexpected tensor ${nameOf(info.name)} for a ${this.config.modelType} ` +
        `model as config.json describes it`);
    }
    if (info.shape.join() !== shape.join()) {
      throw new CheckpointError(`${file}: ${nameOf(info.name)} is [${info.shape}], config.json implies [${shape}]: ` +
        `the two disagree`);
    }
    return true;
  }

  /**
   * Every tensor of a shard's header against the config, before any of its bytes are read: a
   * header that declares a giant or misshapen tensor is refused before that tensor is assembled.
   */
  checkHeader(h: SafetensorsHeader, file: string): void {
    for (const t of h.tensors) {
      if (!this.check(t, file)) continue;
      const weight = this.bnb && bnbPartOf(t, this.isLinear(t.name));
      // a pre-quantized weight's packed bytes: two 4-bit codes per byte of the [out, in] matrix
      const shape = weight === t.name ? this.expected.get(weight) : undefined;
      if (shape) {
        const bytes = Math.ceil((shape[0] * shape[1]) / 2);
        const numel = t.shape.reduce((a, b) => a * b, 1);
        if (numel !== bytes) {
          throw new CheckpointError(`${file}: ${nameOf(t.name)} holds ${numel} packed bytes; ` +
            `[${shape}] in 4 bits needs ${bytes}`);
        }
      } else if (weight && !this.expected.has(weight)) {
        throw new CheckpointError(`${file}: unexpected tensor ${nameOf(t.name)} for a ${this.config.modelType} ` +
          `model as config.json describes it`);
      }
    }
  }

  /**
   * A raw checkpoint tensor: quantized to NF4 when it is a linear weight and load_in_4bit.
   * Returns the name of the network tensor it completed (a 4-bit module completes with its
   * last part), or null.
   */
  async add(info: TensorInfo, data: Uint8Array, file: string): Promise<string | null> {
    if (!this.check(info, file)) return null;
    const { gpu, settings: s } = this;
    const weight = this.bnb && bnbPartOf(info, this.isLinear(info.name));
    if (weight) {
      const whole = this.bnb!.add(weight, info, data, file);
      if (!whole) return null;
      this.addNF4(weight, uploadNF4(gpu, whole.q, whole.shape));
      return weight;
    }
    if (this.isLinear(info.name) && s.load_in_4bit) {
      const q = quantizeNF4Host(gpu, toFloat32(info.dtype, data), [info.shape[0], info.shape[1]], s.blocksize ?? 64, this.maxBlockBytes);
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
      throw new CheckpointError(`${name} is [${w.shape}] in 4 bits; the config implies ${shape ? `[${shape}]` : 'no such weight'}`);
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
      throw new CheckpointError(`the checkpoint lacks parts of ${this.bnb.incomplete.length} 4-bit module(s): ${this.bnb.incomplete.slice(0, 3).join(', ')}`);
    }
    const missing = [...this.expected.keys()].filter((n) => !halves.has(n) && !linear.has(n));
    if (missing.length) {
      throw new CheckpointError(`the checkpoint lacks ${missing.length} tensor(s) the config needs: ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', …' : ''}`);
    }
    const vec = (n: string): HalfVector => halfVector(halves.get(n)!);
    const mat = (n: string): HalfMatrix => halves.get(n)!;
    const lin = (path: string) => {
      const bias = halves.get(`${path}.bias`);
      return new LoraLinear(path, linear.get(`${path}.weight`)!, bias ? halfVector(bias) : null);
    };
    return c.falcon ? assembleFalcon(c, vec, mat, lin) : c.gemma ? assembleGemma(c, vec, mat, lin) : assembleLlama(c, vec, mat, lin);
  }
}

type Get<T> = (name: string) => T;

function assembleLlama(c: ModelConfig, vec: Get<HalfVector>, mat: Get<HalfMatrix>, lin: Get<LoraLinear>): LoadedModel {
  const linears: LoraLinear[] = [];
  const layers: LayerWeights[] = [];
  for (let l = 0; l < c.layers; l++) {
    const p = `model.layers.${l}`;
    const layer = { inputNorm: vec(`${p}.input_layernorm.weight`), postNorm: vec(`${p}.post_attention_layernorm.weight`) } as LayerWeights;
    if (c.qkNorm) { // Qwen3
      Object.assign(layer, { qNorm: vec(`${p}.self_attn.q_norm.weight`), kNorm: vec(`${p}.self_attn.k_norm.weight`) });
    }
    for (const [path, key] of Object.entries(llamaLinears(c))) {
      const m = lin(`${p}.${path}`);
      Object.assign(layer, { [key]: m });
      linears.push(m);
    }
    layers.push(layer);
  }
  const embed = mat('model.embed_tokens.weight');
  const weights: LlamaWeights = { embed, layers, norm: vec('model.norm.weight'), head: c.tieEmbeddings ? embed : mat('lm_head.weight') };
  return { config: c, weights, linears };
}

function assembleGemma(c: ModelConfig, vec: Get<HalfVector>, mat: Get<HalfMatrix>, lin: Get<LoraLinear>): LoadedModel {
  const linears: LoraLinear[] = [];
  const layers: GemmaLayerWeights[] = [];
  for (let l = 0; l < c.layers; l++) {
    const p = `model.layers.${l}`;
    const m = (path: string) => {
      const x = lin(`${p}.${path}`);
      linears.push(x);
      return x;
    };
    layers.push({
      inputNorm: vec(`${p}.input_layernorm.weight`), postAttnNorm: vec(`${p}.post_attention_layernorm.weight`),
      preFfNorm: vec(`${p}.pre_feedforward_layernorm.weight`), postFfNorm: vec(`${p}.post_feedforward_layernorm.weight`),
      q: m('self_attn.q_proj'), k: m('self_attn.k_proj'), v: m('self_attn.v_proj'), o: m('self_attn.o_proj'),
      gate: m('mlp.gate_proj'), up: m('mlp.up_proj'), down: m('mlp.down_proj'),
    });
  }
  const embed = mat('model.embed_tokens.weight');
  const weights: GemmaWeights = { embed, layers, norm: vec('model.norm.weight'), head: c.tieEmbeddings ? embed : mat('lm_head.weight') };
  return { config: c, weights, linears };
}

function assembleFalcon(c: ModelConfig, vec: Get<HalfVector>, mat: Get<HalfMatrix>, lin: Get<LoraLinear>): LoadedModel {
  const linears: LoraLinear[] = [];
  const norm = (p: string) => ({ w: vec(`${p}.weight`), b: vec(`${p}.bias`) });
  const layers: FalconLayerWeights[] = [];
  for (let l = 0; l < c.layers; l++) {
    const p = `transformer.h.${l}`;
    const mods = {
      qkv: lin(`${p}.self_attention.query_key_value`), dense: lin(`${p}.self_attention.dense`),
      up: lin(`${p}.mlp.dense_h_to_4h`), down: lin(`${p}.mlp.dense_4h_to_h`),
    };
    linears.push(mods.qkv, mods.dense, mods.up, mods.down);
    const two = c.falcon!.twoNorms;
    layers.push({ ln: norm(two ? `${p}.ln_attn` : `${p}.input_layernorm`), lnMlp: two ? norm(`${p}.ln_mlp`) : null, ...mods });
  }
  const embed = mat('transformer.word_embeddings.weight');
  const weights: FalconWeights = { embed, layers, lnF: norm('transformer.ln_f'), head: c.tieEmbeddings ? embed : mat('lm_head.weight') };
  return { config: c, weights, linears };
}

/** Falcon's tensor names and shapes (transformers' FalconForCausalLM). */
function falconShapes(c: ModelConfig): Map<string, number[]> {
  const m = new Map<string, number[]>();
  const d = c.headDim, H = c.hidden;
  m.set('transformer.word_embeddings.weight', [c.vocab, H]);
  if (!c.tieEmbeddings) m.set('lm_head.weight', [c.vocab, H]);
  const norm = (p: string) => {
    m.set(`${p}.weight`, [H]);
    m.set(`${p}.bias`, [H]);
  };
  norm('transformer.ln_f');
  for (let l = 0; l < c.layers; l++) {
    const p = `transformer.h.${l}`;
    if (c.falcon!.twoNorms) {
      norm(`${p}.ln_attn`);
      norm(`${p}.ln_mlp`);
    } else norm(`${p}.input_layernorm`);
    const shapes: Record<string, [number, number]> = {
      'self_attention.query_key_value': [(c.heads + 2 * c.kvHeads) * d, H], 'self_attention.dense': [H, c.heads * d],
      'mlp.dense_h_to_4h': [c.intermediate, H], 'mlp.dense_4h_to_h': [H, c.intermediate],
    };
    for (const [path, shape] of Object.entries(shapes)) {
      m.set(`${p}.${path}.weight`, shape);
      if (c.bias.qkv) m.set(`${p}.${path}.bias`, [shape[0]]);
    }
  }
  return m;
}

/** The network for a loaded checkpoint, by its architecture. */
export function buildModel(gpu: Gpu, loaded: LoadedModel): CausalLM {
  const c = loaded.config;
  // config.json bounds the table (CONFIG_LIMITS); this device must also bind it whole
  const ropeBytes = c.maxPositions * (c.headDim / 2) * 4;
  if (ropeBytes > gpu.maxBinding) {
    throw new CheckpointError(
      `config.json's max_position_embeddings ${c.maxPositions} needs RoPE tables of ${ropeBytes} bytes each, ` +
        `over this ` +
        `device's ${gpu.maxBinding}-byte binding limit: lower max_position_embeddings in config.json`,
    );
  }
  const rope = ropeTables(gpu, ropeInverseFrequencies(c), c.maxPositions);
  if (c.falcon) return new FalconModel(gpu, c, loaded.weights as FalconWeights, rope);
  if (c.gemma) return new GemmaModel(gpu, c, loaded.weights as GemmaWeights, rope);
  return new LlamaModel(gpu, c, loaded.weights as LlamaWeights, rope);
}

/** Every tensor name the config implies, with its shape. */
function expectedShapes(c: ModelConfig): Map<string, number[]> {
  const m = new Map<string, number[]>();
  const qd = c.heads * c.headDim, kvd = c.kvHeads * c.headDim;
  m.set('model.embed_tokens.weight', [c.vocab, c.hidden]);
  m.set('model.norm.weight', [c.hidden]);
  if (!c.tieEmbeddings) m.set('lm_head.weight', [c.vocab, c.hidden]);
  for (let l = 0; l < c.layers; l++) {
    const p = `model.layers.${l}`;
    m.set(`${p}.input_layernorm.weight`, [c.hidden]);
    m.set(`${p}.post_attention_layernorm.weight`, [c.hidden]);
    if (c.gemma) for (const n of ['pre_feedforward_layernorm', 'post_feedforward_layernorm']) m.set(`${p}.${n}.weight`, [c.hidden]);
    const shapes: Record<string, [number, number]> = {
      ...(c.fused.qkv ? { 'self_attn.qkv_proj': [qd + 2 * kvd, c.hidden] as [number, number] }
        : { 'self_attn.q_proj': [qd, c.hidden], 'self_attn.k_proj': [kvd, c.hidden], 'self_attn.v_proj': [kvd, c.hidden] } as Record<string, [number, number]>),
      'self_attn.o_proj': [c.hidden, qd],
      ...(c.fused.gateUp ? { 'mlp.gate_up_proj': [2 * c.intermediate, c.hidden] as [number, number] }
        : { 'mlp.gate_proj': [c.intermediate, c.hidden], 'mlp.up_proj': [c.intermediate, c.hidden] } as Record<string, [number, number]>),
      'mlp.down_proj': [c.hidden, c.intermediate],
    };
    for (const [path, shape] of Object.entries(shapes)) m.set(`${p}.${path}.weight`, shape);
    if (c.bias.qkv) for (const x of ['q', 'k', 'v']) m.set(`${p}.self_attn.${x}_proj.bias`, [x === 'q' ? qd : kvd]);
    if (c.qkNorm) for (const x of ['q', 'k']) m.set(`${p}.self_attn.${x}_norm.weight`, [c.headDim]); // Qwen3
    if (c.bias.o) m.set(`${p}.self_attn.o_proj.bias`, [c.hidden]);
    if (c.bias.mlp) for (const x of ['gate', 'up']) m.set(`${p}.mlp.${x}_proj.bias`, [c.intermediate]);
    if (c.bias.mlp) m.set(`${p}.mlp.down_proj.bias`, [c.hidden]);
  }
  return m;
}

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
