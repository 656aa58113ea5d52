/**
 * The page's side of the worker's jobs (merge, analysis, scores, LoRA export) with a fake port:
 * progress reaches the job's listener, `-done` resolves, `-failed` resolves cancelled or rejects with
 * the worker's error, cancel asks the worker only while the job runs, and a crashed worker fails
 * every running job of every kind.
 */
import { describe, expect, it } from 'vitest';
import type { Recipe } from '../../core/recipe/types.ts';
import { EngineClient, EngineError, type EnginePort } from './client.ts';
import type { FromWorker, ToWorker } from './protocol.ts';

class FakePort implements EnginePort {
  readonly sent: ToWorker[] = [];
  #onMessage: ((ev: MessageEvent) => void) | null = null;
  #onError: ((ev: Event) => void) | null = null;

  postMessage(message: ToWorker): void {
    this.sent.push(message);
  }

  addEventListener(type: 'message' | 'error', listener: (ev: never) => void): void {
    if (type === 'message') this.#onMessage = listener as (ev: MessageEvent) => void;
    else this.#onError = listener as (ev: Event) => void;
  }

  reply(msg: FromWorker): void {
    this.#onMessage!({ data: msg } as MessageEvent);
  }

  crash(message: string): void {
    this.#onError!({ message } as unknown as Event);
  }
}

const recipe = { merge_method: 'linear', models: [] } as unknown as Recipe;
const failure = { name: 'MergeInputError', message: 'tensor x: shapes differ' };

/** One job of each kind, started on `client`, with the progress each listener saw. */
function startAll(client: EngineClient) {
  const seen: unknown[] = [];
  const merge = client.merge({ recipe } as never, (p) => seen.push(['merge', p]), (p) => seen.push(['source', p]));
  const analysis = client.analyze({ recipe } as never, (p) => seen.push(['analysis', p]));
  const score = client.score({ recipe } as never, (p) => seen.push(['score', p]));
  const lora = client.lora({ recipe } as never, (p) => seen.push(['lora', p]));
  return { seen, merge, analysis, score, lora };
}

describe('EngineClient jobs', () => {
  it('each job posts its request with its own id; progress goes to its listener; done resolves with the result', async () => {
    const port = new FakePort();
    const { seen, merge, analysis, score, lora } = startAll(new EngineClient(port));
    expect(port.sent.map((m) => m.kind)).toEqual(['merge', 'analyze', 'score', 'lora']);
    const ids = [merge, analysis, score, lora].map((h) => h.jobId);
    expect(new Set(ids).size).toBe(4);
    expect(port.sent.map((m) => (m as { jobId: number }).jobId)).toEqual(ids);

    port.reply({ kind: 'merge-progress', jobId: merge.jobId, progress: { step: 1 } as never });
    port.reply({ kind: 'source-progress', jobId: merge.jobId, progress: { ref: 'a' } as never });
    port.reply({ kind: 'analysis-progress', jobId: analysis.jobId, progress: { step: 2 } as never });
    port.reply({ kind: 'score-progress', jobId: score.jobId, progress: { step: 3 } as never });
    port.reply({ kind: 'lora-progress', jobId: lora.jobId, progress: { step: 4 } as never });
    // Another job's id reaches no listener.
    port.reply({ kind: 'score-progress', jobId: 999, progress: { step: 5 } as never });
    expect(seen).toEqual([
      ['merge', { step: 1 }],
      ['source', { ref: 'a' }],
      ['analysis', { step: 2 }],
      ['score', { step: 3 }],
      ['lora', { step: 4 }],
    ]);

    port.reply({ kind: 'merge-done', jobId: merge.jobId, result: { tensors: 3 } as never, download: null });
    port.reply({ kind: 'analysis-done', jobId: analysis.jobId, result: { modelStats: null } as never });
    port.reply({ kind: 'score-done', jobId: score.jobId, result: { entries: [] } as never });
    port.reply({ kind: 'lora-done', jobId: lora.jobId, result: { errors: [0.5] } as never });
    expect(await merge.outcome).toEqual({ status: 'done', result: { tensors: 3 }, download: null });
    expect(await analysis.outcome).toEqual({ status: 'done', result: { modelStats: null } });
    expect(await score.outcome).toEqual({ status: 'done', result: { entries: [] } });
    expect(await lora.outcome).toEqual({ status: 'done', result: { errors: [0.5] } });

    // Ended jobs: cancel asks nothing, late progress reaches nobody.
    const before = port.sent.length;
    for (const h of [merge, analysis, score, lora]) h.cancel();
    expect(port.sent.length).toBe(before);
    port.reply({ kind: 'lora-progress', jobId: lora.jobId, progress: { step: 6 } as never });
    expect(seen).toHaveLength(5);
  });

  it('cancel asks the worker while the job runs; -failed resolves cancelled or rejects with the named error', async () => {
    const port = new FakePort();
    const { merge, analysis, score, lora } = startAll(new EngineClient(port));
    score.cancel();
    expect(port.sent.at(-1)).toEqual({ kind: 'cancel', jobId: score.jobId });

    port.reply({ kind: 'score-failed', jobId: score.jobId, error: { name: 'ScoreCancelledError', message: 'scoring cancelled' }, cancelled: true });
    port.reply({ kind: 'merge-failed', jobId: merge.jobId, error: failure, cancelled: false });
    port.reply({ kind: 'analysis-failed', jobId: analysis.jobId, error: { name: 'Cancelled', message: 'superseded' }, cancelled: true });
    port.reply({ kind: 'lora-failed', jobId: lora.jobId, error: failure, cancelled: false });
    expect(await score.outcome).toEqual({ status: 'cancelled' });
    expect(await analysis.outcome).toEqual({ status: 'cancelled' });
    for (const h of [merge, lora]) {
      const err = await h.outcome.then(
        () => null,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(EngineError);
      expect(err).toMatchObject({ name: 'MergeInputError', message: 'tensor x: shapes differ' });
    }
  });

  it('a crashed worker fails every running job of every kind, and only those', async () => {
    const port = new FakePort();
    const client = new EngineClient(port);
    const { merge, analysis, score, lora } = startAll(client);
    port.reply({ kind: 'score-done', jobId: score.jobId, result: { entries: [] } as never });
    port.crash('worker script failed to load');
    expect(await score.outcome).toEqual({ status: 'done', result: { entries: [] } });
    for (const h of [merge, analysis, lora]) {
      await expect(h.outcome).rejects.toMatchObject({ name: 'WorkerError', message: 'worker script failed to load' });
    }
  });
});
