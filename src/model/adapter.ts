// The adapter on the GPU to and from PEFT's files (formats/peft.ts): one readback of the flat
// parameter buffer out, one write per tensor in.
import {
  adapterConfigJson,
  adapterTensorName,
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
import type { TargetModules } from './target-modules';

/** PEFT's module name: the last component of the path (q_proj, down_proj, ...). */
const shortName = (path: string) => path.slice(path.lastIndexOf('.') + 1);

/**
 * Where each adapter tensor lies in the set's flat buffers, by PEFT's name: the parameters, the
 * gradients and the optimizer's moments share this layout.
 */
export function adapterLayout(set: LoraSet): { name: string; at: number; shape: [number, number] }[] {
  return set.modules.flatMap((m) => {
    const l = m.lora;
    if (!l) throw new AdapterError(`${m.path} has no adapter attached`);
    const at = (t: { offset: number }) => (t.offset - set.params.offset) / 4;
    return [
      { name: adapterTensorName(m.path, 'A'), at: at(l.A), shape: [l.A.shape[0], l.A.shape[1]] },
      { name: adapterTensorName(m.path, 'B'), at: at(l.B), shape: [l.B.shape[0], l.B.shape[1]] },
    ];
  });
}

/**
 * PEFT's two files for `set`. target_modules: a regular expression is written as it was given
 * (PEFT keeps it); names and all-linear as the module names adapted, as PEFT resolves them.
 */
export async function exportAdapter(
  gpu: Gpu,
  set: LoraSet,
  c: Omit<LoraConfig, 'target_modules' | 'r' | 'bias'> & { target_modules?: TargetModules },
): Promise<{ 'adapter_config.json': string; 'adapter_model.safetensors': Uint8Array }> {
  const all = await gpu.read(set.params);
  const first = set.modules[0]?.lora;
  if (!first) throw new AdapterError('no LoRA adapter is attached');
  const r = first.A.shape[0];
  const slice = (t: { offset: number; numel: number }) => {
    const at = (t.offset - set.params.offset) / 4;
    return all.slice(at, at + t.numel);
  };
  const layers = set.modules.map((m) => ({
    module: m.path,
    r,
    inFeatures: m.inFeatures,
    outFeatures: m.outFeatures,
    A: slice(m.lora!.A),
    B: slice(m.lora!.B),
  }));
  const t = c.target_modules;
  const target_modules =
    typeof t === 'string' && t !== 'all-linear' ? t : [...new Set(set.modules.map((m) => shortName(m.path)))];
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
