/**
 * WebGPU for Node (Dawn, via the `webgpu` package). Node only: browser code uses `navigator.gpu` and
 * must never import this file.
 */
import { create, globals } from 'webgpu';

/**
 * The process's one Dawn instance. It must outlive every device made from it: if the GPU object is
 * garbage-collected, Dawn tears down its instance under live devices and the process aborts (seen
 * as "futex facility returned an unexpected error code" during async pipeline creation).
 */
let instance: GPU | undefined;

/**
 * A `GPU` object backed by Dawn (the same one on every call). Installs the WebGPU globals
 * (GPUBufferUsage, GPUMapMode...) first, since the host code reads them as in a browser.
 */
export function nodeGpu(): GPU {
  if (!instance) {
    Object.assign(globalThis, globals);
    instance = create([]);
  }
  return instance;
}
