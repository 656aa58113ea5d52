/**
 * Analysis through the worker protocol, in-process: EngineClient.analyze ↔ EngineHost over a fake
 * port, golden checkpoints as dropped Blobs, the CPU backend. The result equals a direct
 * analyzeMerge call; progress never goes back; a second run reuses the model statistics; cancel
 * and failures answer as the protocol says; a cancelled or superseded run stops mid-way, so only
 * the newest request is computed and answered.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseRecipe } from '../../core/recipe/parse.ts';
import type { Recipe } from '../../core/recipe/types.ts';
import { openModel } from '../../core/safetensors/model.ts';
import { blobFileTree } from '../../core/sources/blob.ts';
import { analyzeMerge } from '../../gpu/analysis/analyze.ts';
import { ReferenceAnalysisOps } from '../../gpu/analysis/reference-ops.ts';
import type { AnalysisProgress } from '../../gpu/analysis/types.ts';
import { CpuBackend } from '../../gpu/cpu-backend.ts';
import { methodLookup } from '../../gpu/methods/index.ts';
import { EngineClient, EngineError, type AnalysisOutcome, type EnginePort } from './client.ts';
import { EngineHost } from './host.ts';
import type { FromWorker, SourceDescription, ToWorker } from './protocol.ts';

const MODELS = resolve(__dirname, '../../../tests/fixtures/golden/models/llama-bf16');
const REFS = ['base', 'expert1', 'expert2', 'expert3'];

function folderSource(name: string): Extract<SourceDescription, { kind: 'files' }> {
  const dir = join(MODELS, name);
  return { kind: 'files', name, files: readdirSync(dir).map((path) => ({ path, blob: new Blob([readFileSync(join(dir, path))]) })) };
}

function connect() {
  const listeners: ((ev: MessageEvent) => void)[] = [];
  const received: FromWorker[] = [];
  // The analysis keeps one backend between runs: this one, so a test can count its tensors.
  const backend = new CpuBackend();
  const host = new EngineHost({
    gpu: undefined,
    createCpuBackend: () => backend,
    progressIntervalMs: 0,
    post: (m) => {
      received.push(m);
      setTimeout(() => listeners.forEach((l) => l({ data: m } as MessageEvent)), 0);
    },
  });
  const port: EnginePort = {
    postMessage: (m: ToWorker) => setTimeout(() => void host.handle(m), 0),
    addEventListener: (type: string, l: (ev: never) => void) => {
      if (type === 'message') listeners.push(l as (ev: MessageEvent) => void);
    },
  };
  return { client: new EngineClient(port), received, backend };
}

/** Forget the models (the worker then releases what the analysis kept resident) and count the tensors left. */
async function tensorsLeftAfterForgetting(c: Awaited<ReturnType<typeof opened>>): Promise<number> {
  for (const ref of REFS) c.client.forget(ref);
  await new Promise((resolve) => setTimeout(resolve, 20));
  return c.backend.liveTensors;
}

const recipe = (density: number): Recipe =>
  parseRecipe(
    `models:
  - {model: expert1, parameters: {weight: 1, density: ${density}}}
  - {model: expert2, parameters: {weight: 0.6, density: ${density}}}
  - {model: expert3, parameters: {weight: 0.3, density: ${density}}}
merge_method: ties
base_model: base
`,
    methodLookup,
  );

async function opened() {
  const c = connect();
  for (const ref of REFS) await c.client.open(ref, folderSource(ref));
  return c;
}

describe('analysis through the engine worker', () => {
  it('answers with the numbers analyzeMerge gives, with progress that never goes back', async () => {
    const { client } = await opened();
    const progress: AnalysisProgress[] = [];
    const run = client.analyze({ recipe: recipe(0.4), backend: 'cpu', seed: 3 }, (p) => progress.push(p));
    const outcome = await run.outcome;
    expect(outcome.status).toBe('done');
    if (outcome.status !== 'done') return;

    const sources = new Map(
      await Promise.all(REFS.map(async (ref) => [ref, await openModel(blobFileTree(ref, folderSource(ref).files), { id: ref })] as const)),
    );
    const direct = await analyzeMerge({ recipe: recipe(0.4), sources, ops: new ReferenceAnalysisOps(new CpuBackend()), options: { seed: 3 } });
    // The worker's cache key also names each opened source; everything else is the same.
    const comparable = (r: typeof direct) => ({ ...r, seconds: 0, modelStats: { ...r.modelStats!, key: '' } });
    expect(comparable(outcome.result)).toEqual(comparable(direct));

    expect(progress.length).toBeGreaterThan(0);
    for (let i = 1; i < progress.length; i++) expect(progress[i].tensorsDone).toBeGreaterThanOrEqual(progress[i - 1].tensorsDone);
    expect(progress.at(-1)!.tensorsDone).toBe(progress.at(-1)!.tensorsTotal);
  });

  it('reuses the model statistics when only the recipe changed, and sends them to the page once', async () => {
    const { client, received } = await opened();
    const first = await client.analyze({ recipe: recipe(0.6), backend: 'cpu', seed: 0 }, () => undefined).outcome;
    const parts: AnalysisProgress['parts'][] = [];
    const second = await client.analyze({ recipe: recipe(0.2), backend: 'cpu', seed: 0 }, (p) => parts.push(p.parts)).outcome;
    if (first.status !== 'done' || second.status !== 'done') throw new Error('analysis did not finish');
    expect(parts.every((p) => !p.model && p.recipe)).toBe(true);
    expect(second.result.modelStats).toEqual(first.result.modelStats);
    // The second message refers to the statistics the page holds instead of carrying them again.
    const done = received.filter((m) => m.kind === 'analysis-done');
    expect(done.map((m) => [m.result.modelStats === null, m.sameModelStats])).toEqual([
      [false, undefined],
      [true, first.result.modelStats!.key],
    ]);
    // Lower densities keep less and leave fewer conflicts after trimming.
    expect(second.result.recipeStats!.whole.keptFraction![0]).toBeLessThan(first.result.recipeStats!.whole.keptFraction![0]);
    expect(second.result.recipeStats!.whole.conflictAll!).toBeLessThan(first.result.recipeStats!.whole.conflictAll!);
  });

  /** What the engine answered for each analysis job from `from` on, in order. */
  const answers = (received: readonly FromWorker[], from: number) =>
    received.slice(from).flatMap((m) => (m.kind === 'analysis-done' ? [[m.jobId, 'done']] : m.kind === 'analysis-failed' ? [[m.jobId, m.cancelled ? 'cancelled' : 'failed']] : []));
  /** The densities the answered numbers were computed for. */
  const densities = (outcome: AnalysisOutcome) =>
    outcome.status === 'done' ? [...new Set(outcome.result.recipeStats!.tensors.flatMap((t) => t.params.perModel.map((p) => p.density)))] : null;

  // A re-run whose inputs are resident reads nothing: before the engine let messages in between its
  // steps, each run held the worker to its end, the cancels queued behind it came too late, and every
  // value of a slider drag was computed and answered in turn.
  it('a run cancelled while a newer one is posted (as the runner does during a drag) stops: only the newest value is computed', async () => {
    const c = await opened();
    const { client } = c;
    await client.analyze({ recipe: recipe(0.6), backend: 'cpu', seed: 0 }, () => undefined).outcome;
    const from = c.received.length;
    const runs = [];
    for (const density of [0.5, 0.4, 0.3]) {
      runs.at(-1)?.cancel();
      runs.push(client.analyze({ recipe: recipe(density), backend: 'cpu', seed: 0 }, () => undefined));
    }
    const outcomes = await Promise.all(runs.map((r) => r.outcome));
    expect(outcomes.map((o) => o.status)).toEqual(['cancelled', 'cancelled', 'done']);
    expect(densities(outcomes[2])).toEqual([0.3]);
    expect(answers(c.received, from)).toEqual([
      [runs[0].jobId, 'cancelled'],
      [runs[1].jobId, 'cancelled'],
      [runs[2].jobId, 'done'],
    ]);
    // A run stopped mid-way leaves no tensor behind (once the resident ones are let go).
    expect(await tensorsLeftAfterForgetting(c)).toBe(0);
  });

  it('a newer request supersedes a run the page did not cancel: the engine runs one analysis at a time, the newest', async () => {
    const c = await opened();
    const { client } = c;
    await client.analyze({ recipe: recipe(0.6), backend: 'cpu', seed: 0 }, () => undefined).outcome;
    const from = c.received.length;
    const runs = [0.5, 0.4, 0.3].map((density) => client.analyze({ recipe: recipe(density), backend: 'cpu', seed: 0 }, () => undefined));
    const outcomes = await Promise.all(runs.map((r) => r.outcome));
    expect(outcomes.map((o) => o.status)).toEqual(['cancelled', 'cancelled', 'done']);
    expect(densities(outcomes[2])).toEqual([0.3]);
    expect(answers(c.received, from).map(([, a]) => a)).toEqual(['cancelled', 'cancelled', 'done']);
    // The next run after the superseded ones still reuses what they left resident, and answers.
    const again = await client.analyze({ recipe: recipe(0.2), backend: 'cpu', seed: 0 }, () => undefined).outcome;
    expect(densities(again)).toEqual([0.2]);
    expect(await tensorsLeftAfterForgetting(c)).toBe(0);
  });

  it('cancels with the jobId, and reports failures with the error class', async () => {
    const { client, received } = await opened();
    const run = client.analyze({ recipe: recipe(0.5), backend: 'cpu', seed: 0 }, () => undefined);
    run.cancel();
    expect(await run.outcome).toEqual({ status: 'cancelled' });
    expect(received.some((m) => m.kind === 'analysis-failed' && m.cancelled)).toBe(true);

    const missing = parseRecipe('models:\n  - {model: nowhere, parameters: {weight: 1}}\nmerge_method: task_arithmetic\nbase_model: base\n', methodLookup);
    const err = await client.analyze({ recipe: missing, backend: 'cpu', seed: 0 }, () => undefined).outcome.catch((e) => e);
    expect(err).toBeInstanceOf(EngineError);
    expect(err.name).toBe('MergeInputError');
    expect(err.message).toMatch(/"nowhere" is not loaded/);

    const noGpu = await client.analyze({ recipe: recipe(0.5), backend: 'gpu', seed: 0 }, () => undefined).outcome.catch((e) => e);
    expect(noGpu).toBeInstanceOf(EngineError);
  });
});
