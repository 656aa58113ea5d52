/** Backend selection for the CLI and benchmarks: the WebGPU backend (Dawn) or the CPU reference. */
import type { Backend } from '../gpu/backend.ts';
import { CpuBackend } from '../gpu/cpu-backend.ts';
import { createGpuBackend } from '../gpu/gpu-backend.ts';
import { requestNodeGpu } from '../gpu/node-gpu.ts';

export type BackendKind = 'gpu' | 'cpu';

export async function createBackend(kind: BackendKind, opts: { maxChunkElements?: number } = {}): Promise<Backend> {
  if (kind === 'cpu') return new CpuBackend();
  // The system's GPU when Dawn accepts one, else SwiftShader (see node-gpu.ts).
  const gpu = await requestNodeGpu();
  return createGpuBackend(gpu, { ...opts, ownsDevice: true });
}
