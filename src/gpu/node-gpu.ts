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
 * Dawn instances made by this process. Each must outlive every device made from it: if the GPU
 * object is garbage-collected, Dawn tears down its instance under live devices and the process
 * aborts (seen as "futex facility returned an unexpected error code" during async pipeline creation).
 */
const instances: GPU[] = [];

/**
 * A `GPU` object backed by Dawn (the same one on every call), with the Vulkan drivers the environment
 * selects. Installs the WebGPU globals (GPUBufferUsage, GPUMapMode...) first, since the host code
 * reads them as in a browser.
 */
export function nodeGpu(): GPU {
  if (instances.length === 0) {
    Object.assign(globalThis, globals);
    instances.push(create([]));
  }
  return instances[0];
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
  // The Vulkan loader reads VK_ICD_FILENAMES when an instance is created: a second Dawn instance
  // made after setting it sees SwiftShader.
  process.env.VK_ICD_FILENAMES = swiftshader;
  const software = create([]);
  instances.push(software);
  return { ...(await requestGpu(software, opts)), driver: 'swiftshader' };
}
