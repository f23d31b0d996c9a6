// Pre-quantized bitsandbytes 4-bit checkpoints (the Hub's `*-bnb-4bit` models), read straight
// into our NF4 buffers: bitsandbytes' packed bytes are ours byte for byte, so nothing is
// dequantized and requantized. Per linear module `<m>` the checkpoint holds (REFERENCE.md):
//   <m>.weight                          uint8, the packed NF4 codes, high nibble first
//   <m>.weight.absmax                   f32 per block, or uint8 codes when double-quantized
//   <m>.weight.quant_map                the 16 NF4 values
//   <m>.weight.nested_absmax            f32 per 256 blocks        (double quantization)
//   <m>.weight.nested_quant_map         the 256-value dynamic map (double quantization)
//   <m>.weight.quant_state.bitsandbytes__nf4   JSON: quant_type, blocksize, dtype, shape,
//                                       nested_blocksize, nested_dtype, nested_offset
// The parts of a module may arrive in any order (and across shards); a module is complete once
// all of its parts are in.
import { showValue } from '../formats/show';
import { nameOf, toFloat32, type TensorInfo } from '../formats/safetensors';
import { checkBlocksize, NF4_CODE, type NF4Tensor } from '../quant/nf4';

const PART = /^(.*\.weight)\.(absmax|quant_map|nested_absmax|nested_quant_map|quant_state\.bitsandbytes__nf4)$/;

export class Bnb4bitError extends Error {
  override name = 'Bnb4bitError';
}

interface QuantState {
  quant_type: string;
  blocksize: number;
  shape: number[];
  nested_blocksize?: number;
  nested_offset?: number;
}

type Parts = Partial<
  Record<
    'weight' | 'absmax' | 'quant_map' | 'nested_absmax' | 'nested_quant_map' | 'state',
    { info: TensorInfo; data: Uint8Array }
  >
>;

/** The weight a tensor belongs to, when it is a part of a bitsandbytes 4-bit module. */
export function bnbPartOf(info: Pick<TensorInfo, 'name' | 'dtype'>, isLinearWeight: boolean): string | null {
  const m = info.name.match(PART);
  if (m) return m[1];
  return isLinearWeight && info.dtype === 'U8' ? info.name : null;
}

export class Bnb4bitCollector {
  private pending = new Map<string, Parts>();

  /** `expected`: the [out, in] shape config.json implies for a weight, checked against its quant_state. */
  constructor(
    private doubleQuant: boolean,
    private expected?: (weight: string) => number[] | undefined,
  ) {}

  /** Modules with some parts in and others to come. */
  get incomplete(): string[] {
    return [...this.pending.keys()];
  }

  /** Takes one part; returns the module's NF4 tensor and shape once all its parts are in. */
  add(
    weight: string,
    info: TensorInfo,
    data: Uint8Array,
    file?: string,
  ): { q: NF4Tensor; shape: [number, number] } | null {
    const parts = this.pending.get(weight) ?? {};
    const suffix = info.name === weight ? 'weight' : info.name.slice(weight.length + 1);
    const key = suffix === 'quant_state.bitsandbytes__nf4' ? 'state' : (suffix as keyof Parts);
    parts[key] = { info, data };
    this.pending.set(weight, parts);
    const needed: (keyof Parts)[] = [
      'weight',
      'absmax',
      'quant_map',
      'state',
      ...(this.doubleQuant ? (['nested_absmax', 'nested_quant_map'] as const) : []),
    ];
    if (!needed.every((k) => parts[k])) return null;
    this.pending.delete(weight);
    return assemble(weight, parts, this.expected?.(weight), file);
  }
}

/** A quant_state is a few hundred bytes of JSON; more is not one. */
const MAX_STATE_BYTES = 65536;

/** quant_state.bitsandbytes__nf4, checked field by field: it comes from the checkpoint's author. */
function parseQuantState(data: Uint8Array, fail: (what: string) => Bnb4bitError): QuantState {
  if (data.length > MAX_STATE_BYTES) {
    throw fail(
      `its quant_state.bitsandbytes__nf4 is ${data.length} bytes; ` +
        `a quant_state is JSON of at most ${MAX_STATE_BYTES}`,
    );
  }
  let state: unknown;
  try {
    state = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(data));
  } catch {
    throw fail(`its quant_state.bitsandbytes__nf4 is not valid JSON; the checkpoint is corrupt`);
  }
  if (typeof state !== 'object' || state === null || Array.isArray(state)) {
    throw fail(
      `its quant_state.bitsandbytes__nf4 must be a JSON object (quant_type, blocksize, shape, …), ` +
        `got ${showValue(state)}`,
    );
  }
  const s = state as Record<string, unknown>;
  if (s.quant_type !== 'nf4') {
    throw fail(`quant_state.quant_type is ${showValue(s.quant_type)}; only "nf4" is supported`);
  }
  const power2 = (v: unknown, lo: number, hi: number) =>
    typeof v === 'number' && Number.isInteger(v) && v >= lo && v <= hi && (v & (v - 1)) === 0;
  if (!power2(s.blocksize, 32, 4096)) {
    throw fail(`quant_state.blocksize must be a power of two from 32 to 4096, got ${showValue(s.blocksize)}`);
  }
  const shape = s.shape;
  const dim = (d: unknown) => typeof d === 'number' && Number.isSafeInteger(d) && d >= 1;
  if (!Array.isArray(shape) || shape.length !== 2 || !shape.every(dim)) {
    throw fail(`quant_state.shape must be [out, in] (two positive integers), got ${showValue(shape)}`);
  }
  if (s.nested_blocksize != null && !power2(s.nested_blocksize, 1, 65536)) {
    throw fail(`quant_state.nested_blocksize must be a power of two up to 65536, got ${showValue(s.nested_blocksize)}`);
  }
  if (s.nested_offset != null && !(typeof s.nested_offset === 'number' && Number.isFinite(s.nested_offset))) {
    throw fail(`quant_state.nested_offset must be a finite number, got ${showValue(s.nested_offset)}`);
  }
  return s as unknown as QuantState;
}

function assemble(
  weight: string,
  p: Parts,
  expected?: number[],
  file?: string,
): { q: NF4Tensor; shape: [number, number] } {
  const fail = (what: string) => new Bnb4bitError(`${file ? `${file}: ` : ''}${nameOf(weight)}: ${what}`);
  const state = parseQuantState(p.state!.data, fail);
  checkBlocksize(state.blocksize);
  const shape: [number, number] = [state.shape[0], state.shape[1]];
  if (expected && shape.join() !== expected.join()) {
    throw fail(`quant_state.shape is [${shape}], config.json implies [${expected}]: the two disagree`);
  }
  const n = shape[0] * shape[1];
  const nblocks = Math.ceil(n / state.blocksize);
  const floats = (part: 'quant_map' | 'nested_quant_map' | 'nested_absmax' | 'absmax') => {
    const { info, data } = p[part]!;
    if (info.dtype !== 'F32') throw fail(`its ${part} is ${info.dtype}; bitsandbytes writes it as F32`);
    return toFloat32('F32', data);
  };
  const qmap = floats('quant_map');
  if (qmap.length !== 16 || qmap.some((v, i) => v !== NF4_CODE[i]))
    throw fail("its quant_map is not bitsandbytes' NF4 code");
  if (p.weight!.data.length !== Math.ceil(n / 2))
    throw fail(`holds ${p.weight!.data.length} packed bytes; [${shape}] needs ${Math.ceil(n / 2)}`);
  const q: NF4Tensor = { packed: p.weight!.data, absmax: new Float32Array(0), blocksize: state.blocksize, length: n };
  if (p.nested_absmax) {
    const codes = p.absmax!.data;
    if (p.absmax!.info.dtype !== 'U8' || codes.length !== nblocks)
      throw fail(`absmax should be ${nblocks} uint8 codes under double quantization`);
    const code = floats('nested_quant_map');
    if (code.length !== 256) throw fail('nested_quant_map should hold 256 values');
    const blocksize = state.nested_blocksize ?? 256;
    const absmax2 = floats('nested_absmax');
    if (absmax2.length !== Math.ceil(nblocks / blocksize)) {
      throw fail(
        `nested_absmax holds ${absmax2.length} values; ` +
          `${nblocks} blocks in groups of ${blocksize} need ${Math.ceil(nblocks / blocksize)}`,
      );
    }
    q.nested = { codes, code, absmax2, offset: Math.fround(state.nested_offset ?? 0), blocksize };
  } else {
    q.absmax = floats('absmax');
    if (q.absmax.length !== nblocks)
      throw fail(`absmax holds ${q.absmax.length} values; ${nblocks} blocks need one each`);
  }
  return { q, shape };
}
