/**
 * The analysis driver on constructed checkpoints whose answers are known without running it:
 * identical, opposite and disjoint task vectors; shares that follow from the weights; kept counts
 * that follow from the densities; contributions that add up to the merge's own output. Plus the
 * cache, progress, cancellation and leak checks. (GPU against CPU: golden.test.ts.)
 */
import { describe, expect, it } from 'vitest';
import type { ModelSource } from '../../core/source.ts';
import { MemoryOutputFolder } from '../../core/sources/memory.ts';
import { openModel } from '../../core/safetensors/model.ts';
import { memoryFileTree } from '../../core/sources/memory.ts';
import { CpuBackend } from '../cpu-backend.ts';
import { runMerge } from '../engine.ts';
import { AnalysisCancelledError, AnalysisInputError, analyzeMerge } from './analyze.ts';
import { AnalysisCache, ResidentTensors } from './cache.ts';
import { ReferenceAnalysisOps } from './reference-ops.ts';
import { FastCpuBackend } from '../cpu-fast/fast-backend.ts';
import { FastAnalysisOps } from './fast-ops.ts';
import { analysisOpsFor } from './ops-for.ts';
import {
  numelOf,
  plus,
  recipeOf,
  sourcesOf,
  TOY_TENSORS,
  toyBase,
  toyDelta,
  toyModel,
  type ToyValues,
} from './testing.testutil.ts';
import type { AnalysisProgress } from './types.ts';

const TOTAL = TOY_TENSORS.reduce((s, t) => s + numelOf(t.shape), 0);

function ops() {
  return new ReferenceAnalysisOps(new CpuBackend());
}

function expectMatrixClose(got: readonly number[], want: readonly number[], tol: number, what: string) {
  expect(got.length, what).toBe(want.length);
  got.forEach((g, k) => expect(Math.abs(g - want[k]), `${what}[${k}]: got ${g}, want ${want[k]}`).toBeLessThanOrEqual(tol));
}

const neg = (f: ToyValues): ToyValues => (k, e) => -f(k, e);
/** Keep f on the elements where keep(element) holds, else 0. */
const only = (f: ToyValues, keep: (e: number) => boolean): ToyValues => (k, e) => (keep(e) ? f(k, e) : 0);

describe('constructed task vectors', () => {
  it('identical task vectors: cosine 1, no conflicts, full overlap', async () => {
    const d = toyDelta(1);
    const models = [await toyModel('base', toyBase), await toyModel('a', plus(toyBase, d)), await toyModel('b', plus(toyBase, d))];
    const recipe = recipeOf('ties', [
      { ref: 'a', params: { weight: 1, density: 0.5 } },
      { ref: 'b', params: { weight: 1, density: 0.5 } },
    ]);
    const r = await analyzeMerge({ recipe, sources: sourcesOf(models), ops: ops() });
    const m = r.modelStats!;
    expectMatrixClose(m.whole.cosine, [1, 1, 1, 1], 1e-6, 'cosine');
    for (const layer of m.layers) expectMatrixClose(layer.cosine, [1, 1, 1, 1], 1e-6, layer.label);
    expect(m.whole.pairConflict).toEqual([0, 0, 0, 0]);
    expect(m.whole.conflictAll).toBe(0);
    expect(m.whole.signs.consensus).toEqual([0, 0, TOTAL]);
    const rs = r.recipeStats!;
    // Same values → same top-k: the kept sets coincide and nothing is unique.
    expectMatrixClose(rs.whole.jaccard!, [1, 1, 1, 1], 0, 'jaccard');
    expect(rs.whole.uniqueFraction).toEqual([0, 0]);
    expect(rs.whole.conflictAll).toBe(0);
    expectMatrixClose(rs.whole.share!, [0.5, 0.5], 1e-12, 'share');
    expect(r.models).toEqual(['a', 'b']);
    expect(r.base).toBe('base');
  });

  it('opposite task vectors: cosine -1, every parameter in conflict', async () => {
    const d = toyDelta(2);
    const models = [await toyModel('base', toyBase), await toyModel('a', plus(toyBase, d)), await toyModel('b', plus(toyBase, neg(d)))];
    const recipe = recipeOf('task_arithmetic', [
      { ref: 'a', params: { weight: 1 } },
      { ref: 'b', params: { weight: 1 } },
    ]);
    const r = await analyzeMerge({ recipe, sources: sourcesOf(models), ops: ops() });
    const m = r.modelStats!;
    expectMatrixClose(m.whole.cosine, [1, -1, -1, 1], 1e-6, 'cosine');
    expectMatrixClose(m.whole.pairConflict, [0, 1, 1, 0], 0, 'pair conflict');
    expect(m.whole.conflictAll).toBe(1);
    for (const kind of ['attention', 'mlp', 'norm', 'embedding'] as const) {
      expectMatrixClose(m.byKind[kind]!.cosine, [1, -1, -1, 1], 1e-6, kind);
    }
    // Task arithmetic keeps everything: the conflict survives trimming.
    expect(r.recipeStats!.whole.conflictAll).toBe(1);
    expectMatrixClose(r.recipeStats!.whole.keptFraction!, [1, 1], 0, 'kept');
  });

  it('a negative weight flips the signs after trimming, not the raw ones', async () => {
    const d = toyDelta(3);
    const models = [await toyModel('base', toyBase), await toyModel('a', plus(toyBase, d)), await toyModel('b', plus(toyBase, d))];
    const recipe = recipeOf('task_arithmetic', [
      { ref: 'a', params: { weight: 1 } },
      { ref: 'b', params: { weight: -0.5 } },
    ]);
    const r = await analyzeMerge({ recipe, sources: sourcesOf(models), ops: ops() });
    expect(r.modelStats!.whole.conflictAll).toBe(0);
    expect(r.recipeStats!.whole.conflictAll).toBe(1);
    // Contributions are w_i·δ_i/Σw with the same δ: shares 1 : 0.5.
    expectMatrixClose(r.recipeStats!.whole.share!, [2 / 3, 1 / 3], 1e-6, 'share');
  });

  it('disjoint sparse supports: no overlap, everything kept is unique', async () => {
    const d = toyDelta(4);
    const models = [
      await toyModel('base', toyBase),
      await toyModel('a', plus(toyBase, only(d, (e) => e % 3 === 0))),
      await toyModel('b', plus(toyBase, only(neg(d), (e) => e % 3 === 1))),
      await toyModel('c', plus(toyBase, only(d, (e) => e % 3 === 2))),
    ];
    const recipe = recipeOf('ties', [
      { ref: 'a', params: { weight: 1, density: 1 } },
      { ref: 'b', params: { weight: 1, density: 1 } },
      { ref: 'c', params: { weight: 1, density: 1 } },
    ]);
    const r = await analyzeMerge({ recipe, sources: sourcesOf(models), ops: ops() });
    const m = r.modelStats!;
    expectMatrixClose(m.whole.cosine, [1, 0, 0, 0, 1, 0, 0, 0, 1], 0, 'cosine');
    expect(m.whole.conflictAll).toBe(0);
    const rs = r.recipeStats!.whole;
    expectMatrixClose(rs.jaccard!, [1, 0, 0, 0, 1, 0, 0, 0, 1], 0, 'jaccard');
    expect(rs.uniqueFraction).toEqual([1, 1, 1]);
    expect(rs.consensus).toEqual([0, 1, 0, 0]);
    expect(rs.kept!.pairBoth.filter((_, k) => k % 4 !== 0)).toEqual([0, 0, 0, 0, 0, 0]);
  });

  it('layers, kinds and the non-layer group partition the tensors', async () => {
    const models = [await toyModel('base', toyBase), await toyModel('a', plus(toyBase, toyDelta(5))), await toyModel('b', plus(toyBase, toyDelta(6)))];
    const r = await analyzeMerge({ recipe: recipeOf('linear', [{ ref: 'a', params: { weight: 1 } }, { ref: 'b', params: { weight: 1 } }]), sources: sourcesOf(models), ops: ops() });
    const m = r.modelStats!;
    expect(r.numLayers).toBe(2);
    expect(m.layers.map((l) => l.tensors)).toEqual([3, 3]);
    expect(m.nonLayer.tensors).toBe(2);
    expect(m.layers[0].numel + m.layers[1].numel + m.nonLayer.numel).toBe(TOTAL);
    const kinds = Object.values(m.byKind);
    expect(kinds.reduce((s, g) => s + g!.numel, 0)).toBe(TOTAL);
    expect(Object.keys(m.byKind).sort()).toEqual(['attention', 'embedding', 'mlp', 'norm']);
    // The whole-model Gram is the sum of the layer and non-layer Grams.
    const sum = m.layers[0].gram.map((v, k) => v + m.layers[1].gram[k] + m.nonLayer.gram[k]);
    expectMatrixClose(m.whole.gram, sum, 1e-12, 'gram');
    // Outside the family: coefficients only, with a note saying so.
    expect(r.recipeStats!.whole.kept).toBeNull();
    expect(r.recipeStats!.whole.share).toBeNull();
    expect(r.recipeStats!.notes.join(' ')).toMatch(/outside the task-vector family/);
  });

  it('relative change is ‖δ‖ / ‖base‖, from an independent sum', async () => {
    const d = toyDelta(7);
    const models = [await toyModel('base', toyBase), await toyModel('a', plus(toyBase, d))];
    const r = await analyzeMerge({ recipe: recipeOf('task_arithmetic', [{ ref: 'a', params: { weight: 1 } }]), sources: sourcesOf(models), ops: ops() });
    let dd = 0;
    let bb = 0;
    TOY_TENSORS.forEach((t, k) => {
      for (let e = 0; e < numelOf(t.shape); e++) {
        const x = Math.fround(toyBase(k, e) + d(k, e));
        const delta = Math.fround(x - toyBase(k, e));
        dd += delta * delta;
        bb += toyBase(k, e) ** 2;
      }
    });
    expect(r.modelStats!.whole.norms[0]).toBeCloseTo(Math.sqrt(dd), 10);
    expect(r.modelStats!.whole.relativeChange![0]).toBeCloseTo(Math.sqrt(dd / bb), 10);
  });

  it('without a base the raw weights are compared', async () => {
    const a = await toyModel('a', toyDelta(8));
    const b = await toyModel('b', neg(toyDelta(8)));
    const recipe = recipeOf('linear', [{ ref: 'a', params: { weight: 1 } }, { ref: 'b', params: { weight: 1 } }], { baseModel: undefined });
    const r = await analyzeMerge({ recipe, sources: sourcesOf([a, b]), ops: ops() });
    expect(r.base).toBeNull();
    expectMatrixClose(r.modelStats!.whole.cosine, [1, -1, -1, 1], 1e-12, 'cosine');
    expect(r.modelStats!.whole.relativeChange).toBeNull();
  });
});

describe('recipe statistics follow the method', () => {
  it('TIES keeps floor(density·n) entries per tensor, with densities resolved per layer', async () => {
    const models = [await toyModel('base', toyBase), await toyModel('a', plus(toyBase, toyDelta(9))), await toyModel('b', plus(toyBase, toyDelta(10)))];
    const recipe = recipeOf('ties', [
      { ref: 'a', params: { weight: 1, density: [0.2, 0.8] } },
      { ref: 'b', params: { weight: 0.5, density: [{ filter: 'mlp', value: 0.3 }, { value: 0.6 }] } },
    ]);
    const r = await analyzeMerge({ recipe, sources: sourcesOf(models), ops: ops() });
    for (const t of r.recipeStats!.tensors) {
      const layer = t.layer ?? 0; // non-layer tensors sit at t = 0
      const da = [0.2, 0.8][layer];
      const db = t.name.includes('mlp') ? 0.3 : 0.6;
      expect(t.params.perModel[0].density).toBeCloseTo(da, 12);
      expect(t.params.perModel[1].density).toBe(db);
      expect(t.kept!.nonzero, t.name).toEqual([Math.floor(da * t.numel), Math.floor(db * t.numel)]);
      // The trim threshold: the smallest kept magnitude is at least every dropped one.
      expect(t.keptHistograms![0].minNonzero).toBeGreaterThan(0);
    }
    const coef = r.recipeStats!.coefficients;
    expect(coef.layers[0].perModel[0].density).toEqual({ min: 0.2, max: 0.2 });
    expect(coef.layers[1].perModel[1].density).toEqual({ min: 0.3, max: 0.6 });
    expect(coef.layers[1].perModel[0].weight).toEqual({ min: 1, max: 1 });
    expect(coef.layers[0].global.lambda).toEqual({ min: 1, max: 1 });
  });

  it('DARE masks use the merge seed: a different seed draws a different mask', async () => {
    const models = [await toyModel('base', toyBase), await toyModel('a', plus(toyBase, toyDelta(11))), await toyModel('b', plus(toyBase, toyDelta(12)))];
    const recipe = recipeOf('dare_ties', [
      { ref: 'a', params: { weight: 1, density: 0.5 } },
      { ref: 'b', params: { weight: 1, density: 0.5 } },
    ]);
    const sources = sourcesOf(models);
    const run = (seed: number) => analyzeMerge({ recipe, sources, ops: ops(), options: { seed, parts: { recipe: true, model: false } } });
    const [a, b, c] = await Promise.all([run(1), run(1), run(2)]);
    expect(a.recipeStats!.tensors.map((t) => t.kept)).toEqual(b.recipeStats!.tensors.map((t) => t.kept));
    expect(a.recipeStats!.tensors.map((t) => t.kept)).not.toEqual(c.recipeStats!.tensors.map((t) => t.kept));
    expect(a.modelStats).toBeNull();
    // Bernoulli(0.5) over 284 entries: the kept fraction is near one half.
    for (const f of a.recipeStats!.whole.keptFraction!) expect(Math.abs(f - 0.5)).toBeLessThan(0.15);
  });

  it.each([
    ['task_arithmetic', {}, {}],
    ['task_arithmetic', {}, { normalize: true, lambda: 0.8 }],
    ['ties', { density: 0.4 }, {}],
    ['ties', { density: 0.4 }, { normalize: false, lambda: 0.7 }],
    ['dare_linear', { density: 0.6 }, {}],
    ['dare_ties', { density: 0.6 }, { rescale_mode: 'density' }],
    ['breadcrumbs', { density: 0.7, gamma: 0.1 }, {}],
    ['breadcrumbs_ties', { density: 0.7, gamma: 0.1 }, {}],
    ['della', { density: 0.5, epsilon: 0.1 }, {}],
    ['della_linear', { density: 0.5, epsilon: 0.1 }, { lambda: 1.5 }],
  ] as const)('%s %j %j: contributions add up to the merged delta', async (method, perModel, global) => {
    // Disjoint supports make the contributions orthogonal: ‖merged − base‖² = Σ ‖contribution_i‖².
    const d = toyDelta(13);
    const models = [
      await toyModel('base', toyBase),
      await toyModel('a', plus(toyBase, only(d, (e) => e % 3 === 0))),
      await toyModel('b', plus(toyBase, only(neg(d), (e) => e % 3 === 1))),
      await toyModel('c', plus(toyBase, only(d, (e) => e % 3 === 2))),
    ];
    const recipe = recipeOf(
      method,
      [
        { ref: 'a', params: { weight: 1, ...perModel } },
        { ref: 'b', params: { weight: 0.6, ...perModel } },
        { ref: 'c', params: { weight: -0.4, ...perModel } },
      ],
      { parameters: { ...global }, dtype: 'F32' },
    );
    const sources = sourcesOf(models);
    const backend = new CpuBackend();
    const output = new MemoryOutputFolder();
    await runMerge({ recipe, sources, backend, output, options: { seed: 5 } });
    const merged = await openModel(memoryFileTree('merged', Object.fromEntries(output.files)), { id: 'merged' });
    const r = await analyzeMerge({ recipe, sources, ops: new ReferenceAnalysisOps(backend), options: { seed: 5 } });
    for (const t of r.recipeStats!.tensors) {
      const got = new Float32Array((await merged.readTensor(t.name)).slice().buffer);
      const k = TOY_TENSORS.findIndex((x) => x.name === t.name);
      let want = 0;
      got.forEach((v, e) => (want += (v - toyBase(k, e)) ** 2));
      const sum = t.contributionNormSq!.reduce((a, b) => a + b, 0);
      expect(Math.abs(sum - want), `${t.name}: Σ‖c_i‖² ${sum}, ‖merged − base‖² ${want}`).toBeLessThanOrEqual(1e-4 * want + 1e-9);
    }
    expect(backend.liveTensors).toBe(0);
  });
});

describe('cache, progress, cancellation', () => {
  function counting(m: ModelSource, reads: { count: number }): ModelSource {
    return {
      ...m,
      id: m.id,
      tree: m.tree,
      tensors: m.tensors,
      config: m.config,
      metadata: m.metadata,
      readTensor: (name, signal) => {
        reads.count++;
        return m.readTensor(name, signal);
      },
      readTensorRange: (name, o, l, signal) => {
        reads.count++;
        return m.readTensorRange(name, o, l, signal);
      },
    };
  }

  it('reuses model statistics for the same model set and recomputes only the recipe part', async () => {
    const reads = { count: 0 };
    const models = [
      counting(await toyModel('base', toyBase), reads),
      counting(await toyModel('a', plus(toyBase, toyDelta(14))), reads),
      counting(await toyModel('b', plus(toyBase, toyDelta(15))), reads),
    ];
    const sources = sourcesOf(models);
    const cache = new AnalysisCache();
    const recipe = (density: number) =>
      recipeOf('ties', [
        { ref: 'a', params: { weight: 1, density } },
        { ref: 'b', params: { weight: 1, density } },
      ]);
    const first = await analyzeMerge({ recipe: recipe(0.5), sources, ops: ops(), options: { cache } });
    expect(reads.count).toBe(3 * TOY_TENSORS.length);
    const progress: AnalysisProgress[] = [];
    const second = await analyzeMerge({ recipe: recipe(0.2), sources, ops: ops(), options: { cache, onProgress: (p) => progress.push(p) } });
    expect(second.modelStats).toBe(first.modelStats);
    expect(progress.every((p) => !p.parts.model && p.parts.recipe)).toBe(true);
    expect(second.recipeStats!.whole.keptFraction![0]).toBeLessThan(first.recipeStats!.whole.keptFraction![0]);
    const before = reads.count;
    const third = await analyzeMerge({ recipe: recipe(0.2), sources, ops: ops(), options: { cache, parts: { recipe: false } } });
    expect(reads.count).toBe(before);
    expect(third.modelStats).toBe(first.modelStats);
    // Outside the task-vector family the recipe part is parameters only: no weights are read.
    const linear = recipeOf('linear', [{ ref: 'a', params: { weight: [0.2, 0.8] } }, { ref: 'b', params: { weight: 1 } }]);
    const fourth = await analyzeMerge({ recipe: linear, sources, ops: ops(), options: { cache } });
    expect(reads.count).toBe(before);
    expect(fourth.recipeStats!.coefficients.layers[1].perModel[0].weight).toEqual({ min: 0.8, max: 0.8 });
    // A different model set (b left out) is a different key.
    const alone = await analyzeMerge({ recipe: recipeOf('ties', [{ ref: 'a', params: { weight: 1, density: 0.5 } }]), sources, ops: ops(), options: { cache, parts: { recipe: false } } });
    expect(alone.modelStats!.key).not.toBe(first.modelStats!.key);
    expect(cache.size).toBe(2);
  });

  it('re-runs do only what changed: resident inputs (no reads), one model re-sparsified, untouched tensors reused, same numbers as a fresh run', async () => {
    const reads = { count: 0 };
    const models = [
      counting(await toyModel('base', toyBase), reads),
      counting(await toyModel('a', plus(toyBase, toyDelta(21))), reads),
      counting(await toyModel('b', plus(toyBase, toyDelta(22))), reads),
      counting(await toyModel('c', plus(toyBase, toyDelta(23))), reads),
    ];
    const sources = sourcesOf(models);
    const uncounted = sourcesOf([
      await toyModel('base', toyBase),
      await toyModel('a', plus(toyBase, toyDelta(21))),
      await toyModel('b', plus(toyBase, toyDelta(22))),
      await toyModel('c', plus(toyBase, toyDelta(23))),
    ]);
    const backend = new CpuBackend();
    const cached = { cache: new AnalysisCache(), resident: new ResidentTensors(backend) };
    const recipe = (densityA: number | number[], method = 'dare_ties') =>
      recipeOf(method, [
        { ref: 'a', params: { weight: 1, density: densityA } },
        { ref: 'b', params: { weight: 0.7, density: 0.5 } },
        { ref: 'c', params: { weight: -0.4, density: 0.6 } },
      ]);
    const sparsified: string[] = [];
    const spy = new Proxy(backend, {
      get(target, prop, receiver) {
        const v = Reflect.get(target, prop, receiver);
        if (typeof v !== 'function') return v;
        return (...args: unknown[]) => {
          if (prop === 'keepRandom') sparsified.push(String(prop));
          return v.apply(target, args);
        };
      },
    });
    const ops = new ReferenceAnalysisOps(spy as CpuBackend);
    cached.resident = new ResidentTensors(spy as CpuBackend);
    const fresh = async (r: ReturnType<typeof recipe>) => (await analyzeMerge({ recipe: r, sources: uncounted, ops: new ReferenceAnalysisOps(new CpuBackend()), options: { seed: 3 } })).recipeStats;

    const first = await analyzeMerge({ recipe: recipe(0.5), sources, ops, options: { seed: 3, ...cached } });
    const readsAfterFirst = reads.count;
    expect(readsAfterFirst).toBe(4 * TOY_TENSORS.length);
    expect(first.recipeStats).toEqual(await fresh(recipe(0.5)));

    expect(sparsified).toHaveLength(3 * TOY_TENSORS.length);
    sparsified.length = 0;
    // Model a's density changes: nothing is read, a alone is re-sparsified, and the numbers are a fresh run's.
    const second = await analyzeMerge({ recipe: recipe(0.3), sources, ops, options: { seed: 3, ...cached } });
    expect(reads.count).toBe(readsAfterFirst);
    expect(second.recipeStats).toEqual(await fresh(recipe(0.3)));
    expect(sparsified).toHaveLength(TOY_TENSORS.length);

    // A curve that changes only the last layer's value: the other tensors' statistics are the same objects as before.
    const layers = first.numLayers;
    const curve = Array.from({ length: layers }, (_, k) => (k === layers - 1 ? 0.9 : 0.3));
    const third = await analyzeMerge({ recipe: recipe(curve), sources, ops, options: { seed: 3, ...cached } });
    expect(third.recipeStats).toEqual(await fresh(recipe(curve)));
    const reused = third.recipeStats!.tensors.filter((e, k) => e === second.recipeStats!.tensors[k]).map((e) => e.layer);
    expect(reused.length).toBeGreaterThan(0);
    expect(reused).not.toContain(layers - 1);
    expect(third.recipeStats!.tensors.filter((e) => e.layer === layers - 1).every((e) => !second.recipeStats!.tensors.includes(e))).toBe(true);
    expect(reads.count).toBe(readsAfterFirst);

    // Everything resident is released by clear().
    expect(backend.liveTensors).toBeGreaterThan(0);
    cached.resident.clear();
    expect(backend.liveTensors).toBe(0);
  });

  it('on the fast CPU backend (its own ops, resident re-runs) gives the reference analysis numbers', async () => {
    const sources = sourcesOf([
      await toyModel('base', toyBase),
      await toyModel('a', plus(toyBase, toyDelta(31))),
      await toyModel('b', plus(toyBase, toyDelta(32))),
      await toyModel('c', only(plus(toyBase, toyDelta(33)), (e) => e % 3 !== 0)),
    ]);
    const recipe = (densityA: number, method: string) =>
      recipeOf(method, [
        { ref: 'a', params: { weight: 1, density: densityA } },
        { ref: 'b', params: { weight: 0.7, density: 0.5 } },
        { ref: 'c', params: { weight: -0.4, density: 0.6 } },
      ]);
    const backend = new FastCpuBackend();
    const fast = analysisOpsFor(backend);
    expect(fast).toBeInstanceOf(FastAnalysisOps);
    const cached = { cache: new AnalysisCache(), resident: new ResidentTensors(backend) };
    // Numbers only: the backend's name, the time taken and the cache's key differ.
    const numbers = (r: Awaited<ReturnType<typeof analyzeMerge>>) => ({ ...r, backend: null, seconds: null, modelStats: r.modelStats && { ...r.modelStats, key: null } });
    try {
      for (const method of ['ties', 'dare_ties']) {
        for (const density of [0.5, 0.3, 0.8]) {
          const got = await analyzeMerge({ recipe: recipe(density, method), sources, ops: fast, options: { seed: 4, ...cached } });
          const want = await analyzeMerge({ recipe: recipe(density, method), sources, ops: ops(), options: { seed: 4 } });
          expect(numbers(got), `${method}, density ${density}`).toEqual(numbers(want));
        }
      }
      cached.resident.clear();
      expect(backend.liveTensors).toBe(0);
    } finally {
      backend.destroy();
    }
  });

  it('resident tensors stay within their byte budget and never evict what a run is using', async () => {
    const backend = new CpuBackend();
    const resident = new ResidentTensors(backend, 3 * 4 * 10);
    const t = () => backend.upload(new Float32Array(10), [10]);
    resident.put('a', [await t()], 1);
    resident.put('b', [await t()], 2);
    resident.unpinAll();
    expect(resident.take('a')?.data).toBe(1);
    resident.put('c', [await t()], 3);
    resident.put('d', [await t()], 4);
    // b was the oldest unpinned entry; a, c and d are pinned by this "run".
    expect(resident.size).toBe(3);
    expect(resident.take('b')).toBeUndefined();
    resident.unpinAll();
    expect(resident.bytes).toBeLessThanOrEqual(resident.maxBytes);
    expect(backend.liveTensors).toBe(resident.size);
    // A clear while a run uses an entry keeps that entry until the run lets go of it.
    expect(resident.take('d')?.data).toBe(4);
    resident.clear();
    expect(resident.size).toBe(1);
    resident.unpinAll();
    expect(resident.size).toBe(0);
    expect(backend.liveTensors).toBe(0);
  });

  it('reports progress tensor by tensor and stops when cancelled', async () => {
    const models = [await toyModel('base', toyBase), await toyModel('a', plus(toyBase, toyDelta(16)))];
    const recipe = recipeOf('task_arithmetic', [{ ref: 'a', params: { weight: 1 } }]);
    const seen: number[] = [];
    await analyzeMerge({ recipe, sources: sourcesOf(models), ops: ops(), options: { onProgress: (p) => seen.push(p.tensorsDone) } });
    expect(seen).toEqual(TOY_TENSORS.map((_, k) => k + 1));

    const controller = new AbortController();
    const backend = new CpuBackend();
    const run = analyzeMerge({
      recipe,
      sources: sourcesOf(models),
      ops: new ReferenceAnalysisOps(backend),
      options: { signal: controller.signal, onProgress: (p) => p.tensorsDone === 3 && controller.abort() },
    });
    await expect(run).rejects.toThrow(AnalysisCancelledError);
    expect(backend.liveTensors).toBe(0);
  });

  it('names what it cannot analyze', async () => {
    const base = await toyModel('base', toyBase);
    await expect(analyzeMerge({ recipe: recipeOf('ties', [{ ref: 'base' }]), sources: sourcesOf([base]), ops: ops() })).rejects.toThrow(AnalysisInputError);
    const many = await Promise.all(Array.from({ length: 17 }, (_, i) => toyModel(`m${i}`, plus(toyBase, toyDelta(i)))));
    const recipe = recipeOf('task_arithmetic', many.map((m) => ({ ref: m.id, params: { weight: 1 } })));
    await expect(analyzeMerge({ recipe, sources: sourcesOf([base, ...many]), ops: ops() })).rejects.toThrow(/at most 16/);
  });
});
