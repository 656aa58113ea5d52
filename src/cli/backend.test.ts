/**
 * The CLI's backend choice: `auto` takes the GPU only on a hardware adapter; a software adapter (or
 * none) gives the fast CPU backend with a note; `gpu` forces the GPU on any adapter, with a note
 * when it runs in software.
 */
import { describe, expect, it } from 'vitest';
import { CpuBackend } from '../gpu/cpu-backend.ts';
import { FastCpuBackend } from '../gpu/cpu-fast/fast-backend.ts';
import { GpuBackend } from '../gpu/gpu-backend.ts';
import { backendKindArg, chooseBackend } from './backend.ts';

/** A stand-in GPU backend: only what the choice reads (the adapter) and whether it was released. */
function fakeGpu(isFallbackAdapter: boolean, description: string) {
  const gpu = { ctx: { adapterInfo: { isFallbackAdapter, description, vendor: '', architecture: '', device: '' } }, destroyed: false, destroy() {
    gpu.destroyed = true;
  } };
  return gpu;
}

describe('chooseBackend', () => {
  it('auto: a hardware adapter runs the merge on the GPU, without a note', async () => {
    const gpu = fakeGpu(false, 'NVIDIA H200');
    const chosen = await chooseBackend('auto', { openGpu: async () => gpu as unknown as GpuBackend });
    expect(chosen.backend).toBe(gpu);
    expect(chosen.note).toBeUndefined();
    expect(gpu.destroyed).toBe(false);
  });

  it('auto: a software adapter is released and the fast CPU backend runs, with a note naming the adapter', async () => {
    const gpu = fakeGpu(true, 'SwiftShader Device (Subzero)');
    const chosen = await chooseBackend('auto', { openGpu: async () => gpu as unknown as GpuBackend, threads: 1 });
    try {
      expect(chosen.backend).toBeInstanceOf(FastCpuBackend);
      expect(gpu.destroyed).toBe(true);
      expect(chosen.note).toMatch(/SwiftShader Device \(Subzero\).*runs in software.*--backend gpu forces/);
    } finally {
      chosen.backend.destroy();
    }
  });

  it('auto: no adapter at all gives the CPU backend and says why', async () => {
    const chosen = await chooseBackend('auto', {
      openGpu: async () => {
        throw new Error('navigator.gpu.requestAdapter() found no adapter');
      },
      threads: 1,
    });
    try {
      expect(chosen.backend).toBeInstanceOf(FastCpuBackend);
      expect(chosen.note).toMatch(/no WebGPU adapter \(navigator\.gpu\.requestAdapter\(\) found no adapter\)/);
    } finally {
      chosen.backend.destroy();
    }
  });

  it('gpu: forced even on a software adapter, with the note that the CPU is usually faster', async () => {
    const gpu = fakeGpu(true, 'SwiftShader');
    const chosen = await chooseBackend('gpu', { openGpu: async () => gpu as unknown as GpuBackend });
    expect(chosen.backend).toBe(gpu);
    expect(gpu.destroyed).toBe(false);
    expect(chosen.note).toMatch(/runs in software on the CPU; --backend cpu is usually faster/);
  });

  it('cpu and cpu-reference never open a GPU', async () => {
    const openGpu = async (): Promise<GpuBackend> => {
      throw new Error('must not be called');
    };
    const fast = await chooseBackend('cpu', { openGpu, threads: 1 });
    const reference = await chooseBackend('cpu-reference', { openGpu });
    expect(fast.backend).toBeInstanceOf(FastCpuBackend);
    expect(reference.backend).toBeInstanceOf(CpuBackend);
    fast.backend.destroy();
    reference.backend.destroy();
  });

  it('auto on this machine: the real adapter decides (SwiftShader here → CPU; a hardware GPU → GPU)', async () => {
    const chosen = await chooseBackend('auto', { threads: 1 });
    try {
      if (chosen.backend instanceof GpuBackend) {
        expect(chosen.backend.ctx.adapterInfo.isFallbackAdapter).toBe(false);
      } else {
        expect(chosen.backend).toBeInstanceOf(FastCpuBackend);
        expect(chosen.note).toMatch(/runs in software|no WebGPU adapter/);
      }
    } finally {
      chosen.backend.destroy();
    }
  });
});

describe('backendKindArg', () => {
  it('accepts the four kinds and names them when refusing another', () => {
    const usage = (m: string) => new Error(m);
    for (const k of ['auto', 'gpu', 'cpu', 'cpu-reference']) expect(backendKindArg(k, usage)).toBe(k);
    expect(() => backendKindArg('cuda', usage)).toThrow('--backend must be one of auto, gpu, cpu, cpu-reference, not "cuda"');
  });
});
