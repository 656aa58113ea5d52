/**
 * Subspace statistics (subspace.ts) against an independent f64 one-sided Jacobi SVD
 * (tests/helpers/dense-f64.ts), on both backends, for both paths:
 * - host path (small matrices, f64 on the host from the task vectors read back): σ within
 *   1e-10·σ_1 and overlaps within 1e-10 of the reference (both f64 on the same f32 inputs);
 * - backend path (truncatedSvd, f32): spectra 0.7^j, so the randomized iteration's error
 *   (σ_{l+1}/σ_k)^(2q+1) ≈ 0.7^50 is far below f32 rounding; σ within 2e-6·σ_1 and overlaps within
 *   2e-5 (U's columns are orthonormal and on the reference subspace to ~u·(σ_1/σ_k)² ≈ 1e-6, and an
 *   overlap sums k² squared inner products).
 * Plus answers known without computing them (shared and orthogonal subspaces, zero and low-rank task
 * vectors, a scaled copy), the group means, and the statistics as analyzeMerge reports and caches them.
 */
import { describe, expect, it } from 'vitest';
import { jacobiSvd, orthonormalColumns, withSingularValues } from '../../../tests/helpers/dense-f64.ts';
import { BACKEND_NAMES, linalgBackends, type BackendName } from '../../../tests/helpers/linalg-backends.ts';
import type { Backend, Tensor } from '../backend.ts';
import { CpuBackend } from '../cpu-backend.ts';
import { analyzeMerge } from './analyze.ts';
import { AnalysisCache } from './cache.ts';
import { ReferenceAnalysisOps } from './reference-ops.ts';
import {
  DEFAULT_SUBSPACE_RANK,
  entropyEffectiveRank,
  NOISE_FLOOR,
  SubspaceError,
  summarizeSubspace,
  summarizeSubspaceGroup,
  tensorSubspace,
  type TensorSubspace,
} from './subspace.ts';
import { plus, recipeOf, sourcesOf, TOY_TENSORS, toyBase, toyDelta, toyModel } from './testing.testutil.ts';
import type { AnalysisProgress } from './types.ts';

const backend = linalgBackends();
const geometric = (r: number, ratio: number) => Array.from({ length: r }, (_, j) => ratio ** j);

/** The statistics from the reference SVD of each task vector (f64, from the same f32 values). */
function reference(taus: readonly Float32Array[], m: number, n: number, rank: number) {
  const k = Math.min(rank, m, n);
  const r = Math.min(m, n);
  const svds = taus.map((t) => jacobiSvd(t, m, n));
  const ranks = svds.map((s) => (s.S[0] > 0 ? Array.from(s.S.slice(0, k)).filter((v) => v > NOISE_FLOOR * s.S[0]).length : 0));
  const N = taus.length;
  const overlap: (number | null)[] = [];
  for (let i = 0; i < N; i++) {
    for (let j = 0; j < N; j++) {
      const [ki, kj] = [ranks[i], ranks[j]];
      if (ki === 0 || kj === 0) {
        overlap.push(null);
        continue;
      }
      let sum = 0;
      for (let a = 0; a < ki; a++) {
        for (let b = 0; b < kj; b++) {
          let d = 0;
          for (let row = 0; row < m; row++) d += svds[i].U[row * r + a] * svds[j].U[row * r + b];
          sum += d * d;
        }
      }
      overlap.push(sum / Math.min(ki, kj));
    }
  }
  return { k, sigma: svds.map((s) => Array.from(s.S.slice(0, k))), ranks, overlap };
}

async function upload(b: Backend, values: readonly Float32Array[], m: number, n: number): Promise<Tensor[]> {
  return Promise.all(values.map((v) => b.upload(v, [m, n])));
}

function expectClose(got: readonly (number | null)[], want: readonly (number | null)[], tol: number, what: string) {
  expect(got.length, what).toBe(want.length);
  got.forEach((g, i) => {
    const w = want[i];
    if (w === null) expect(g, `${what}[${i}]`).toBeNull();
    else expect(Math.abs((g as number) - w), `${what}[${i}]: got ${g}, want ${w}`).toBeLessThanOrEqual(tol);
  });
}

async function checkAgainstReference(b: Backend, m: number, n: number, rank: number, opts: { hostMaxDim?: number; sigmaTol: number; overlapTol: number; seed: number }) {
  const r = Math.min(m, n);
  // Three task vectors with distinct decaying spectra (a gap at every k) and unrelated directions.
  const values = [0, 1, 2].map((t) => withSingularValues(m, n, geometric(r, 0.7 - 0.05 * t), opts.seed + 101 * t));
  const taus = await upload(b, values, m, n);
  try {
    const got = await tensorSubspace(b, taus, { rank, hostMaxDim: opts.hostMaxDim });
    const want = reference(values, m, n, rank);
    const what = `${m}×${n}, rank ${rank}${opts.hostMaxDim === 0 ? ', backend path' : ''}`;
    expect(got.rank, what).toBe(want.k);
    expect(got.rows).toBe(m);
    expect(got.numericalRank, what).toEqual(want.ranks);
    for (let t = 0; t < 3; t++) {
      expect(got.singularValues[t].length).toBe(want.k);
      expectClose(got.singularValues[t], want.sigma[t], opts.sigmaTol * want.sigma[t][0], `${what}: σ of model ${t}`);
      expect(got.effectiveRank[t]).toBeCloseTo(entropyEffectiveRank(want.sigma[t])!, 4);
    }
    expectClose(got.overlap, want.overlap, opts.overlapTol, `${what}: overlap`);
    // Unrelated subspaces: well below 1 off the diagonal, 1 on it.
    for (let i = 0; i < 3; i++) expect(got.overlap[i * 3 + i]).toBeCloseTo(1, 4);
    return got;
  } finally {
    for (const t of taus) b.release(t);
  }
}

describe.each(BACKEND_NAMES)('tensorSubspace on %s', (name: BackendName) => {
  it('small matrices (host path): top-k spectra, effective ranks and overlaps of a Jacobi SVD', async () => {
    const b = backend(name);
    await checkAgainstReference(b, 23, 9, 5, { sigmaTol: 1e-10, overlapTol: 1e-10, seed: 1 });
    await checkAgainstReference(b, 7, 19, 4, { sigmaTol: 1e-10, overlapTol: 1e-10, seed: 2 });
    // k capped by the matrix: rank 16 of a 6×11 matrix is 6, and the overlap of full spaces is 1.
    const full = await checkAgainstReference(b, 6, 11, 16, { sigmaTol: 1e-10, overlapTol: 1e-10, seed: 3 });
    expect(full.rank).toBe(6);
    expectClose(full.overlap, new Array(9).fill(1), 1e-10, 'full-rank overlap');
  });

  it('the backend path (randomized subspace iteration) on tall and wide matrices', async () => {
    const b = backend(name);
    // 61×43, k = 4: l = 14 columns, 2l < 43, so truncatedSvd iterates rather than falling back to the thin SVD.
    await checkAgainstReference(b, 61, 43, 4, { hostMaxDim: 0, sigmaTol: 2e-6, overlapTol: 2e-5, seed: 4 });
    await checkAgainstReference(b, 37, 59, 5, { hostMaxDim: 0, sigmaTol: 2e-6, overlapTol: 2e-5, seed: 5 });
  });
});

/** τ = P·diag(σ)·Qᵀ with P the given columns of a shared orthonormal basis (m×cols). */
function fromColumns(basis: Float64Array, m: number, cols: number, pick: readonly number[], sigma: readonly number[], n: number, seed: number): Float32Array {
  const q = orthonormalColumns(n, pick.length, seed);
  const out = new Float32Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let c = 0; c < n; c++) {
      let s = 0;
      pick.forEach((col, j) => (s += basis[i * cols + col] * sigma[j] * q[c * pick.length + j]));
      out[i * n + c] = s;
    }
  }
  return out;
}

describe('answers known without an SVD', () => {
  const cpu = new CpuBackend();
  const m = 20;
  const n = 12;
  const basis = orthonormalColumns(m, 8, 7);
  const flat = [1, 0.9, 0.8, 0.7];

  for (const path of [{ label: 'host path', hostMaxDim: undefined }, { label: 'backend path', hostMaxDim: 0 }]) {
    it(`${path.label}: shared, half-shared and orthogonal rank-4 subspaces; a scaled copy; a zero task vector`, async () => {
      const a = fromColumns(basis, m, 8, [0, 1, 2, 3], flat, n, 11);
      const half = fromColumns(basis, m, 8, [2, 3, 4, 5], flat, n, 12);
      const orth = fromColumns(basis, m, 8, [4, 5, 6, 7], flat, n, 13);
      const scaled = Float32Array.from(a, (v) => -2.5 * v);
      const zero = new Float32Array(m * n);
      const taus = await upload(cpu, [a, half, orth, scaled, zero], m, n);
      const s = await tensorSubspace(cpu, taus, { rank: 4, hostMaxDim: path.hostMaxDim });
      for (const t of taus) cpu.release(t);
      const tol = path.hostMaxDim === 0 ? 1e-5 : 1e-10;
      const N = 5;
      const at = (i: number, j: number) => s.overlap[i * N + j];
      expect(at(0, 1)).toBeCloseTo(0.5, -Math.log10(tol));
      expect(at(0, 2)).toBeCloseTo(0, -Math.log10(tol));
      expect(at(1, 2)).toBeCloseTo(0.5, -Math.log10(tol));
      expect(at(0, 3)).toBeCloseTo(1, -Math.log10(tol));
      for (let i = 0; i < 4; i++) expect(at(i, i)).toBeCloseTo(1, -Math.log10(tol));
      // The zero task vector has no subspace: its row and column are null, as are its ranks.
      for (let i = 0; i < N; i++) {
        expect(at(4, i)).toBeNull();
        expect(at(i, 4)).toBeNull();
      }
      expect(s.numericalRank).toEqual([4, 4, 4, 4, 0]);
      expect(s.effectiveRank[4]).toBeNull();
      expect(s.energy[4]).toBeNull();
      // A scaled copy: σ scale with |−2.5|, the effective rank and the energy stay.
      s.singularValues[0].forEach((v, j) => expect(s.singularValues[3][j]).toBeCloseTo(2.5 * v, 5));
      expect(s.singularValues[0]).toHaveLength(4);
      s.singularValues[0].forEach((v, j) => expect(v).toBeCloseTo(flat[j], 5));
      expect(s.effectiveRank[3]).toBeCloseTo(s.effectiveRank[0]!, 8);
      expect(s.effectiveRank[0]).toBeCloseTo(entropyEffectiveRank(flat)!, 5);
      // Rank-4 task vectors: all their energy is in the top 4.
      expect(s.energy[0]).toBeCloseTo(1, 5);
    });
  }

  it('a task vector of rank 2 with k = 4: numerical rank 2, overlap normalized by the smaller rank', async () => {
    const a = fromColumns(basis, m, 8, [0, 1, 2, 3], flat, n, 21);
    const low = fromColumns(basis, m, 8, [0, 5], [1, 0.5], n, 22);
    const taus = await upload(cpu, [a, low], m, n);
    const s = await tensorSubspace(cpu, taus, { rank: 4 });
    for (const t of taus) cpu.release(t);
    expect(s.numericalRank).toEqual([4, 2]);
    // One of low's two directions lies in a's subspace: ‖U_aᵀU_low‖² = 1, over min(4, 2) = 2.
    expect(s.overlap[1]).toBeCloseTo(0.5, 9);
    expect(s.overlap[3]).toBeCloseTo(1, 9);
    expect(s.singularValues[1][2]).toBeLessThan(NOISE_FLOOR);
  });

  it('energy: the top-k share of ‖τ‖²', async () => {
    const sigma = [3, 2, 1, 1, 1];
    const x = withSingularValues(m, n, sigma, 31);
    const taus = await upload(cpu, [x], m, n);
    const s = await tensorSubspace(cpu, taus, { rank: 2 });
    for (const t of taus) cpu.release(t);
    expect(s.energy[0]).toBeCloseTo(13 / 16, 6);
  });

  it('refuses what it cannot compute, naming the reason', async () => {
    using x = await cpu.upload(new Float32Array(6), [2, 3]);
    using y = await cpu.upload(new Float32Array(6), [3, 2]);
    using v = await cpu.upload(new Float32Array(6), [6]);
    await expect(tensorSubspace(cpu, [x], { rank: 0 })).rejects.toThrow(SubspaceError);
    await expect(tensorSubspace(cpu, [x, y])).rejects.toThrow('task vectors of shapes [2, 3] and [3, 2]');
    await expect(tensorSubspace(cpu, [v])).rejects.toThrow('is not a matrix');
    await expect(tensorSubspace(cpu, [])).rejects.toThrow('no task vectors');
  });
});

describe('effective rank and group means', () => {
  it('entropy effective rank: 1 for one direction, k for a flat spectrum, between otherwise', () => {
    expect(entropyEffectiveRank([5, 0, 0])).toBeCloseTo(1, 12);
    expect(entropyEffectiveRank([2, 2, 2, 2])).toBeCloseTo(4, 12);
    // p = (2/3, 1/3): exp(−(2/3·ln 2/3 + 1/3·ln 1/3)).
    expect(entropyEffectiveRank([2, 1])).toBeCloseTo(Math.exp(-((2 / 3) * Math.log(2 / 3) + (1 / 3) * Math.log(1 / 3))), 12);
    expect(entropyEffectiveRank([0, 0])).toBeNull();
  });

  const entry = (overlap: (number | null)[], er: (number | null)[], rank: number, rows: number): TensorSubspace => ({
    rank,
    rows,
    singularValues: [],
    effectiveRank: er,
    energy: er.map((v) => (v === null ? null : 0.5)),
    numericalRank: er.map((v) => (v === null ? 0 : rank)),
    overlap,
  });

  it('means over the matrices, skipping nulls; groups by layer and by attention / MLP', () => {
    const q0 = entry([1, 0.2, 0.2, 1], [3, 5], 4, 16);
    const up0 = entry([1, 0.6, 0.6, 1], [1, null], 4, 32);
    const q1 = entry([1, null, null, null], [2, null], 8, 16);
    const g = summarizeSubspaceGroup('g', [q0, up0], 2);
    expect(g.tensors).toBe(2);
    expectClose(g.overlap, [1, 0.4, 0.4, 1], 1e-15, 'overlap mean');
    expect(g.chance).toBeCloseTo((4 / 16 + 4 / 32) / 2, 15);
    expect(g.effectiveRank).toEqual([2, 5]);
    const stats = summarizeSubspace(
      [
        { layer: 0, kind: 'attention', subspace: q0 },
        { layer: 0, kind: 'mlp', subspace: up0 },
        { layer: 0, kind: 'norm', subspace: null },
        { layer: 1, kind: 'attention', subspace: q1 },
        { layer: null, kind: 'other', subspace: null },
      ],
      2,
      3,
      4,
    );
    expect(stats.rank).toBe(4);
    expect(stats.whole.tensors).toBe(3);
    expectClose(stats.whole.overlap, [1, 0.4, 0.4, 1], 1e-15, 'whole');
    expectClose(stats.layers[0].overlap, [1, 0.4, 0.4, 1], 1e-15, 'layer 0');
    expectClose(stats.layers[1].overlap, [1, null, null, null], 0, 'layer 1');
    expect(stats.layers[2].tensors).toBe(0);
    expect(stats.layers[2].chance).toBeNull();
    expectClose(stats.layersByKind.attention[0].overlap, [1, 0.2, 0.2, 1], 0, 'layer 0 attention');
    expectClose(stats.layersByKind.mlp[0].overlap, [1, 0.6, 0.6, 1], 0, 'layer 0 MLP');
    expect(stats.layersByKind.mlp[1].tensors).toBe(0);
    expect(Object.keys(stats.byKind).sort()).toEqual(['attention', 'mlp']);
    expect(stats.byKind.attention!.effectiveRank).toEqual([2.5, 5]);
    expect(stats.definitions.join(' ')).toContain('unweighted');
  });
});

describe('in analyzeMerge', () => {
  const ops = () => new ReferenceAnalysisOps(new CpuBackend());
  const deltas = [toyDelta(41), toyDelta(42)];
  const models = () => Promise.all([toyModel('base', toyBase), toyModel('a', plus(toyBase, deltas[0])), toyModel('b', plus(toyBase, deltas[1]))]);

  it('reports each weight matrix against the reference and caches it with the model statistics', async () => {
    const sources = sourcesOf(await models());
    // Weights differ: the statistics are of the unweighted task vectors, so they must not depend on them.
    const recipe = recipeOf('task_arithmetic', [
      { ref: 'a', params: { weight: 0.3 } },
      { ref: 'b', params: { weight: 2 } },
    ]);
    const cache = new AnalysisCache();
    const r = await analyzeMerge({ recipe, sources, ops: ops(), options: { cache, subspaceRank: 3 } });
    const m = r.modelStats!;
    expect(m.subspace.rank).toBe(3);
    TOY_TENSORS.forEach((t, k) => {
      const e = m.tensors.find((x) => x.name === t.name)!;
      const isMatrix = t.shape.length === 2 && !t.name.includes('embed_tokens');
      if (!isMatrix) {
        expect(e.subspace, t.name).toBeNull();
        return;
      }
      const [rows, cols] = t.shape;
      // The analysis's δ = fround(x − base), x = fround(base + δ_true).
      const values = deltas.map((d) => Float32Array.from({ length: rows * cols }, (_, el) => Math.fround(plus(toyBase, d)(k, el) - toyBase(k, el))));
      const want = reference(values, rows, cols, 3);
      expectClose(e.subspace!.overlap, want.overlap, 1e-10, `${t.name} overlap`);
      want.sigma.forEach((s, i) => expectClose(e.subspace!.singularValues[i], s, 1e-10 * s[0], `${t.name} σ of model ${i}`));
    });
    const layer0 = m.tensors.filter((e) => e.layer === 0 && e.subspace);
    expect(layer0.map((e) => e.name)).toEqual(['model.layers.0.self_attn.q_proj.weight', 'model.layers.0.mlp.up_proj.weight']);
    expectClose(m.subspace.layers[0].overlap, [0, 1, 2, 3].map((p) => (layer0[0].subspace!.overlap[p]! + layer0[1].subspace!.overlap[p]!) / 2), 1e-15, 'layer 0 mean');
    expectClose(m.subspace.layersByKind.attention[0].overlap, layer0[0].subspace!.overlap, 0, 'layer 0 attention');

    // A density change (another method's parameters) is a cache hit: the subspace statistics are not recomputed.
    const progress: AnalysisProgress[] = [];
    const again = await analyzeMerge({
      recipe: { ...recipe, mergeMethod: 'ties', models: recipe.models.map((x) => ({ ...x, parameters: { ...x.parameters, density: 0.4 } })) },
      sources,
      ops: ops(),
      options: { cache, subspaceRank: 3, onProgress: (p) => progress.push(p) },
    });
    expect(again.modelStats).toBe(m);
    expect(progress.every((p) => !p.parts.model)).toBe(true);

    // Another k is another computation.
    const k2 = await analyzeMerge({ recipe, sources, ops: ops(), options: { cache, subspaceRank: 2 } });
    expect(k2.modelStats).not.toBe(m);
    expect(k2.modelStats!.subspace.rank).toBe(2);
    expect(k2.modelStats!.tensors.find((e) => e.subspace)!.subspace!.rank).toBe(2);
  });

  it('uses k = 16 by default, capped by each matrix', async () => {
    const r = await analyzeMerge({ recipe: recipeOf('task_arithmetic', [{ ref: 'a', params: { weight: 1 } }, { ref: 'b', params: { weight: 1 } }]), sources: sourcesOf(await models()), ops: ops() });
    expect(r.modelStats!.subspace.rank).toBe(DEFAULT_SUBSPACE_RANK);
    for (const e of r.modelStats!.tensors) if (e.subspace) expect(e.subspace.rank).toBe(Math.min(DEFAULT_SUBSPACE_RANK, ...e.shape));
  });
});
