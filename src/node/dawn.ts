// WebGPU in Node: Dawn, through the `webgpu` package. The system's Vulkan driver is tried
// first; where there is none (a server, CI), SwiftShader, the CPU Vulkan driver that Debian's
// chromium package ships, is the fallback: correct, and slow (a few hundred MFLOP/s).
import { existsSync } from 'node:fs';
import { create, globals } from 'webgpu';
import { WebGPUUnavailableError } from '../gpu/device';
import { Gpu } from '../gpu/runtime';

export const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';

/**
 * A device from Dawn. `swiftshader: true` insists on the CPU driver (the tests, for results
 * that do not depend on the machine). The `GPU` object stays referenced by the Gpu: if it is
 * collected, Dawn's instance goes with it and the device fails at random.
 */
export async function nodeGpu(o: { swiftshader?: boolean } = {}): Promise<Gpu> {
  process.env.XDG_RUNTIME_DIR ??= '/tmp';
  Object.assign(globalThis, globals);
  const useSwiftShader = () => {
    if (!existsSync(SWIFTSHADER_ICD)) {
      throw new WebGPUUnavailableError(
        `no Vulkan driver was found, and ${SWIFTSHADER_ICD} (the CPU driver in Debian's chromium ` +
          'package) is missing: install a GPU driver, or `apt-get install chromium libvulkan1`, or ' +
          'point VK_ICD_FILENAMES at a Vulkan driver.',
      );
    }
    process.env.VK_ICD_FILENAMES = SWIFTSHADER_ICD;
  };
  if (o.swiftshader && !process.env.VK_ICD_FILENAMES) useSwiftShader();
  let gpu = create([]);
  if (!process.env.VK_ICD_FILENAMES && !(await gpu.requestAdapter())) {
    useSwiftShader(); // the Vulkan loader reads VK_ICD_FILENAMES again for a new instance
    gpu = create([]);
  }
  return Gpu.create(gpu);
}
