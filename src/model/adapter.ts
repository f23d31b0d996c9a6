// The adapter on the GPU to and from PEFT's files (formats/peft.ts): one readback of the flat
// parameter buffer out, one write per tensor in.
import { adapterConfigJson, parseAdapterConfig, readAdapterSafetensors, writeAdapterSafetensors, AdapterError, type LoraConfig } from '../formats/peft';
import type { Gpu } from '../gpu/runtime';
import type { LoraLinear, LoraSet } from './lora-linear';

/** PEFT's module name: the last component of the path (q_proj, down_proj, ...). */
const shortName = (path: string) => path.slice(path.lastIndexOf('.') + 1);

export async function exportAdapter(
  gpu: Gpu, set: LoraSet, c: Omit<LoraConfig, 'target_modules' | 'r' | 'bias'>,
): Promise<{ 'adapter_config.json': string; 'adapter_model.safetensors': Uint8Array }> {
  const all = await gpu.read(set.params);
  const first = set.modules[0]?.lora;
  if (!first) throw new AdapterError('no LoRA adapter is attached');
  const r = first.A.shape[0];
  const layers = set.modules.map((m) => {
    const l = m.lora!;
    return {
      module: m.path, r, inFeatures: m.inFeatures, outFeatures: m.outFeatures,
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

/**
 * Read PEFT's files into an attached adapter of the same shape: every module of the file must
 * be attached with the same rank, and every attached module must be in the file.
 */
export function importAdapter(gpu: Gpu, set: LoraSet, files: { config: string; weights: Uint8Array }): LoraConfig {
  const config = parseAdapterConfig(files.config);
  const layers = readAdapterSafetensors(files.weights, config.r);
  const byPath = new Map<string, LoraLinear>(set.modules.map((m) => [m.path, m]));
  for (const l of layers) {
    const m = byPath.get(l.module);
    if (!m?.lora) throw new AdapterError(`the adapter has ${l.module}, which this model's adapter does not target`);
    if (m.lora.A.shape[0] !== l.r || l.inFeatures !== m.inFeatures || l.outFeatures !== m.outFeatures) {
      throw new AdapterError(
        `${l.module}: the adapter's A is [${l.r}, ${l.inFeatures}] and B [${l.outFeatures}, ${l.r}], the model needs ` +
          `[${m.lora.A.shape}] and [${m.lora.B.shape}]: it was trained on another base model or rank`,
      );
    }
  }
  if (layers.length !== set.modules.length) {
    const have = new Set(layers.map((l) => l.module));
    const lacking = set.modules.filter((m) => !have.has(m.path)).map((m) => m.path);
    throw new AdapterError(`the adapter lacks ${lacking.length} module(s) the model targets: ${lacking.slice(0, 3).join(', ')}`);
  }
  for (const l of layers) {
    const m = byPath.get(l.module)!;
    gpu.write(m.lora!.A, l.A);
    gpu.write(m.lora!.B, l.B);
    m.lora!.scale = config.use_rslora ? config.lora_alpha / Math.sqrt(config.r) : config.lora_alpha / config.r;
  }
  return config;
}
