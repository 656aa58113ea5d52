/**
 * Group statistics from per-tensor sums: add the dot products and counts of a group's tensors, then
 * derive cosines, norms, fractions and shares. Pure functions of the per-tensor entries, so the
 * views can regroup (a layer, a tensor kind) without another pass over the weights.
 */
import { BIN_COUNT } from './bins.ts';
import { addSignCounts, emptySignCounts, type SignCounts } from './ops.ts';
import {
  TENSOR_KINDS,
  type GroupCoefficients,
  type MagnitudeHistogram,
  type ModelGroupStats,
  type RecipeGroupStats,
  type TensorKind,
  type TensorModelStats,
  type TensorRecipeStats,
  type ValueRange,
} from './types.ts';

/** Cosine matrix from a Gram matrix (see ModelGroupStats.cosine). */
export function cosineFromGram(gram: readonly number[], n: number): number[] {
  const out = new Array<number>(n * n).fill(0);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      const a = gram[i * n + i];
      const b = gram[j * n + j];
      if (!(a > 0 && b > 0)) continue;
      out[i * n + j] = i === j ? 1 : Math.max(-1, Math.min(1, gram[i * n + j] / Math.sqrt(a * b)));
    }
  }
  return out;
}

/** |K_i ∩ K_j| / |K_i ∪ K_j| from support counts (see RecipeGroupStats.jaccard). */
export function jaccardFromCounts(s: SignCounts): number[] {
  const n = s.models;
  const out = new Array<number>(n * n).fill(0);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      const both = s.pairBoth[i * n + j];
      const union = s.nonzero[i] + s.nonzero[j] - both;
      out[i * n + j] = union > 0 ? both / union : 0;
    }
  }
  return out;
}

/** Share of each model in Σ_i ‖contribution_i‖ (zeros when nothing is contributed). */
export function sharesFromNormsSq(normsSq: readonly number[]): number[] {
  const norms = normsSq.map((v) => Math.sqrt(Math.max(0, v)));
  const total = norms.reduce((a, b) => a + b, 0);
  return norms.map((v) => (total > 0 ? v / total : 0));
}

function addInto(target: number[], values: readonly number[]): void {
  for (let k = 0; k < target.length; k++) target[k] += values[k];
}

export function summarizeModelGroup(label: string, entries: readonly TensorModelStats[], n: number): ModelGroupStats {
  const gram = new Array<number>(n * n).fill(0);
  const signs = emptySignCounts(n, 0);
  let baseNormSq: number | null = entries.length > 0 && entries.every((e) => e.baseNormSq !== null) ? 0 : null;
  let numel = 0;
  for (const e of entries) {
    addInto(gram, e.gram);
    addSignCounts(signs, e.signs);
    if (baseNormSq !== null) baseNormSq += e.baseNormSq as number;
    numel += e.numel;
  }
  const norms = Array.from({ length: n }, (_, i) => Math.sqrt(Math.max(0, gram[i * n + i])));
  const baseNorm = baseNormSq !== null ? Math.sqrt(baseNormSq) : 0;
  return {
    label,
    tensors: entries.length,
    numel,
    gram,
    baseNormSq,
    signs,
    norms,
    cosine: cosineFromGram(gram, n),
    relativeChange: baseNorm > 0 ? norms.map((v) => v / baseNorm) : null,
    pairConflict: signs.pairConflict.map((c) => (numel > 0 ? c / numel : 0)),
    conflictAll: numel > 0 ? signs.conflictAll / numel : 0,
  };
}

export function summarizeRecipeGroup(label: string, entries: readonly TensorRecipeStats[], n: number): RecipeGroupStats {
  const numel = entries.reduce((s, e) => s + e.numel, 0);
  const withKept = entries.length > 0 && entries.every((e) => e.kept !== null);
  const withShare = entries.length > 0 && entries.every((e) => e.contributionNormSq !== null);
  let kept: SignCounts | null = null;
  if (withKept) {
    kept = emptySignCounts(n, 0);
    for (const e of entries) addSignCounts(kept, e.kept as SignCounts);
  }
  let contributionNormSq: number[] | null = null;
  if (withShare) {
    contributionNormSq = new Array<number>(n).fill(0);
    for (const e of entries) addInto(contributionNormSq, e.contributionNormSq as number[]);
  }
  const frac = (v: number) => (numel > 0 ? v / numel : 0);
  return {
    label,
    tensors: entries.length,
    numel,
    kept,
    contributionNormSq,
    keptFraction: kept ? kept.nonzero.map(frac) : null,
    jaccard: kept ? jaccardFromCounts(kept) : null,
    uniqueFraction: kept ? kept.unique.map((u, i) => (kept.nonzero[i] > 0 ? u / kept.nonzero[i] : 0)) : null,
    consensus: kept ? kept.consensus.map(frac) : null,
    pairConflict: kept ? kept.pairConflict.map(frac) : null,
    conflictAll: kept ? frac(kept.conflictAll) : null,
    share: contributionNormSq ? sharesFromNormsSq(contributionNormSq) : null,
  };
}

/** Entries of tensors inside layer k, for k = 0..numLayers−1. */
export function byLayer<T extends { layer: number | null }>(entries: readonly T[], numLayers: number): T[][] {
  const out: T[][] = Array.from({ length: numLayers }, () => []);
  for (const e of entries) if (e.layer !== null && e.layer < numLayers) out[e.layer].push(e);
  return out;
}

export function byKind<T extends { kind: TensorKind }>(entries: readonly T[]): Partial<Record<TensorKind, T[]>> {
  const out: Partial<Record<TensorKind, T[]>> = {};
  for (const kind of TENSOR_KINDS) {
    const list = entries.filter((e) => e.kind === kind);
    if (list.length > 0) out[kind] = list;
  }
  return out;
}

/** Histograms of the chosen tensors summed bin by bin, per model (`pick` chooses a tensor's list). */
export function poolHistograms<T>(entries: readonly T[], n: number, pick: (e: T) => readonly MagnitudeHistogram[] | null): number[][] {
  const out = Array.from({ length: n }, () => new Array<number>(BIN_COUNT).fill(0));
  for (const e of entries) {
    const hs = pick(e);
    if (!hs) continue;
    hs.forEach((h, i) => addInto(out[i], h.counts));
  }
  return out;
}

/** Range of each numeric parameter over a group's tensors. */
export function coefficientsOf(label: string, entries: readonly TensorRecipeStats[], n: number): GroupCoefficients {
  const widen = (into: Record<string, ValueRange>, values: Record<string, number>) => {
    for (const [name, v] of Object.entries(values)) {
      const r = into[name];
      if (!r) into[name] = { min: v, max: v };
      else {
        r.min = Math.min(r.min, v);
        r.max = Math.max(r.max, v);
      }
    }
  };
  const global: Record<string, ValueRange> = {};
  const perModel: Record<string, ValueRange>[] = Array.from({ length: n }, () => ({}));
  for (const e of entries) {
    widen(global, e.params.global);
    e.params.perModel.forEach((p, i) => widen(perModel[i], p));
  }
  return { label, global, perModel };
}
