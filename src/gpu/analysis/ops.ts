/**
 * The few reductions the analysis needs beyond the Backend ops (src/gpu/backend.ts): sign and
 * support counts across models, log-binned magnitude histograms, and the per-model norms of a TIES
 * merge's elected contributions. `ReferenceAnalysisOps` (reference-ops.ts) is the plain TypeScript
 * definition; `GpuAnalysisOps` (gpu-ops.ts) runs the same reductions as WGSL kernels on a GpuBackend's
 * tensors. Both return exactly the same counts and histograms; float sums agree within f32 rounding.
 */
import type { Backend, Tensor } from '../backend.ts';

/** Most tensors one sign count takes: a sign code packs 16 "positive" and 16 "negative" bits. */
export const MAX_SIGN_MODELS = 16;

/**
 * Support and sign counts over N tensors of one shape. An entry is "nonzero" in tensor i when it is
 * finite-or-infinite and not ±0 (NaN counts as zero: it has no sign); its sign is its sign bit,
 * flipped for tensors whose `flips[i]` is set. Counts are of entries (parameters).
 */
export interface SignCounts {
  /** Number of tensors N. */
  models: number;
  /** Entries per tensor. */
  numel: number;
  /** Entries nonzero in tensor i. */
  nonzero: number[];
  /** Entries nonzero in tensor i and in no other tensor. */
  unique: number[];
  /** consensus[c] = entries nonzero in exactly c tensors, c = 0..N. */
  consensus: number[];
  /** Entries where at least one tensor is positive and another negative. */
  conflictAll: number;
  /** N×N row-major: entries nonzero in both i and j (diagonal: nonzero[i]). */
  pairBoth: number[];
  /** N×N row-major: entries nonzero in both i and j with opposite signs (diagonal 0). */
  pairConflict: number[];
}

/** Counts of |x| in the fixed log bins of bins.ts, and the extreme magnitudes. */
export interface MagnitudeHistogram {
  /** BIN_COUNT counts. */
  counts: number[];
  /** Smallest nonzero finite |x| (null when there is none). */
  minNonzero: number | null;
  /** Largest finite |x| (null when there is no finite entry). */
  max: number | null;
}

export interface AnalysisOps {
  readonly backend: Backend;
  /** Sign and support counts over 1..MAX_SIGN_MODELS tensors of one shape. */
  signCounts(xs: readonly Tensor[], flips?: readonly boolean[]): Promise<SignCounts>;
  /** Histogram of |x| over the bins of bins.ts, for each tensor (one read-back for all of them). */
  magnitudeHistograms(xs: readonly Tensor[]): Promise<MagnitudeHistogram[]>;
  /**
   * TIES election over wd_i (as Backend.signElect): majority = sign(Σ wd) (>= 0 → +), m_i = sign(wd_i)
   * agrees with it; with `normalize` each entry is divided by d = Σ w_i·m_i (0 → 1), else d = 1.
   * Returns Σ_e (wd_i·m_i / d)² for each i: the squared norm of what model i adds to the merge
   * (the merge's result is the sum of these contributions).
   */
  electedContributionNormsSq(wds: readonly Tensor[], weights: readonly number[], normalize: boolean): Promise<number[]>;
}

/** A bad call on the analysis ops (too many tensors, mismatched sizes). */
export class AnalysisOpsError extends Error {
  constructor(op: string, reason: string) {
    super(`analysis: ${op}: ${reason}`);
    this.name = 'AnalysisOpsError';
  }
}

/** Index of the unordered pair (i, j), i < j, among the N(N-1)/2 pairs in row order. */
export function pairIndex(i: number, j: number, n: number): number {
  return i * n - (i * (i + 1)) / 2 + (j - i - 1);
}

/** Check the inputs every implementation shares. */
export function checkSignInputs(xs: readonly Tensor[], flips: readonly boolean[] | undefined): void {
  if (xs.length === 0) throw new AnalysisOpsError('signCounts', 'no tensors');
  if (xs.length > MAX_SIGN_MODELS) {
    throw new AnalysisOpsError('signCounts', `${xs.length} tensors; at most ${MAX_SIGN_MODELS} are counted together`);
  }
  for (let i = 1; i < xs.length; i++) {
    if (xs[i].numel !== xs[0].numel) {
      throw new AnalysisOpsError('signCounts', `tensor ${i} has ${xs[i].numel} elements, tensor 0 has ${xs[0].numel}`);
    }
  }
  if (flips && flips.length !== xs.length) {
    throw new AnalysisOpsError('signCounts', `${flips.length} flips for ${xs.length} tensors`);
  }
}

export function checkElectInputs(wds: readonly Tensor[], weights: readonly number[]): void {
  if (wds.length === 0) throw new AnalysisOpsError('electedContributionNormsSq', 'no tensors');
  if (weights.length !== wds.length) {
    throw new AnalysisOpsError('electedContributionNormsSq', `${weights.length} weights for ${wds.length} tensors`);
  }
  for (let i = 1; i < wds.length; i++) {
    if (wds[i].numel !== wds[0].numel) {
      throw new AnalysisOpsError('electedContributionNormsSq', `tensor ${i} has ${wds[i].numel} elements, tensor 0 has ${wds[0].numel}`);
    }
  }
}

/** SignCounts with every count zero, for N tensors of `numel` entries. */
export function emptySignCounts(models: number, numel: number): SignCounts {
  return {
    models,
    numel,
    nonzero: new Array(models).fill(0),
    unique: new Array(models).fill(0),
    consensus: new Array(models + 1).fill(0),
    conflictAll: 0,
    pairBoth: new Array(models * models).fill(0),
    pairConflict: new Array(models * models).fill(0),
  };
}

/** a += b (same N); used to pool counts over tensors. */
export function addSignCounts(a: SignCounts, b: SignCounts): void {
  a.numel += b.numel;
  for (let i = 0; i < a.models; i++) {
    a.nonzero[i] += b.nonzero[i];
    a.unique[i] += b.unique[i];
  }
  for (let c = 0; c <= a.models; c++) a.consensus[c] += b.consensus[c];
  a.conflictAll += b.conflictAll;
  for (let k = 0; k < a.models * a.models; k++) {
    a.pairBoth[k] += b.pairBoth[k];
    a.pairConflict[k] += b.pairConflict[k];
  }
}
