/** The backend measurement: it times a real analysis as a slider re-runs it (no leaks), and a missing GPU is an error, not a speed. */
import { describe, expect, it } from 'vitest';
import type { AnalysisOps } from '../../gpu/analysis/ops.ts';
import { ReferenceAnalysisOps } from '../../gpu/analysis/reference-ops.ts';
import { CpuBackend } from '../../gpu/cpu-backend.ts';
import { timeAnalysis } from './calibrate.ts';
import { EngineClient, type EnginePort } from './client.ts';
import { EngineHost } from './host.ts';
import type { ToWorker } from './protocol.ts';

describe('measuring the backends', () => {
  it("times a slider re-run (one density moved, the worker's caches kept) after an untimed run, and leaves no tensor behind", async () => {
    const backend = new CpuBackend();
    const ops = new ReferenceAnalysisOps(backend);
    // Histograms taken before and during the timed run: a re-run from the caches takes only the moved expert's.
    const histograms = { untimed: 0, timed: 0 };
    let timing = false;
    const counting: AnalysisOps = {
      backend,
      signCounts: (xs, flips) => ops.signCounts(xs, flips),
      magnitudeHistograms: (xs) => {
        histograms[timing ? 'timed' : 'untimed'] += xs.length;
        return ops.magnitudeHistograms(xs);
      },
      electedContributionNormsSq: (wds, weights, normalize) => ops.electedContributionNormsSq(wds, weights, normalize),
    };
    const ticks = [10, 35];
    const ms = await timeAnalysis(counting, () => ((timing = !timing), ticks.shift()!));
    expect(ms).toBe(25);
    // 12 analyzed tensors: the untimed run takes each expert's task vector and kept entries (6 per
    // tensor); the timed one only the moved expert's kept entries.
    expect(histograms).toEqual({ untimed: 72, timed: 12 });
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
