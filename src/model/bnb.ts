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
import { toFloat32, type TensorInfo } from '../formats/safetensors';
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

type Parts = Partial<Record<'weight' | 'absmax' | 'quant_map' | 'nested_absmax' | 'nested_quant_map' | 'state', { info: TensorInfo; data: Uint8Array }>>;

/** The weight a tensor belongs to, when it is a part of a bitsandbytes 4-bit module. */
export function bnbPartOf(info: Pick<TensorInfo, 'name' | 'dtype'>, isLinearWeight: boolean): string | null {
  const m = info.name.match(PART);
  if (m) return m[1];
  return isLinearWeight && info.dtype === 'U8' ? info.name : null;
}

export class Bnb4bitCollector {
  private pending = new Map<string, Parts>();

  constructor(private doubleQuant: boolean) {}

  /** Modules with some parts in and others to come. */
  get incomplete(): string[] {
    return [...this.pending.keys()];
  }

  /** Takes one part; returns the module's NF4 tensor and shape once all its parts are in. */
  add(weight: string, info: TensorInfo, data: Uint8Array): { q: NF4Tensor; shape: [number, number] } | null {
    const parts = this.pending.get(weight) ?? {};
    const suffix = info.name === weight ? 'weight' : info.name.slice(weight.length + 1);
    const key = suffix === 'quant_state.bitsandbytes__nf4' ? 'state' : (suffix as keyof Parts);
    parts[key] = { info, data };
    this.pending.set(weight, parts);
    const needed: (keyof Parts)[] = ['weight', 'absmax', 'quant_map', 'state', ...(this.doubleQuant ? ['nested_absmax', 'nested_quant_map'] as const : [])];
    if (!needed.every((k) => parts[k])) return null;
    this.pending.delete(weight);
    return assemble(weight, parts);
  }
}

function assemble(weight: string, p: Parts): { q: NF4Tensor; shape: [number, number] } {
  const fail = (what: string) => new Bnb4bitError(`${weight}: ${what}`);
  let state: QuantState;
  try {
    state = JSON.parse(new TextDecoder().decode(p.state!.data));
  } catch {
    throw fail('its quant_state.bitsandbytes__nf4 is not valid JSON');
  }
  if (state.quant_type !== 'nf4') throw fail(`quant_type is ${state.quant_type}; only nf4 is supported`);
  checkBlocksize(state.blocksize);
  if (!Array.isArray(state.shape) || state.shape.length !== 2) throw fail(`quant_state.shape ${JSON.stringify(state.shape)} is not [out, in]`);
  const shape: [number, number] = [state.shape[0], state.shape[1]];
  const n = shape[0] * shape[1];
  const nblocks = Math.ceil(n / state.blocksize);
  const qmap = toFloat32('F32', p.quant_map!.data);
  if (qmap.length !== 16 || qmap.some((v, i) => v !== NF4_CODE[i])) throw fail("its quant_map is not bitsandbytes' NF4 code");
  if (p.weight!.data.length !== Math.ceil(n / 2)) throw fail(`holds ${p.weight!.data.length} packed bytes; [${shape}] needs ${Math.ceil(n / 2)}`);
  const q: NF4Tensor = { packed: p.weight!.data, absmax: new Float32Array(0), blocksize: state.blocksize, length: n };
  if (p.nested_absmax) {
    const codes = p.absmax!.data;
    if (p.absmax!.info.dtype !== 'U8' || codes.length !== nblocks) throw fail(`absmax should be ${nblocks} uint8 codes under double quantization`);
    const code = toFloat32('F32', p.nested_quant_map!.data);
    if (code.length !== 256) throw fail('nested_quant_map should hold 256 values');
    q.nested = {
      codes, code, absmax2: toFloat32('F32', p.nested_absmax.data),
      offset: Math.fround(state.nested_offset ?? 0), blocksize: state.nested_blocksize ?? 256,
    };
  } else {
    q.absmax = toFloat32(p.absmax!.info.dtype, p.absmax!.data);
    if (q.absmax.length !== nblocks) throw fail(`absmax holds ${q.absmax.length} values; ${nblocks} blocks need one each`);
  }
  return { q, shape };
}
