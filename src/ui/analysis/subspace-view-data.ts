/**
 * What the subspace charts show, as plain data from an AnalysisResult's subspace statistics
 * (src/gpu/analysis/subspace.ts): the models × models overlap of a scope, the overlap per layer by
 * pair of models, the top singular values of one weight matrix per model, and the effective rank
 * per layer. The CSV exports write these same numbers at full precision (the JSON's values).
 */
import type { AnalysisResult, SubspaceGroupStats, SubspaceStats } from '../../gpu/analysis/types.ts';
import { shortNames, toCsv, type LayerSeries, type MatrixData } from './view-data.ts';

/** Which matrices an overlap covers: the whole model, one kind over the model, or per layer (pair × layer). */
export type OverlapScope = { kind: 'whole' } | { kind: 'tensor-kind'; tensorKind: 'attention' | 'mlp' } | { kind: 'per-layer'; tensorKind: 'all' | 'attention' | 'mlp' };

/** Methods that merge by the tasks' singular subspaces: their users are looking for exactly this overlap. */
export const SUBSPACE_METHODS: Readonly<Record<string, string>> = {
  tsv: 'TSV-M decorrelates these subspaces before adding them: high overlap is the interference it removes.',
  iso_c: 'Iso-C flattens the spectrum of the summed task vectors: the more the subspaces overlap, the fewer directions it spreads them over.',
  iso_cts: 'Iso-CTS keeps a common subspace and adds each task’s own directions: high overlap lands in the common part.',
};

const fmt = (v: number | null) => (v === null ? '–' : v.toFixed(3));

/** The one line under the overlap heatmap's title: what a value means, and the chance level. */
function overlapUnit(s: SubspaceStats, g: SubspaceGroupStats | null): string {
  const chance = g?.chance ?? s.whole.chance;
  // U_i^T rather than a superscript T, which common UI fonts lack.
  return `‖U_i^T U_j‖²_F / k of the top-${s.rank} left singular vectors: 0 orthogonal … 1 same subspace (random ≈ ${fmt(chance)})`;
}

/** One sentence on what the overlap heatmap shows (and, for a subspace method, why it matters to it). */
export function overlapExplanation(r: AnalysisResult): string {
  const s = r.modelStats?.subspace;
  const base =
    `How much the directions each fine-tune moved its weight matrices in are shared: the top ${s?.rank ?? 16} left singular vectors of each task vector (x − base, unweighted) ` +
    `compared pair by pair, mean over the matrices (sign-blind, unlike the cosine).`;
  const method = r.recipeStats ? SUBSPACE_METHODS[r.recipeStats.method] : undefined;
  return method ? `${base} ${method}` : base;
}

function groupOf(s: SubspaceStats, scope: Exclude<OverlapScope, { kind: 'per-layer' }>): SubspaceGroupStats | undefined {
  switch (scope.kind) {
    case 'whole':
      return s.whole;
    case 'tensor-kind':
      return s.byKind[scope.tensorKind];
    default: {
      const never: never = scope;
      return never;
    }
  }
}

const KIND_WORDS = { all: 'weight matrices', attention: 'attention matrices', mlp: 'MLP matrices' } as const;

/** The overlap heatmap of a scope (null when the scope has no weight matrices). */
export function overlapMatrix(r: AnalysisResult, scope: OverlapScope): MatrixData | null {
  const s = r.modelStats?.subspace;
  if (!s) return null;
  const names = shortNames(r.models);
  const n = names.length;
  if (scope.kind === 'per-layer') {
    if (n < 2 || s.layers.length === 0) return null;
    const groups = scope.tensorKind === 'all' ? s.layers : s.layersByKind[scope.tensorKind];
    if (!groups.some((g) => g.tensors > 0)) return null;
    const pairs: [number, number][] = [];
    for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) pairs.push([i, j]);
    return {
      title: `Subspace overlap of task vectors per layer, by pair of models (${KIND_WORDS[scope.tensorKind]})`,
      rowLabels: pairs.map(([i, j]) => `${names[i]} × ${names[j]}`),
      columnLabels: groups.map((_, k) => String(k)),
      values: pairs.flatMap(([i, j]) => groups.map((g) => (g.tensors > 0 ? g.overlap[i * n + j] : null))),
      unit: overlapUnit(s, null),
    };
  }
  const g = groupOf(s, scope);
  if (!g || g.tensors === 0) return null;
  return {
    title: `Subspace overlap of task vectors, ${scope.kind === 'whole' ? 'whole model' : KIND_WORDS[scope.tensorKind]} (${g.tensors} matrices)`,
    rowLabels: names,
    columnLabels: names,
    values: [...g.overlap],
    unit: overlapUnit(s, g),
  };
}

/** The weight matrices of a layer with subspace statistics, by their name inside the layer (`self_attn.q_proj.weight`). */
export function layerMatrices(r: AnalysisResult, layer: number): string[] {
  const prefix = new RegExp(`^(.*\\.)?layers\\.${layer}\\.`);
  return (r.modelStats?.tensors ?? []).filter((t) => t.layer === layer && t.subspace !== null).map((t) => t.name.replace(prefix, ''));
}

export interface SpectrumData {
  title: string;
  unit: string;
  /** The tensor shown. */
  tensor: string;
  /** 1..k. */
  index: number[];
  /** σ_1..σ_k per model (null past a model's k, none here) and its effective rank. */
  series: { label: string; values: (number | null)[]; effectiveRank: number | null; energy: number | null }[];
}

/** The top singular values of one weight matrix per model: layer `layer`, the matrix named `matrix` inside it (null when absent). */
export function spectrumData(r: AnalysisResult, layer: number, matrix: string): SpectrumData | null {
  const m = r.modelStats;
  if (!m) return null;
  const prefix = new RegExp(`^(.*\\.)?layers\\.${layer}\\.`);
  const t = m.tensors.find((x) => x.layer === layer && x.subspace !== null && x.name.replace(prefix, '') === matrix);
  if (!t?.subspace) return null;
  const s = t.subspace;
  const names = shortNames(r.models);
  return {
    title: `Top singular values of task vectors, ${t.name}`,
    unit: `σ_j of x − base (unweighted; the weights' units), j = 1…${s.rank}, log scale; [${t.shape.join('×')}]`,
    tensor: t.name,
    index: Array.from({ length: s.rank }, (_, j) => j + 1),
    series: names.map((label, i) => ({
      label,
      values: Array.from({ length: s.rank }, (_, j) => s.singularValues[i][j] ?? null),
      effectiveRank: s.effectiveRank[i],
      energy: s.energy[i],
    })),
  };
}

/** One sentence on what the spectrum chart shows. */
export function spectrumExplanation(d: SpectrumData): string {
  return (
    `How many directions each fine-tune changed this matrix in: a steep drop is a low-rank update, a flat line a spread-out one. ` +
    `Effective rank = exp(entropy of σ_j/Σσ) over these ${d.index.length} values.`
  );
}

export function spectrumCsv(d: SpectrumData): string {
  const rows: (string | number | null)[][] = [['j', ...d.series.map((s) => s.label)]];
  d.index.forEach((j, k) => rows.push([j, ...d.series.map((s) => s.values[k])]));
  rows.push(['effective rank', ...d.series.map((s) => s.effectiveRank)]);
  rows.push(['top-k share of ‖τ‖²', ...d.series.map((s) => s.energy)]);
  return toCsv(rows);
}

/** Effective rank per layer and model (mean over the layer's matrices of the kind). */
export function effectiveRankSeries(r: AnalysisResult, tensorKind: 'all' | 'attention' | 'mlp'): LayerSeries | null {
  const s = r.modelStats?.subspace;
  if (!s || s.layers.length === 0) return null;
  const groups = tensorKind === 'all' ? s.layers : s.layersByKind[tensorKind];
  if (!groups.some((g) => g.tensors > 0)) return null;
  const names = shortNames(r.models);
  return {
    key: `effectiveRank.${tensorKind}`,
    title: `Effective rank of task vectors per layer (${KIND_WORDS[tensorKind]})`,
    unit: `exp(entropy of σ_j/Σσ) over the top ${s.rank} singular values, mean over the layer's matrices (1 … ${s.rank})`,
    axis: 'effective rank',
    layers: groups.map((_, k) => k),
    series: names.map((label, i) => ({ label, values: groups.map((g) => (g.tensors > 0 ? g.effectiveRank[i] : null)) })),
  };
}
