/**
 * WebGPU for Node (Dawn, via the `webgpu` package). Node only: browser code uses `navigator.gpu` and
 * must never import this file.
 *
 * Dawn finds adapters through the Vulkan loader, which reads the system's drivers unless
 * VK_ICD_FILENAMES names one. `requestNodeGpu` prefers the system's driver (a real GPU) and falls
 * back to SwiftShader, the software Vulkan driver Debian's chromium ships, only when the system has
 * no adapter Dawn accepts. Tests set VK_ICD_FILENAMES to SwiftShader themselves (tests/setup.ts).
 */
import { existsSync } from 'node:fs';
import { create, globals } from 'webgpu';
import { GpuNoAdapterError, requestGpu, type GpuHandle, type RequestGpuOptions } from './device.ts';

/** Debian chromium's SwiftShader Vulkan driver. */
export const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';

/**
 * Dawn instances made by this process, by the VK_ICD_FILENAMES they were made under ('' = the
 * system's drivers): the Vulkan loader reads it when an instance is created, so each driver choice
 * needs its own. Each must outlive every device made from it: if the GPU object is garbage-collected,
 * Dawn tears down its instance under live devices and the process aborts (seen as "futex facility
 * returned an unexpected error code" during async pipeline creation).
 */
const instances = new Map<string, GPU>();

/**
 * A `GPU` object backed by Dawn (the same one on every call under the same VK_ICD_FILENAMES), with
 * the Vulkan drivers the environment selects. Installs the WebGPU globals (GPUBufferUsage,
 * GPUMapMode...) first, since the host code reads them as in a browser.
 */
export function nodeGpu(): GPU {
  const drivers = process.env.VK_ICD_FILENAMES ?? '';
  let gpu = instances.get(drivers);
  if (!gpu) {
    Object.assign(globalThis, globals);
    gpu = create([]);
    instances.set(drivers, gpu);
  }
  return gpu;
}

export interface NodeGpuHandle extends GpuHandle {
  /** Where the adapter came from: the system's Vulkan drivers, or the SwiftShader fallback. */
  driver: 'system' | 'swiftshader' | 'VK_ICD_FILENAMES';
}

/**
 * A device on the best adapter this machine has: the system's Vulkan driver when Dawn accepts one,
 * else SwiftShader (when installed). With VK_ICD_FILENAMES set, exactly that driver.
 */
export async function requestNodeGpu(opts: RequestGpuOptions = {}, swiftshader = SWIFTSHADER_ICD): Promise<NodeGpuHandle> {
  const chosen = process.env.VK_ICD_FILENAMES;
  if (chosen) return { ...(await requestGpu(nodeGpu(), opts)), driver: chosen === swiftshader ? 'swiftshader' : 'VK_ICD_FILENAMES' };
  try {
    return { ...(await requestGpu(nodeGpu(), { powerPreference: 'high-performance', ...opts })), driver: 'system' };
  } catch (err) {
    if (!(err instanceof GpuNoAdapterError) || !existsSync(swiftshader)) throw err;
  }
  // From now on this process asks SwiftShader (a new Dawn instance: see `instances`), here and in
  // later calls, which take the branch above.
  process.env.VK_ICD_FILENAMES = swiftshader;
  return { ...(await requestGpu(nodeGpu(), opts)), driver: 'swiftshader' };
}
