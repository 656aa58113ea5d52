/** The backend measurement: it times a real analysis (no leaks), and a missing GPU is an error, not a speed. */
import { describe, expect, it } from 'vitest';
import { ReferenceAnalysisOps } from '../../gpu/analysis/reference-ops.ts';
import { CpuBackend } from '../../gpu/cpu-backend.ts';
import { timeAnalysis } from './calibrate.ts';
import { EngineClient, type EnginePort } from './client.ts';
import { EngineHost } from './host.ts';
import type { ToWorker } from './protocol.ts';

describe('measuring the backends', () => {
  it('times the second of two analyses on a backend and leaves no tensor behind', async () => {
    const backend = new CpuBackend();
    const ticks = [10, 35];
    const ms = await timeAnalysis(new ReferenceAnalysisOps(backend), true, () => ticks.shift()!);
    expect(ms).toBe(25);
    expect(backend.liveTensors).toBe(0);
  });

  it('without WebGPU the measurement fails in words instead of giving the GPU a time', async () => {
    const listeners: ((ev: MessageEvent) => void)[] = [];
    const host = new EngineHost({ gpu: undefined, post: (m) => setTimeout(() => listeners.forEach((l) => l({ data: m } as MessageEvent)), 0) });
    const port: EnginePort = {
      postMessage: (m: ToWorker) => setTimeout(() => void host.handle(m), 0),
      addEventListener: (type: string, l: (ev: never) => void) => {
        if (type === 'message') listeners.push(l as (ev: MessageEvent) => void);
      },
    };
    await expect(new EngineClient(port).measureBackends()).rejects.toMatchObject({ name: expect.stringMatching(/^Gpu/) });
  });
});
