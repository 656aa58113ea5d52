/**
 * The backends the factorization tests run on: the CPU reference, the GPU (one device for the test
 * file), and the GPU with 1000-element chunks (a 4097×7 matrix spans 29 buffers). Each test asks
 * for them by name after beforeAll has run; afterAll checks that no tensor was left behind.
 */
import { afterAll, beforeAll, expect } from 'vitest';
import type { Backend } from '../../src/gpu/backend.ts';
import { GpuContext } from '../../src/gpu/context.ts';
import { CpuBackend } from '../../src/gpu/cpu-backend.ts';
import { createGpuBackend, type GpuBackend } from '../../src/gpu/gpu-backend.ts';
import { nodeGpu } from '../../src/gpu/node-gpu.ts';

export type BackendName = 'cpu' | 'gpu' | 'gpu-chunked';
export const BACKEND_NAMES: readonly BackendName[] = ['cpu', 'gpu'];

export function linalgBackends(): (name: BackendName) => Backend & { liveTensors: number } {
  let ctx: GpuContext | undefined;
  const made = new Map<BackendName, Backend & { liveTensors: number }>();
  beforeAll(async () => {
    ctx = await GpuContext.create(nodeGpu());
    made.set('cpu', new CpuBackend());
    made.set('gpu', createGpuBackend(ctx));
    made.set('gpu-chunked', createGpuBackend(ctx, { maxChunkElements: 1000 }) as GpuBackend);
  });
  afterAll(() => {
    for (const [name, b] of made) expect(b.liveTensors, `${name}: tensors left alive`).toBe(0);
    for (const b of made.values()) b.destroy();
    ctx?.destroy();
  });
  return (name) => {
    const b = made.get(name);
    if (!b) throw new Error(`backend ${name} not set up (call inside a test)`);
    return b;
  };
}
