// WebGPU for the Node tests: Dawn (the `webgpu` package) on SwiftShader, the CPU Vulkan driver
// inside Debian's chromium package. One device per test file, shared by its tests.
import { existsSync } from 'node:fs';
import { create, globals } from 'webgpu';
import { Gpu } from '../src/gpu/runtime';

export const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';

let shared: Promise<Gpu> | null = null;

/** The file's shared device. */
export function testGpu(): Promise<Gpu> {
  shared ??= newTestGpu();
  return shared;
}

/** A device of its own, for tests that destroy or lose it. */
export function newTestGpu(): Promise<Gpu> {
  return (async () => {
    if (!process.env.VK_ICD_FILENAMES) {
      if (!existsSync(SWIFTSHADER_ICD)) {
        throw new Error(
          `${SWIFTSHADER_ICD} is missing: the tests run WebGPU on SwiftShader, which ships in Debian's ` +
            'chromium package. Install it with `apt-get install chromium libvulkan1`, or point ' +
            'VK_ICD_FILENAMES at another Vulkan driver.',
        );
      }
      process.env.VK_ICD_FILENAMES = SWIFTSHADER_ICD;
    }
    process.env.XDG_RUNTIME_DIR ??= '/tmp';
    Object.assign(globalThis, globals);
    return Gpu.create(create([]));
  })();
}
