/**
 * Subspace statistics of the task vectors (model statistics: they depend on the models alone, so they
 * are computed with the other model statistics and cached with them, never on a slider move).
 *
 * Per weight matrix (isMatrixTensor: 2-D, not a vocabulary table, m×n) and model, of the unweighted
 * task vector τ_i = x_i − base (the raw weights without a base; a recipe weight w_i only scales σ and
 * leaves the directions, hence the overlap, unchanged):
 * - the top k singular values σ_1 ≥ … ≥ σ_k, k = min(K, m, n) (K = `rank`, default 16): for small
 *   matrices (smaller side ≤ HOST_SVD_MAX_DIM) exactly, in f64 on the host from τ read back (Gram of
 *   the smaller side + eigh.ts); for the others on the backend by randomized subspace iteration
 *   (truncatedSvd: 10 extra columns, 2 power iterations), accurate where the spectrum decays past
 *   σ_k and approximate (a few % of σ_1 on the demo's flat spectra) where it does not;
 * - the effective rank of that top-k spectrum, exp(H(p)) with p_j = σ_j / Σ_{j≤k} σ_j (Roy & Vetterli
 *   2007): 1 for one dominant direction, k for a flat top-k spectrum. It is of the top k only: a value
 *   near k says "at least k directions matter", not how many;
 * - the share of ‖τ_i‖²_F the top k carry, Σ σ_j² / ‖τ_i‖²_F;
 * - the numerical rank k_i: how many of the σ_j exceed NOISE_FLOOR·σ_1 (beyond it the f32
 *   factorization's directions are noise, see svd.ts), 0 for a zero task vector;
 * and per pair of models the subspace overlap of their top left singular vectors (TSV-M's
 * interference measure, Gargiulo et al. 2025):
 *     O_ij = ‖U_iᵀ·U_j‖²_F / min(k_i, k_j),  U_i = the k_i leading left singular vectors of τ_i,
 * which is the issue's ‖U_iᵀU_j‖²_F / k whenever both task vectors have rank ≥ k. 0: orthogonal
 * subspaces, 1: one contains the other (the diagonal is 1). Independent random subspaces of
 * dimension k in R^m give k/m on average (`chance`). Null where either task vector is zero.
 *
 * Groups (the whole model, a layer, attention or MLP matrices of a layer) report plain means over
 * their matrices, each matrix counting once whatever its size.
 */
import type { Backend, Tensor } from '../backend.ts';
import { TensorScope } from '../backend.ts';
import { symmetricEigen } from '../linalg/eigh.ts';
import { truncatedSvd } from '../linalg/svd.ts';
import type { TensorKind } from './types.ts';

/** Singular directions kept per matrix and model when nothing else is asked for. */
export const DEFAULT_SUBSPACE_RANK = 16;
/**
 * Matrices whose smaller side is at most this (and with at most HOST_SVD_MAX_ELEMENTS entries) are
 * factored exactly on the host in f64: the r×r eigendecomposition takes ~80 ms at r = 128 (eigh.ts),
 * the Gram m·r² multiply-adds; on a software GPU each of the backend path's dispatches costs more.
 */
export const HOST_SVD_MAX_DIM = 128;
/** 2^20 entries: a 4 MiB read per model and at most ~1.3·10^8 multiply-adds for the Gram. */
export const HOST_SVD_MAX_ELEMENTS = 1 << 20;
/** σ_j ≤ NOISE_FLOOR·σ_1 counts as zero (the f32 Gram resolves directions to ≈ 2.4e-4·σ_1). */
export const NOISE_FLOOR = 1e-3;

/** Subspace statistics of one weight matrix (see the module comment). */
export interface TensorSubspace {
  /** k = min(requested rank, m, n). */
  rank: number;
  /** m: the dimension of the space the left singular vectors live in. */
  rows: number;
  /** Per model: σ_1..σ_k, largest first. */
  singularValues: number[][];
  /** Per model: exp(H(σ/Σσ)) over the top k; null for a zero task vector. */
  effectiveRank: (number | null)[];
  /** Per model: Σ_{j≤k} σ_j² / ‖τ‖²_F; null for a zero task vector. */
  energy: (number | null)[];
  /** Per model: how many σ_j exceed NOISE_FLOOR·σ_1. */
  numericalRank: number[];
  /** N×N row-major: ‖U_iᵀU_j‖²_F / min(k_i, k_j); null where k_i or k_j is 0. */
  overlap: (number | null)[];
}

/** Subspace statistics of a group of matrices: means over the matrices. */
export interface SubspaceGroupStats {
  label: string;
  /** Weight matrices in the group. */
  tensors: number;
  /** N×N: mean overlap over the matrices where it exists (null where it exists for none). */
  overlap: (number | null)[];
  /** Mean k/m: the overlap independent random subspaces would have. Null for an empty group. */
  chance: number | null;
  /** Per model: mean effective rank (null where no matrix has one). */
  effectiveRank: (number | null)[];
  /** Per model: mean share of ‖τ‖² in the top k. */
  energy: (number | null)[];
}

/** The subspace part of the model statistics. */
export interface SubspaceStats {
  /** The requested K (each matrix uses min(K, m, n)). */
  rank: number;
  /** How the numbers were computed, in words (shown with the charts and kept in the JSON). */
  definitions: string[];
  whole: SubspaceGroupStats;
  /** Index = layer. */
  layers: SubspaceGroupStats[];
  /** Per layer, attention matrices only and MLP matrices only. */
  layersByKind: { attention: SubspaceGroupStats[]; mlp: SubspaceGroupStats[] };
  /** Per tensor kind over the whole model (attention, mlp, other). */
  byKind: Partial<Record<TensorKind, SubspaceGroupStats>>;
}

export interface TensorSubspaceOptions {
  /** Requested K. @default DEFAULT_SUBSPACE_RANK */
  rank?: number;
  /** ‖τ_i‖²_F per model, when the caller has them (else computed here). */
  normsSq?: readonly number[];
  /** Smaller side up to which a matrix is factored on the host (tests set 0 to take the backend path). @default HOST_SVD_MAX_DIM */
  hostMaxDim?: number;
}

/** A bad argument to the subspace statistics (names the reason). */
export class SubspaceError extends Error {
  constructor(reason: string) {
    super(`subspace statistics: ${reason}`);
    this.name = 'SubspaceError';
  }
}

/** Subspace statistics of one m×n weight matrix from its N task vectors (tensors of the caller's). */
export async function tensorSubspace(backend: Backend, taus: readonly Tensor[], opts: TensorSubspaceOptions = {}): Promise<TensorSubspace> {
  const requested = opts.rank ?? DEFAULT_SUBSPACE_RANK;
  if (!(Number.isInteger(requested) && requested >= 1)) throw new SubspaceError(`rank ${requested} is not a positive integer`);
  if (taus.length === 0) throw new SubspaceError('no task vectors');
  const shape = taus[0].shape;
  if (shape.length !== 2) throw new SubspaceError(`a ${shape.length}-D tensor [${shape.join(', ')}] is not a matrix`);
  for (const t of taus) {
    if (t.shape.length !== 2 || t.shape[0] !== shape[0] || t.shape[1] !== shape[1]) {
      throw new SubspaceError(`task vectors of shapes [${shape.join(', ')}] and [${t.shape.join(', ')}]`);
    }
  }
  const [m, n] = shape;
  const N = taus.length;
  const k = Math.min(requested, m, n);
  const normsSq = opts.normsSq ?? gramDiagonal(await backend.gram(taus), N);
  if (normsSq.length !== N) throw new SubspaceError(`${normsSq.length} squared norms for ${N} task vectors`);
  // A zero task vector has no directions, and one with Inf/NaN entries none we can trust: both are left out.
  const usable = normsSq.map((v) => Number.isFinite(v) && v > 0);
  const onHost = Math.min(m, n) <= (opts.hostMaxDim ?? HOST_SVD_MAX_DIM) && m * n <= HOST_SVD_MAX_ELEMENTS;
  const factors = onHost ? await hostFactors(backend, taus, usable, k) : await backendFactors(backend, taus, usable, k);
  const singularValues = factors.singularValues;
  const numericalRank = singularValues.map((s) => (s.length > 0 && s[0] > 0 ? s.filter((v) => v > NOISE_FLOOR * s[0]).length : 0));
  // O_ij from the blocks U_iᵀU_j of Ĝ = ÛᵀÛ, Û = [U_1 … U_N] (m × Nk).
  const g = factors.gramOfU;
  const width = N * k;
  const overlap: (number | null)[] = new Array(N * N).fill(null);
  for (let i = 0; i < N; i++) {
    for (let j = 0; j < N; j++) {
      const ki = numericalRank[i];
      const kj = numericalRank[j];
      if (ki === 0 || kj === 0) continue;
      let s = 0;
      for (let a = 0; a < ki; a++) for (let b = 0; b < kj; b++) s += g[(i * k + a) * width + j * k + b] ** 2;
      overlap[i * N + j] = s / Math.min(ki, kj);
    }
  }
  return {
    rank: k,
    rows: m,
    singularValues,
    effectiveRank: singularValues.map((s, i) => (numericalRank[i] > 0 ? entropyEffectiveRank(s) : null)),
    energy: singularValues.map((s, i) => (numericalRank[i] > 0 ? Math.min(1, s.reduce((a, v) => a + v * v, 0) / normsSq[i]) : null)),
    numericalRank,
    overlap,
  };
}

/** Each model's top-k singular values (empty for a model left out) and the Gram matrix of the stacked left singular vectors. */
interface Factors {
  singularValues: number[][];
  /** Nk×Nk row-major: block (i, j) = U_iᵀU_j (zero blocks for models left out). */
  gramOfU: ArrayLike<number>;
}

/**
 * Small matrices on the host in f64: read the τ (one read for all models), the Gram matrix of its smaller
 * side, its eigendecomposition (eigh.ts), and U = τ·W/σ (tall) or U = W (wide), σ_j = ‖τ·w_j‖ or
 * ‖τᵀ·w_j‖. Exact to f64 rounding, and on a software GPU far cheaper than a chain of small dispatches.
 */
async function hostFactors(backend: Backend, taus: readonly Tensor[], usable: readonly boolean[], k: number): Promise<Factors> {
  const [m, n] = taus[0].shape;
  const N = taus.length;
  const r = Math.min(m, n);
  const tall = m >= n;
  const values = await readAll(backend, taus, usable);
  const us: Float64Array[] = [];
  const singularValues: number[][] = [];
  for (let t = 0; t < N; t++) {
    const x = values[t];
    if (!x) {
      us.push(new Float64Array(m * k));
      singularValues.push([]);
      continue;
    }
    // G = τᵀτ (tall, n×n) or ττᵀ (wide, m×m), accumulated row by row of τ.
    const gram = new Float64Array(r * r);
    if (tall) {
      for (let i = 0; i < m; i++) {
        const row = i * n;
        for (let a = 0; a < n; a++) {
          const v = x[row + a];
          if (v === 0) continue;
          const out = a * n;
          for (let b = a; b < n; b++) gram[out + b] += v * x[row + b];
        }
      }
    } else {
      for (let a = 0; a < m; a++) {
        for (let b = a; b < m; b++) {
          let s = 0;
          for (let c = 0; c < n; c++) s += x[a * n + c] * x[b * n + c];
          gram[a * r + b] = s;
        }
      }
    }
    for (let a = 0; a < r; a++) for (let b = 0; b < a; b++) gram[a * r + b] = gram[b * r + a];
    const w = symmetricEigen(gram, r).vectors;
    // Y = τ·W_k (tall: m×k, the left vectors times σ) or τᵀ·W_k (wide: n×k, the right vectors times σ).
    const rows = tall ? m : n;
    const y = new Float64Array(rows * k);
    for (let i = 0; i < m; i++) {
      for (let c = 0; c < n; c++) {
        const v = x[i * n + c];
        if (v === 0) continue;
        // tall: y[i, j] += τ[i, c]·w[c, j]; wide: y[c, j] += τ[i, c]·w[i, j].
        const [yRow, wRow] = tall ? [i * k, c * r] : [c * k, i * r];
        for (let j = 0; j < k; j++) y[yRow + j] += v * w[wRow + j];
      }
    }
    const sigma = Array.from({ length: k }, (_, j) => {
      let s = 0;
      for (let i = 0; i < rows; i++) s += y[i * k + j] ** 2;
      return Math.sqrt(s);
    });
    // Rounding can swap nearly equal values: sort so σ is largest first, U's columns alongside.
    const order = sigma.map((_, j) => j).sort((a, b) => sigma[b] - sigma[a] || a - b);
    const u = new Float64Array(m * k);
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < k; j++) {
        const src = order[j];
        u[i * k + j] = tall ? (sigma[src] > 0 ? y[i * k + src] / sigma[src] : 0) : w[i * r + src];
      }
    }
    us.push(u);
    singularValues.push(order.map((j) => sigma[j]));
  }
  const width = N * k;
  const gramOfU = new Float64Array(width * width);
  for (let p = 0; p < width; p++) {
    const [ip, jp] = [Math.floor(p / k), p % k];
    for (let q = p; q < width; q++) {
      const [iq, jq] = [Math.floor(q / k), q % k];
      let s = 0;
      for (let row = 0; row < m; row++) s += us[ip][row * k + jp] * us[iq][row * k + jq];
      gramOfU[p * width + q] = s;
      gramOfU[q * width + p] = s;
    }
  }
  return { singularValues, gramOfU };
}

/**
 * The usable task vectors' values, read back together (one read: on a GPU each read waits for the
 * queue, which on a software adapter costs more than the copy); undefined for the others.
 */
async function readAll(backend: Backend, taus: readonly Tensor[], usable: readonly boolean[]): Promise<(Float32Array | undefined)[]> {
  const picked = taus.filter((_, t) => usable[t]);
  const out: (Float32Array | undefined)[] = taus.map(() => undefined);
  if (picked.length === 0) return out;
  const [m, n] = taus[0].shape;
  let all: Float32Array;
  if (picked.length === 1) all = await backend.read(picked[0]);
  else {
    using joined = await backend.concatColumns(picked);
    all = await backend.read(joined);
  }
  // [τ_a τ_b …] is m × (count·n): model p's row i is columns [p·n, (p+1)·n) of row i.
  const width = picked.length * n;
  let p = 0;
  taus.forEach((_, t) => {
    if (!usable[t]) return;
    const x = new Float32Array(m * n);
    for (let i = 0; i < m; i++) x.set(all.subarray(i * width + p * n, i * width + (p + 1) * n), i * n);
    out[t] = x;
    p++;
  });
  return out;
}

/**
 * Larger matrices on the backend: truncatedSvd per model (randomized subspace iteration), then all
 * the U_iᵀU_j blocks in one product Ĝ = ÛᵀÛ and one read.
 */
async function backendFactors(backend: Backend, taus: readonly Tensor[], usable: readonly boolean[], k: number): Promise<Factors> {
  const [m] = taus[0].shape;
  using scope = new TensorScope(backend);
  const us: Tensor[] = [];
  const singularValues: number[][] = [];
  for (let t = 0; t < taus.length; t++) {
    if (!usable[t]) {
      us.push(scope.add(await backend.upload(new Float32Array(m * k), [m, k])));
      singularValues.push([]);
      continue;
    }
    const svd = await truncatedSvd(backend, taus[t], k);
    backend.release(svd.V);
    us.push(scope.add(svd.U));
    singularValues.push(Array.from(svd.S, (s) => Math.max(0, s)));
  }
  const uHat = scope.add(await backend.concatColumns(us));
  for (const u of us) scope.drop(u);
  const gramOfU = await backend.read(scope.add(await backend.matmul(uHat, uHat, { transA: true })));
  return { singularValues, gramOfU };
}

function gramDiagonal(gram: ArrayLike<number>, n: number): number[] {
  return Array.from({ length: n }, (_, i) => gram[i * n + i]);
}

/** exp(−Σ p_j ln p_j), p_j = σ_j / Σσ (zero terms add nothing); null when Σσ = 0. */
export function entropyEffectiveRank(sigma: readonly number[]): number | null {
  const total = sigma.reduce((a, v) => a + v, 0);
  if (!(total > 0)) return null;
  let h = 0;
  for (const v of sigma) {
    const p = v / total;
    if (p > 0) h -= p * Math.log(p);
  }
  return Math.exp(h);
}

/** Mean of the non-null values (null when there are none). */
function meanOf(values: readonly (number | null)[]): number | null {
  let s = 0;
  let c = 0;
  for (const v of values) {
    if (v === null) continue;
    s += v;
    c++;
  }
  return c > 0 ? s / c : null;
}

/** Means over a group's matrices (see SubspaceGroupStats). */
export function summarizeSubspaceGroup(label: string, entries: readonly TensorSubspace[], n: number): SubspaceGroupStats {
  return {
    label,
    tensors: entries.length,
    overlap: Array.from({ length: n * n }, (_, p) => meanOf(entries.map((e) => e.overlap[p]))),
    chance: meanOf(entries.map((e) => e.rank / e.rows)),
    effectiveRank: Array.from({ length: n }, (_, i) => meanOf(entries.map((e) => e.effectiveRank[i]))),
    energy: Array.from({ length: n }, (_, i) => meanOf(entries.map((e) => e.energy[i]))),
  };
}

/** What summarizeSubspace reads of a tensor's model statistics. */
export interface SubspaceEntry {
  layer: number | null;
  kind: TensorKind;
  subspace: TensorSubspace | null;
}

/** The subspace statistics of a model set from its tensors' entries (matrices only; others are null). */
export function summarizeSubspace(entries: readonly SubspaceEntry[], n: number, numLayers: number, rank: number): SubspaceStats {
  const matrices = entries.filter((e): e is SubspaceEntry & { subspace: TensorSubspace } => e.subspace !== null);
  const group = (label: string, keep: (e: SubspaceEntry) => boolean) =>
    summarizeSubspaceGroup(
      label,
      matrices.filter(keep).map((e) => e.subspace),
      n,
    );
  const layers = Array.from({ length: numLayers }, (_, k) => k);
  const byKind: Partial<Record<TensorKind, SubspaceGroupStats>> = {};
  for (const kind of new Set(matrices.map((e) => e.kind))) byKind[kind] = group(`${kind} matrices`, (e) => e.kind === kind);
  return {
    rank,
    definitions: subspaceDefinitions(rank),
    whole: group('whole model', () => true),
    layers: layers.map((k) => group(`layer ${k}`, (e) => e.layer === k)),
    layersByKind: {
      attention: layers.map((k) => group(`layer ${k} attention`, (e) => e.layer === k && e.kind === 'attention')),
      mlp: layers.map((k) => group(`layer ${k} MLP`, (e) => e.layer === k && e.kind === 'mlp')),
    },
    byKind,
  };
}

/** The definitions behind the numbers, in words (for the JSON and the charts). */
export function subspaceDefinitions(rank: number): string[] {
  return [
    `Task vectors τ = x − base, unweighted (a recipe weight scales σ but leaves the directions and the overlap unchanged); weight matrices only (2-D, not embeddings or lm_head).`,
    `Top k = min(${rank}, rows, columns) singular values per matrix: exact (f64) where the smaller side is at most ${HOST_SVD_MAX_DIM}, else by randomized subspace iteration (10 extra columns, 2 power iterations; approximate where the spectrum is flat around σ_k).`,
    'Effective rank = exp(entropy of σ_j / Σσ) over the top k (1: one direction dominates; k: flat top-k spectrum).',
    `Subspace overlap = ‖U_iᵀU_j‖²_F / k over the top-k left singular vectors (k = the smaller numerical rank, σ > ${NOISE_FLOOR}·σ₁, where a task vector has fewer than k); 0 orthogonal, 1 the same subspace; random subspaces give k / rows.`,
    'Groups (a layer, attention or MLP) are means over their matrices.',
  ];
}
