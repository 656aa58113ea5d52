/**
 * Backend selection for the CLI and benchmarks: the WebGPU backend (Dawn), the fast CPU backend
 * (generated loops on every core, src/gpu/cpu-fast), or the CPU reference (plain TypeScript, one
 * thread: the specification the others are tested against, for debugging). `auto`, the default,
 * takes the GPU only when its adapter is hardware: on a software adapter (SwiftShader) every kernel
 * runs on the CPU through Vulkan emulation, slower than the CPU backend on the same cores.
 */
import type { Backend } from '../gpu/backend.ts';
import { CpuBackend } from '../gpu/cpu-backend.ts';
import { FastCpuBackend } from '../gpu/cpu-fast/fast-backend.ts';
import { nodeThreadCount, nodeWorkers } from '../gpu/cpu-fast/node-threads.ts';
import { createGpuBackend, type GpuBackend } from '../gpu/gpu-backend.ts';
import { adapterLabel } from '../gpu/device.ts';
import { requestNodeGpu } from '../gpu/node-gpu.ts';

export const BACKEND_KINDS = ['auto', 'gpu', 'cpu', 'cpu-reference'] as const;
export type BackendKind = (typeof BACKEND_KINDS)[number];

/** The --backend line of the CLI's usage and errors. */
export const BACKEND_CHOICES = BACKEND_KINDS.join('|');

export function isBackendKind(s: string): s is BackendKind {
  return (BACKEND_KINDS as readonly string[]).includes(s);
}

export interface BackendOptions {
  /** GPU: largest chunk of a tensor, in elements. */
  maxChunkElements?: number;
  /** Fast CPU: threads in all (default: every core). */
  threads?: number;
  /** How the GPU backend is made (tests stand in a software or hardware adapter). */
  openGpu?: (opts: BackendOptions) => Promise<GpuBackend>;
}

export interface ChosenBackend {
  backend: Backend;
  /** Why this backend, when the user may want another (printed as a note). */
  note?: string;
}

/** The backend `kind` names; for `auto`, the GPU on a hardware adapter and the CPU otherwise. */
export async function chooseBackend(kind: BackendKind, opts: BackendOptions = {}): Promise<ChosenBackend> {
  const openGpu = opts.openGpu ?? defaultGpu;
  switch (kind) {
    case 'cpu':
      return { backend: fastCpu(opts) };
    case 'cpu-reference':
      return { backend: new CpuBackend() };
    case 'gpu': {
      const gpu = await openGpu(opts);
      const software = gpu.ctx.adapterInfo.isFallbackAdapter;
      return { backend: gpu, note: software ? 'this WebGPU adapter runs in software on the CPU; --backend cpu is usually faster here' : undefined };
    }
    case 'auto': {
      let gpu: GpuBackend;
      try {
        gpu = await openGpu(opts);
      } catch (err) {
        const reason = err instanceof Error ? err.message.split('\n')[0] : String(err);
        return { backend: fastCpu(opts), note: `no WebGPU adapter (${reason}): running on the CPU backend` };
      }
      if (!gpu.ctx.adapterInfo.isFallbackAdapter) return { backend: gpu };
      const label = adapterLabel(gpu.ctx.adapterInfo);
      gpu.destroy();
      return { backend: fastCpu(opts), note: `the only WebGPU adapter (${label}) runs in software: running on the CPU backend, which is faster here (--backend gpu forces the GPU)` };
    }
  }
}

/** The backend `kind` names, without the note. */
export async function createBackend(kind: BackendKind, opts: BackendOptions = {}): Promise<Backend> {
  return (await chooseBackend(kind, opts)).backend;
}

function fastCpu(opts: BackendOptions): Backend {
  return new FastCpuBackend({ threads: opts.threads ?? nodeThreadCount(), workers: nodeWorkers });
}

/** The system's Vulkan driver when Dawn accepts one, else SwiftShader (node-gpu.ts). */
async function defaultGpu(opts: BackendOptions): Promise<GpuBackend> {
  const gpu = await requestNodeGpu();
  return createGpuBackend(gpu, { maxChunkElements: opts.maxChunkElements, ownsDevice: true });
}

/** The --backend option's value, or `usage`'s error naming the choices. */
export function backendKindArg(value: unknown, usage: (message: string) => Error): BackendKind {
  if (typeof value === 'string' && isBackendKind(value)) return value;
  throw usage(`--backend must be one of ${BACKEND_KINDS.join(', ')}, not "${String(value)}"`);
}
