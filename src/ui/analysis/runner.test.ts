/** AnalysisRunner: one run at a time, debounced scheduling, stale answers ignored, failures kept apart. */
import { describe, expect, it } from 'vitest';
import type { Recipe } from '../../core/recipe/types.ts';
import type { AnalysisProgress, AnalysisResult } from '../../gpu/analysis/types.ts';
import { EngineError, type AnalysisHandle, type AnalysisOutcome } from '../worker/client.ts';
import type { AnalysisRequest } from '../worker/protocol.ts';
import { AnalysisRunner, sameRequest } from './runner.ts';

interface FakeRun {
  request: AnalysisRequest;
  progress(p: AnalysisProgress): void;
  resolve(o: AnalysisOutcome): void;
  reject(e: unknown): void;
  cancelled: boolean;
}

function fakeEngine() {
  const runs: FakeRun[] = [];
  let nextId = 1;
  return {
    runs,
    analyze(request: AnalysisRequest, onProgress: (p: AnalysisProgress) => void): AnalysisHandle {
      let resolve!: (o: AnalysisOutcome) => void;
      let reject!: (e: unknown) => void;
      const outcome = new Promise<AnalysisOutcome>((a, b) => {
        resolve = a;
        reject = b;
      });
      const run: FakeRun = { request, progress: onProgress, resolve, reject, cancelled: false };
      runs.push(run);
      return {
        jobId: nextId++,
        outcome,
        cancel: () => {
          run.cancelled = true;
          resolve({ status: 'cancelled' });
        },
      };
    },
  };
}

/** A fake clock for the debounce. */
function clock() {
  let now = 0;
  const timers = new Map<number, { at: number; f: () => void }>();
  let id = 0;
  return {
    setTimeout: (f: () => void, ms: number) => {
      timers.set(++id, { at: now + ms, f });
      return id;
    },
    clearTimeout: (t: unknown) => void timers.delete(t as number),
    advance(ms: number) {
      now += ms;
      for (const [k, t] of [...timers]) {
        if (t.at <= now) {
          timers.delete(k);
          t.f();
        }
      }
    },
  };
}

const recipe = (density: number) => ({ mergeMethod: 'ties', models: [{ model: 'a', parameters: { weight: 1, density } }], baseModel: 'b', parameters: {} }) as Recipe;
const req = (density: number): AnalysisRequest => ({ recipe: recipe(density), backend: 'cpu', seed: 0 });
const result = (tag: number) => ({ seconds: tag }) as unknown as AnalysisResult;
const tick = () => new Promise((r) => setTimeout(r, 0));

describe('AnalysisRunner', () => {
  it('shows progress, then the result; a new run cancels the old and its late answer is ignored', async () => {
    const engine = fakeEngine();
    const runner = new AnalysisRunner(engine);
    const seen: string[] = [];
    runner.subscribe(() => seen.push(runner.getState().status.status));
    runner.run(req(0.5));
    expect(runner.getState().status).toEqual({ status: 'running', progress: null });
    const p: AnalysisProgress = { tensorsDone: 1, tensorsTotal: 2, currentTensor: 't', parts: { model: true, recipe: true } };
    engine.runs[0].progress(p);
    expect(runner.getState().status).toEqual({ status: 'running', progress: p });

    runner.run(req(0.3));
    expect(engine.runs[0].cancelled).toBe(true);
    engine.runs[0].progress(p); // late progress of the cancelled run
    engine.runs[1].resolve({ status: 'done', result: result(2) });
    await tick();
    expect(runner.getState().status).toEqual({ status: 'done' });
    expect(runner.getState().result).toEqual(result(2));
    expect(runner.getState().resultRequest).toEqual(req(0.3));
    expect(seen.at(-1)).toBe('done');
  });

  it('keeps the last result when a run fails or is cancelled', async () => {
    const engine = fakeEngine();
    const runner = new AnalysisRunner(engine);
    runner.run(req(0.5));
    engine.runs[0].resolve({ status: 'done', result: result(1) });
    await tick();
    runner.run(req(0.4));
    engine.runs[1].reject(new EngineError({ name: 'MethodError', message: 'ties: density 0 keeps nothing' }));
    await tick();
    expect(runner.getState().status).toEqual({ status: 'failed', error: { name: 'MethodError', message: 'ties: density 0 keeps nothing' } });
    expect(runner.getState().result).toEqual(result(1));
    runner.run(req(0.4));
    runner.cancel();
    await tick();
    expect(runner.getState().status).toEqual({ status: 'done' });
  });

  it('debounces scheduled runs: only the last of a burst runs', () => {
    const engine = fakeEngine();
    const c = clock();
    const runner = new AnalysisRunner(engine, { debounceMs: 100, setTimeout: c.setTimeout, clearTimeout: c.clearTimeout });
    for (const d of [0.1, 0.2, 0.3]) {
      runner.schedule(req(d));
      c.advance(60);
    }
    expect(engine.runs).toHaveLength(0);
    c.advance(50);
    expect(engine.runs.map((r) => r.request)).toEqual([req(0.3)]);
    runner.schedule(req(0.9));
    runner.run(req(0.8)); // a direct run replaces the scheduled one
    c.advance(200);
    expect(engine.runs.map((r) => r.request)).toEqual([req(0.3), req(0.8)]);
  });

  it('reports an engine without analyze as a failure', () => {
    const runner = new AnalysisRunner({});
    runner.run(req(0.5));
    expect(runner.getState().status).toMatchObject({ status: 'failed', error: { name: 'AnalysisUnavailableError' } });
  });

  it('knows which request it works towards: scheduled, running, answered; a cancel falls back to the answered one', async () => {
    const engine = fakeEngine();
    const c = clock();
    const runner = new AnalysisRunner(engine, { debounceMs: 100, setTimeout: c.setTimeout, clearTimeout: c.clearTimeout });
    runner.run(req(0.5));
    expect(sameRequest(runner.getState().current, req(0.5))).toBe(true);
    engine.runs[0].resolve({ status: 'done', result: result(1) });
    await tick();
    runner.schedule(req(0.6));
    expect(sameRequest(runner.getState().current, req(0.6))).toBe(true);
    runner.cancel();
    expect(sameRequest(runner.getState().current, req(0.5))).toBe(true);
    runner.schedule(req(0.7));
    c.advance(100);
    runner.cancel();
    await tick();
    expect(sameRequest(runner.getState().current, req(0.5))).toBe(true);
    expect(sameRequest(req(0.5), { ...req(0.5) })).toBe(true);
    expect(sameRequest(req(0.5), req(0.6))).toBe(false);
  });

  it('clear forgets result and failure; dismissError shows the last result again', async () => {
    const engine = fakeEngine();
    const runner = new AnalysisRunner(engine);
    runner.run(req(0.5));
    engine.runs[0].resolve({ status: 'done', result: result(1) });
    await tick();
    runner.run(req(0.4));
    engine.runs[1].reject(new EngineError({ name: 'MergeInputError', message: 'ties needs a base_model' }));
    await tick();
    runner.dismissError();
    expect(runner.getState()).toMatchObject({ status: { status: 'done' }, result: result(1) });
    expect(sameRequest(runner.getState().current, req(0.5))).toBe(true);
    runner.clear();
    expect(runner.getState()).toEqual({ status: { status: 'idle' }, result: null, resultRequest: null, current: null });
  });
});
