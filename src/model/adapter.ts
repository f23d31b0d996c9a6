// The adapter on the GPU to and from PEFT's files (formats/peft.ts): one readback of the flat
// parameter buffer out, one write per tensor in.
import {
  adapterConfigJson,
  parseAdapterConfig,
  readAdapterSafetensors,
  writeAdapterSafetensors,
  AdapterError,
  type AdapterModules,
  type AdapterTensors,
  type LoraConfig,
} from '../formats/peft';
import type { Gpu } from '../gpu/runtime';
import type { LoraLinear, LoraSet } from './lora-linear';

/** PEFT's module name: the last component of the path (q_proj, down_proj, ...). */
const shortName = (path: string) => path.slice(path.lastIndexOf('.') + 1);

export async function exportAdapter(
  gpu: Gpu,
  set: LoraSet,
  c: Omit<LoraConfig, 'target_modules' | 'r' | 'bias'>,
): Promise<{ 'adapter_config.json': string; 'adapter_model.safetensors': Uint8Array }> {
  const all = await gpu.read(set.params);
  const first = set.modules[0]?.lora;
  if (!first) throw new AdapterError('no LoRA adapter is attached');
  const r = first.A.shape[0];
  const layers = set.modules.map((m) => {
    const l = m.lora!;
    return {
      module: m.path,
      r,
      inFeatures: m.inFeatures,
      outFeatures: m.outFeatures,
      A: all.slice((l.A.offset - set.params.offset) / 4, (l.A.offset - set.params.offset) / 4 + l.A.numel),
      B: all.slice((l.B.offset - set.params.offset) / 4, (l.B.offset - set.params.offset) / 4 + l.B.numel),
    };
  });
  const target_modules = [...new Set(set.modules.map((m) => shortName(m.path)))];
  return {
    'adapter_config.json': adapterConfigJson({ ...c, r, bias: 'none', target_modules }),
    'adapter_model.safetensors': writeAdapterSafetensors(layers),
  };
}

/** The sizes of the layers an adapter set adapts, by module path: what its files must match. */
export function adaptedModules(modules: LoraLinear[]): AdapterModules {
  return new Map(modules.map((m) => [m.path, { inFeatures: m.inFeatures, outFeatures: m.outFeatures }]));
}

/**
 * Read PEFT's files into an attached adapter of the same shape: every module of the file must
 * be attached with the same rank, and every attached module must be in the file. Every shape is
 * checked (against the config's r and the model) before anything is converted or written.
 */
export function importAdapter(gpu: Gpu, set: LoraSet, files: { config: string; weights: Uint8Array }): LoraConfig {
  const config = parseAdapterConfig(files.config);
  const rank = set.modules[0]?.lora?.A.shape[0];
  if (rank !== undefined && rank !== config.r) {
    throw new AdapterError(
      `adapter_config.json: r is ${config.r}, the model's adapter has rank ${rank}: ` +
        `it was trained on another base model or rank`,
    );
  }
  const layers = readAdapterSafetensors(files.weights, config.r, adaptedModules(set.modules));
  writeAdapter(gpu, set, config, layers);
  return config;
}

/** Checked adapter weights into the attached adapter's buffers. */
export function writeAdapter(gpu: Gpu, set: LoraSet, config: LoraConfig, layers: AdapterTensors[]): void {
  const byPath = new Map<string, LoraLinear>(set.modules.map((m) => [m.path, m]));
  for (const l of layers) {
    const m = byPath.get(l.module);
    if (!m?.lora || m.lora.A.numel !== l.A.length || m.lora.B.numel !== l.B.length) {
      throw new AdapterError(
        `${l.module}: the adapter's weights do not fit the attached adapter: ` +
          `it was trained on another base model or rank`,
      );
    }
  }
  for (const l of layers) {
    const m = byPath.get(l.module)!;
    gpu.write(m.lora!.A, l.A);
    gpu.write(m.lora!.B, l.B);
    m.lora!.scale = config.use_rslora ? config.lora_alpha / Math.sqrt(config.r) : config.lora_alpha / config.r;
  }
}
