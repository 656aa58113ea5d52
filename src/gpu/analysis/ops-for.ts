/**
 * The analysis ops for a backend, chosen in one place: WGSL kernels on the GPU backend, typed-array
 * loops over the fast CPU backend's storage, and the plain TypeScript reference on any other backend
 * (the CPU reference backend, test stand-ins).
 */
import type { Backend } from '../backend.ts';
import { FastCpuBackend } from '../cpu-fast/fast-backend.ts';
import { GpuBackend } from '../gpu-backend.ts';
import { FastAnalysisOps } from './fast-ops.ts';
import { GpuAnalysisOps } from './gpu-ops.ts';
import type { AnalysisOps } from './ops.ts';
import { ReferenceAnalysisOps } from './reference-ops.ts';

export function analysisOpsFor(backend: Backend): AnalysisOps {
  if (backend instanceof GpuBackend) return new GpuAnalysisOps(backend);
  if (backend instanceof FastCpuBackend) return new FastAnalysisOps(backend);
  return new ReferenceAnalysisOps(backend);
}
