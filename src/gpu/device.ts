// Acquiring a WebGPU device from an injected `GPU` object: `navigator.gpu` in the browser,
// Dawn's `webgpu` package in Node. Nothing here touches `navigator` itself, so the same code
// runs in the page's worker, in the Node tests and in the command line.

/** Optional features we use when the adapter has them; the f32 path never needs any. */
export const OPTIONAL_FEATURES: GPUFeatureName[] = ['shader-f16', 'subgroups', 'timestamp-query'];

/** The limits we raise to the adapter's real values (the spec's defaults are far lower). */
const RAISED_LIMITS = [
  'maxBufferSize',
  'maxStorageBufferBindingSize',
  'maxStorageBuffersPerShaderStage',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupSizeZ',
  'maxComputeWorkgroupsPerDimension',
] as const;

export interface AdapterSummary {
  vendor: string;
  architecture: string;
  description: string;
  features: string[];
  limits: Record<string, number>;
  /** The narrowest subgroup the adapter runs (0 when unknown, or without the subgroups feature). */
  subgroupMinSize: number;
}

export class WebGPUUnavailableError extends Error {
  override name = 'WebGPUUnavailableError';
}

export interface AcquiredDevice {
  adapter: GPUAdapter;
  device: GPUDevice;
  summary: AdapterSummary;
}

export async function acquireDevice(
  gpu: GPU | undefined | null,
  options: { powerPreference?: GPUPowerPreference } = {},
): Promise<AcquiredDevice> {
  if (!gpu) {
    throw new WebGPUUnavailableError(
      'WebGPU is not available here. Use a recent Chrome or Edge (version 113 or later) on a ' +
        'machine with a GPU, and check chrome://gpu shows "WebGPU: Hardware accelerated".',
    );
  }
  const adapter = await gpu.requestAdapter({ powerPreference: options.powerPreference ?? 'high-performance' });
  if (!adapter) {
    throw new WebGPUUnavailableError(
      'WebGPU is present but no GPU adapter was offered. Update the GPU driver, or enable ' +
        'chrome://flags/#enable-unsafe-webgpu on platforms where WebGPU is still behind a flag.',
    );
  }
  const requiredFeatures = OPTIONAL_FEATURES.filter((f) => adapter.features.has(f));
  const requiredLimits: Record<string, number> = {};
  for (const name of RAISED_LIMITS) requiredLimits[name] = adapter.limits[name];
  const device = await adapter.requestDevice({ requiredFeatures, requiredLimits, label: 'qlora' });
  const info = adapter.info;
  const limits: Record<string, number> = {};
  for (const name of RAISED_LIMITS) limits[name] = device.limits[name];
  return {
    adapter,
    device,
    summary: {
      vendor: info?.vendor ?? '',
      architecture: info?.architecture ?? '',
      description: info?.description ?? '',
      features: [...device.features].sort(),
      limits,
      subgroupMinSize: device.features.has('subgroups') ? (info?.subgroupMinSize ?? 0) : 0,
    },
  };
}
