/**
 * What an analysis produces: plain, JSON-ready data (numbers, arrays, records; `null` for "does not
 * apply"), the same from the CLI (`merge-studio analyze --json`) and the studio's worker.
 *
 * Models are the recipe's non-base models in recipe order (N of them); their task vectors are
 * δ_i = x_i − base, or the raw weights x_i when the recipe has no base. Matrices over models are
 * N×N, row-major. Per-tensor entries keep the raw sums (dot products, counts), so any group of
 * tensors can be summarised by adding them (summarize.ts); groups carry those sums and the
 * statistics derived from them.
 */
import type { Sparsifier } from '../methods/sparsifiers.ts';
import type { MagnitudeHistogram, SignCounts } from './ops.ts';
import type { SubspaceStats, TensorSubspace } from './subspace.ts';

export type { MagnitudeHistogram, SignCounts } from './ops.ts';
export type { SubspaceGroupStats, SubspaceStats, TensorSubspace } from './subspace.ts';

/** What a tensor is, from its name (the cosine view's attention / MLP switch). */
export type TensorKind = 'attention' | 'mlp' | 'norm' | 'embedding' | 'other';
export const TENSOR_KINDS: readonly TensorKind[] = ['attention', 'mlp', 'norm', 'embedding', 'other'];

/** Recipe-independent statistics of one tensor. */
export interface TensorModelStats {
  name: string;
  shape: number[];
  /** `model.layers.<k>.` index, null for tensors outside the layers. */
  layer: number | null;
  kind: TensorKind;
  numel: number;
  /** δ_i · δ_j (f64 sums). */
  gram: number[];
  /** ‖base‖², null without a base. */
  baseNormSq: number | null;
  /** Signs of the δ_i. */
  signs: SignCounts;
  /** |δ_i| per model. */
  histograms: MagnitudeHistogram[];
  /** Top singular values, effective rank and subspace overlap (subspace.ts); null for tensors that are not weight matrices. */
  subspace: TensorSubspace | null;
}

/** Recipe-independent statistics of a group of tensors (a layer, a tensor kind, the whole model). */
export interface ModelGroupStats {
  label: string;
  tensors: number;
  numel: number;
  gram: number[];
  baseNormSq: number | null;
  signs: SignCounts;
  /** ‖δ_i‖. */
  norms: number[];
  /** δ_i·δ_j / (‖δ_i‖‖δ_j‖), clamped to [−1, 1]; 0 where either is zero (diagonal: 1, or 0 for a zero δ). */
  cosine: number[];
  /** ‖δ_i‖ / ‖base‖; null without a base (or a zero base). */
  relativeChange: number[] | null;
  /** Fraction of the group's parameters where δ_i and δ_j are both nonzero with opposite signs. */
  pairConflict: number[];
  /** Fraction of parameters where some δ_i is positive and another negative. */
  conflictAll: number;
}

/** Recipe-independent statistics, cached per model set. */
export interface ModelSetStats {
  /** Cache key: base, models and tensor list. */
  key: string;
  tensors: TensorModelStats[];
  whole: ModelGroupStats;
  /** Index = layer (0..numLayers−1). */
  layers: ModelGroupStats[];
  /** Embeddings, final norm, lm_head... */
  nonLayer: ModelGroupStats;
  byKind: Partial<Record<TensorKind, ModelGroupStats>>;
  /** |δ_i| histograms summed over every tensor, per model. */
  pooledHistograms: number[][];
  /** Subspace statistics of the weight matrices, by layer and kind (subspace.ts). */
  subspace: SubspaceStats;
}

/** Recipe-dependent statistics of one tensor, for the recipe's method and parameters. */
export interface TensorRecipeStats {
  name: string;
  layer: number | null;
  kind: TensorKind;
  numel: number;
  /** Numeric parameters resolved for this tensor (gradients and filters applied; booleans and options left out). */
  params: { global: Record<string, number>; perModel: Record<string, number>[] };
  /**
   * Signs of w_i·kept_i: the entries the sparsifier kept (an entry whose δ is 0 counts as not
   * kept: it adds nothing either way), signed as they enter the merge (TIES votes on these).
   * Null outside the task-vector family.
   */
  kept: SignCounts | null;
  /** kept_i · kept_j. */
  keptGram: number[] | null;
  /** |kept_i| per model (dropped entries land in the zero bin); minNonzero / max are the trim thresholds. */
  keptHistograms: MagnitudeHistogram[] | null;
  /** ‖contribution_i‖² where the merged delta is Σ contribution_i (λ, rescale and election applied). */
  contributionNormSq: number[] | null;
}

export interface RecipeGroupStats {
  label: string;
  tensors: number;
  numel: number;
  kept: SignCounts | null;
  contributionNormSq: number[] | null;
  /** Kept entries / parameters, per model. */
  keptFraction: number[] | null;
  /** |K_i ∩ K_j| / |K_i ∪ K_j| of the kept sets (diagonal 1, or 0 for an empty set). */
  jaccard: number[] | null;
  /** Kept entries no other model keeps / kept entries, per model. */
  uniqueFraction: number[] | null;
  /** consensus[c] = fraction of parameters kept by exactly c models, c = 0..N. */
  consensus: number[] | null;
  /** After trimming: fraction of parameters where kept w_i·δ_i and w_j·δ_j have opposite signs. */
  pairConflict: number[] | null;
  /** After trimming: fraction of parameters where some kept w_i·δ_i is positive and another negative. */
  conflictAll: number | null;
  /** ‖contribution_i‖ / Σ_j ‖contribution_j‖. */
  share: number[] | null;
}

/** Smallest and largest value a parameter takes over a group's tensors. */
export interface ValueRange {
  min: number;
  max: number;
}

/** Effective parameters over a group of tensors (a layer): ranges, since filters can differ by tensor. */
export interface GroupCoefficients {
  label: string;
  global: Record<string, ValueRange>;
  /** Per analyzed model. */
  perModel: Record<string, ValueRange>[];
}

export interface RecipeStats {
  method: string;
  seed: number;
  /** Task-vector family only: how entries are dropped, and whether TIES elects signs. */
  sparsifier: Sparsifier | null;
  election: boolean;
  tensors: TensorRecipeStats[];
  whole: RecipeGroupStats;
  layers: RecipeGroupStats[];
  nonLayer: RecipeGroupStats;
  byKind: Partial<Record<TensorKind, RecipeGroupStats>>;
  /** |kept_i| histograms summed over every tensor, per model (null outside the family). */
  pooledKeptHistograms: number[][] | null;
  coefficients: { layers: GroupCoefficients[]; nonLayer: GroupCoefficients };
  /** What these numbers mean for this method, and what does not apply. */
  notes: string[];
}

export interface HistogramSpec {
  minExponent: number;
  octaves: number;
  binsPerOctave: number;
  /** The regular bins' edges (f32 values); counts[0] = zeros, [1] below edges[0], [2 + r] regular bin r, then ≥ last edge, then Inf/NaN. */
  edges: number[];
}

export interface AnalysisResult {
  format: 'merge-studio-analysis';
  version: 1;
  /** Device the numbers were computed on. */
  backend: string;
  /** The analyzed models (recipe references, non-base, recipe order). */
  models: string[];
  base: string | null;
  numLayers: number;
  histogram: HistogramSpec;
  /** Null when not asked for. */
  modelStats: ModelSetStats | null;
  recipeStats: RecipeStats | null;
  /** Wall time of the pass. */
  seconds: number;
}

/** Progress of an analysis pass, tensor by tensor (`tensorsDone` never decreases). */
export interface AnalysisProgress {
  tensorsDone: number;
  tensorsTotal: number;
  currentTensor: string;
  /** Which statistics this pass computes (model statistics come from the cache when they can). */
  parts: { model: boolean; recipe: boolean };
}
