/**
 * Backend selection for the CLI and benchmarks: the WebGPU backend (Dawn), the fast CPU backend
 * (generated loops on every core, src/gpu/cpu-fast), or the CPU reference (plain TypeScript, one
 * thread: the specification the others are tested against, for debugging).
 */
import type { Backend } from '../gpu/backend.ts';
import { CpuBackend } from '../gpu/cpu-backend.ts';
import { FastCpuBackend } from '../gpu/cpu-fast/fast-backend.ts';
import { nodeThreadCount, nodeWorkers } from '../gpu/cpu-fast/node-threads.ts';
import { createGpuBackend } from '../gpu/gpu-backend.ts';
import { requestGpu } from '../gpu/device.ts';
import { nodeGpu } from '../gpu/node-gpu.ts';

export const BACKEND_KINDS = ['gpu', 'cpu', 'cpu-reference'] as const;
export type BackendKind = (typeof BACKEND_KINDS)[number];

export function isBackendKind(s: string): s is BackendKind {
  return (BACKEND_KINDS as readonly string[]).includes(s);
}

export interface BackendOptions {
  /** GPU: largest chunk of a tensor, in elements. */
  maxChunkElements?: number;
  /** Fast CPU: threads in all (default: every core). */
  threads?: number;
}

export async function createBackend(kind: BackendKind, opts: BackendOptions = {}): Promise<Backend> {
  switch (kind) {
    case 'cpu':
      return new FastCpuBackend({ threads: opts.threads ?? nodeThreadCount(), workers: nodeWorkers });
    case 'cpu-reference':
      return new CpuBackend();
    case 'gpu': {
      const gpu = await requestGpu(nodeGpu());
      return createGpuBackend(gpu, { maxChunkElements: opts.maxChunkElements, ownsDevice: true });
    }
  }
}
