/**
 * ScoreRunner: debounced scheduling, one run at a time (a new request cancels the running one and its
 * late answer is ignored), the same request not run twice, cancel, failures, and the latency.
 */
import { describe, expect, it } from 'vitest';
import type { ScoreHandle, ScoreOutcome } from '../worker/client.ts';
import { EngineError } from '../worker/client.ts';
import type { ScoreProgressInfo, ScoreRequest, ScoreResult } from '../worker/score-protocol.ts';
import { ScoreRunner } from './score-runner.ts';

function fakeEngine() {
  const runs: { request: ScoreRequest; progress(p: ScoreProgressInfo): void; settle(o: ScoreOutcome): void; fail(e: Error): void; cancelled: boolean }[] = [];
  return {
    runs,
    score(request: ScoreRequest, progress: (p: ScoreProgressInfo) => void): ScoreHandle {
      let settle!: (o: ScoreOutcome) => void;
      let fail!: (e: Error) => void;
      const outcome = new Promise<ScoreOutcome>((res, rej) => ((settle = res), (fail = rej)));
      const run = { request, progress, settle, fail, cancelled: false };
      runs.push(run);
      return { jobId: runs.length, outcome, cancel: () => ((run.cancelled = true), settle({ status: 'cancelled' })) };
    },
  };
}

const request = (seed: number): ScoreRequest => ({ recipe: null, inputs: [], backend: 'cpu', seed, tasks: null, text: 'x', weightLimit: 1 });
const result = (seconds: number): ScoreResult => ({ entries: [], seconds, mergeSeconds: null });
const tick = (ms = 0) => new Promise((r) => setTimeout(r, ms));

describe('ScoreRunner', () => {
  it('debounces, runs the last request, ignores a superseded answer, and does not repeat an answered one', async () => {
    const engine = fakeEngine();
    const runner = new ScoreRunner(engine, { debounceMs: 20 });
    runner.schedule('a', request(1));
    runner.schedule('b', request(2));
    expect(runner.getState().status.status).toBe('scheduled');
    await tick(40);
    expect(engine.runs.map((r) => r.request.seed)).toEqual([2]);
    engine.runs[0].progress({ label: 'merge', phase: 'scoring', index: 0, count: 1, done: 1, total: 2 });
    expect(runner.getState().status).toMatchObject({ status: 'running', progress: { done: 1, total: 2 } });
    runner.schedule('c', request(3), { now: true });
    expect(engine.runs[0].cancelled).toBe(true);
    await tick(5);
    engine.runs[1].settle({ status: 'done', result: result(1) });
    await tick();
    expect(runner.getState()).toMatchObject({ status: { status: 'done' }, resultKey: 'c', result: { seconds: 1 } });
    expect(runner.getState().latencyMs).toBeGreaterThan(0);
    runner.schedule('c', request(3), { now: true });
    await tick(5);
    expect(engine.runs).toHaveLength(2);
  });

  it('cancel and failures', async () => {
    const engine = fakeEngine();
    const runner = new ScoreRunner(engine, { debounceMs: 0 });
    runner.schedule('a', request(1));
    await tick(5);
    runner.cancel();
    await tick();
    expect(runner.getState().status.status).toBe('cancelled');
    runner.schedule('a', request(1));
    await tick(5);
    engine.runs[1].fail(new EngineError({ name: 'ModelTooLargeError', message: 'm is too large to run here' }));
    await tick();
    expect(runner.getState().status).toEqual({ status: 'failed', error: { name: 'ModelTooLargeError', message: 'm is too large to run here' } });
    // A failed request can be asked again.
    runner.schedule('a', request(1));
    await tick(5);
    expect(engine.runs).toHaveLength(3);
  });
});
