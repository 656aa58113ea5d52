/**
 * The scoreboard's worker side end to end, in-process (EngineClient ↔ EngineHost, dropped files as
 * Blobs, the CPU backend): the inputs and the merge get the library's numbers (evaluateModel, the
 * CLI's path), inputs are cached across slider moves while the merge is re-scored, a model too large
 * for the tab is refused naming the limit, and scoring can be cancelled.
 */
import { describe, expect, it } from 'vitest';
import { parseRecipe } from '../../core/recipe/parse.ts';
import { openModel } from '../../core/safetensors/model.ts';
import { memoryFileTree } from '../../core/sources/memory.ts';
import { CpuBackend } from '../../gpu/cpu-backend.ts';
import { methodLookup } from '../../gpu/methods/index.ts';
import { evaluateModel, type TaskSet } from '../../gpu/model/eval.ts';
import { mergeInMemory } from '../../gpu/model/in-memory-merge.ts';
import { CHAR_VOCAB, tinyModelFiles, type TinyModelSpec } from '../../gpu/model/testing.testutil.ts';
import { EngineClient, type EnginePort } from './client.ts';
import { EngineHost } from './host.ts';
import type { SourceDescription, ToWorker } from './protocol.ts';
import type { ScoreProgressInfo, ScoreRequest } from './score-protocol.ts';

const SPEC: TinyModelSpec = { vocab: CHAR_VOCAB.length, tokenizer: true, hidden: 32, intermediate: 48, layers: 2, heads: 4, kvHeads: 2, seed: 4, dtype: 'BF16' };
const FILES = {
  './base': tinyModelFiles(SPEC),
  './a': tinyModelFiles({ ...SPEC, delta: { seed: 1, scale: 0.25 } }),
  './b': tinyModelFiles({ ...SPEC, delta: { seed: 2, scale: 0.25 } }),
};
const TASKS: TaskSet = {
  skills: [
    { name: 'add', examples: [{ prompt: '1+2=', answer: '3' }, { prompt: '20+22=', answer: '42' }] },
    { name: 'rev', examples: [{ prompt: 'rev:abc=', answer: 'cba' }] },
  ],
};
const recipeYaml = (wa: number) => `models:\n  - model: ./a\n    parameters: {weight: ${wa}}\n  - model: ./b\n    parameters: {weight: 0.5}\nmerge_method: task_arithmetic\nbase_model: ./base\ndtype: float32\n`;

function connect() {
  const listeners: ((ev: MessageEvent) => void)[] = [];
  const host = new EngineHost({ gpu: undefined, post: (m) => setTimeout(() => listeners.forEach((l) => l({ data: m } as MessageEvent)), 0) });
  const port: EnginePort = {
    postMessage: (m: ToWorker) => setTimeout(() => void host.handle(m), 0),
    addEventListener: (type: string, l: (ev: never) => void) => {
      if (type === 'message') listeners.push(l as (ev: MessageEvent) => void);
    },
  };
  return new EngineClient(port);
}

function dropped(ref: keyof typeof FILES): SourceDescription {
  return { kind: 'files', name: ref, files: Object.entries(FILES[ref]).map(([path, bytes]) => ({ path, blob: new Blob([bytes as Uint8Array<ArrayBuffer>]) })) };
}

async function library(wa: number) {
  const backend = new CpuBackend();
  const sources = new Map(await Promise.all(Object.keys(FILES).map(async (ref) => [ref, await openModel(memoryFileTree(ref, FILES[ref as keyof typeof FILES]), { id: ref })] as const)));
  const recipe = parseRecipe(recipeYaml(wa), methodLookup, { file: 'r.yml' });
  const merged = await mergeInMemory({ recipe, sources, backend }, 'merge');
  const run = (s: Parameters<typeof evaluateModel>[0]) => evaluateModel(s, backend, { tasks: TASKS, text: 'copy:ab=ab1+1=2' });
  return { base: await run(sources.get('./base')!), a: await run(sources.get('./a')!), merge: await run(merged) };
}

describe('scoreboard in the worker', () => {
  it('scores inputs and the merge like the library, caches inputs across recipe changes, refuses what the tab cannot hold', async () => {
    const client = connect();
    for (const ref of Object.keys(FILES) as (keyof typeof FILES)[]) await client.open(ref, dropped(ref));
    const request = (wa: number, weightLimit = 2 ** 30): ScoreRequest => ({
      recipe: parseRecipe(recipeYaml(wa), methodLookup, { file: 'r.yml' }),
      inputs: [{ ref: './base', label: 'base' }, { ref: './a', label: 'a' }],
      backend: 'cpu',
      seed: 0,
      tasks: TASKS,
      text: 'copy:ab=ab1+1=2',
      weightLimit,
    });
    const progress: ScoreProgressInfo[] = [];
    const first = await client.score!(request(1), (p) => progress.push(p)).outcome;
    if (first.status !== 'done') throw new Error('cancelled');
    const want = await library(1);
    const [base, a, merge] = first.result.entries;
    expect([base.label, a.label, merge.label]).toEqual(['base', 'a', 'merge']);
    expect(base.report!.skills).toEqual(want.base.skills);
    expect(base.report!.perplexity).toEqual(want.base.perplexity);
    expect(a.report!.skills).toEqual(want.a.skills);
    expect(merge.report!.skills).toEqual(want.merge.skills);
    expect(merge.report!.perplexity).toEqual(want.merge.perplexity);
    expect(first.result.mergeSeconds).toBeGreaterThan(0);
    expect(progress.some((p) => p.phase === 'merging' && p.label === 'merge')).toBe(true);
    expect(progress.at(-1)).toMatchObject({ label: 'merge', phase: 'scoring', index: 2, count: 3 });

    // A slider move: the inputs come from the cache, the merge is scored again (and differs).
    const second = await client.score!(request(0.2), () => undefined).outcome;
    if (second.status !== 'done') throw new Error('cancelled');
    expect(second.result.entries.map((e) => e.cached)).toEqual([true, true, false]);
    const want2 = await library(0.2);
    expect(second.result.entries[2].report!.skills).toEqual(want2.merge.skills);
    expect(second.result.entries[2].report!.skills![0].meanLoss).not.toBeCloseTo(merge.report!.skills![0].meanLoss, 4);

    // Over the tab's limit: every model refused, named, with the limit; nothing merged.
    const tooSmall = await client.score!(request(1, 10_000), () => undefined).outcome;
    if (tooSmall.status !== 'done') throw new Error('cancelled');
    for (const e of tooSmall.result.entries) {
      expect(e.report).toBeNull();
      expect(e.error!.message).toMatch(/is too large to run here: its f32 weights take .*; the limit is 10.0 kB/);
    }
    expect(tooSmall.result.mergeSeconds).toBeNull();
  });

  it('can be cancelled', async () => {
    const client = connect();
    for (const ref of Object.keys(FILES) as (keyof typeof FILES)[]) await client.open(ref, dropped(ref));
    const handle = client.score!(
      { recipe: parseRecipe(recipeYaml(1), methodLookup, { file: 'r.yml' }), inputs: [{ ref: './base', label: 'base' }], backend: 'cpu', seed: 0, tasks: TASKS, text: null, weightLimit: 2 ** 30 },
      () => handle.cancel(),
    );
    expect(await handle.outcome).toEqual({ status: 'cancelled' });
  });
});
