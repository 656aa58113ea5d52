/**
 * Singular value decompositions on Backend ops.
 *
 * thinSvd: X (m×n, r = min(m, n)) through the Gram matrix of its smaller side. For a tall X:
 *   G = XᵀX (backend) → G = W·Λ·Wᵀ (symmetricEigen, host f64) → Y = X·W_k (backend),
 *   σ_j = ‖Y e_j‖ (columnDots, f64), U = Y·diag(1/σ) (scaleColumns), V = W_k.
 * A wide X does the same with XXᵀ and Xᵀ·W_k, giving U = W_k and V = Xᵀ·W_k·diag(1/σ).
 * Taking σ_j as ‖X·w_j‖ rather than √λ_j keeps small singular values accurate to ~u·σ₁ instead of
 * ~√u·σ₁. The f32 Gram resolves directions only down to σ ≈ √u·σ₁ (u = 2^-24, √u ≈ 2.4e-4): the
 * columns of the computed factor (U for tall, V for wide) are orthonormal to ~u·(σ₁/σ_j)², and
 * beyond the numerical rank they are noise (a column with σ_j = 0 exactly is zero).
 * Cost: one m·n·r Gram, one m·n·k product, and an r×r eigendecomposition on the host (see
 * eigh.ts: seconds for r ≈ 1000, minutes for r = 4096).
 *
 * truncatedSvd: the top k triplets by randomized subspace iteration (Halko, Martinsson & Tropp
 * 2011, alg. 4.4): l = k + oversample columns, Ω Gaussian n×l from a fixed seed, Q = qr(X·Ω), then
 * q times Q = qr(X·qr(Xᵀ·Q)) (re-orthonormalized at every product, so small singular values are
 * not drowned), and Rayleigh–Ritz: B = Qᵀ·X (l×n), thinSvd(B) = Ũ·S·Vᵀ, U = Q·Ũ. The error in σ_j
 * shrinks like (σ_{l+1}/σ_j)^(2q+1). When l would be at least half of r, the exact thinSvd is as
 * cheap and is used instead.
 */
import type { Backend, Tensor } from '../backend.ts';
import { symmetricEigen } from './eigh.ts';
import { gaussianMatrix, leadingColumns, LinalgError, readF64, shapeOf, uploadMatrix } from './host.ts';
import { qr } from './qr.ts';

export interface SvdResult {
  /** m×k, the left singular vectors as columns (owned by the caller). */
  U: Tensor;
  /** k singular values, largest first. */
  S: Float64Array;
  /** n×k, the right singular vectors as columns (owned by the caller). */
  V: Tensor;
}

export interface ThinSvdOptions {
  /** Keep the k largest triplets. @default min(m, n) */
  rank?: number;
}

export interface TruncatedSvdOptions {
  /** Extra columns of the random subspace. @default 10 */
  oversample?: number;
  /** Subspace (power) iterations q. @default 2 */
  powerIterations?: number;
  /** Seed of the Gaussian start (same seed, same result on every backend). @default 0 */
  seed?: number;
}

/** X = U·diag(S)·Vᵀ through the Gram matrix of the smaller side (see the module comment). */
export async function thinSvd(backend: Backend, x: Tensor, opts: ThinSvdOptions = {}): Promise<SvdResult> {
  const [m, n] = shapeOf('thinSvd', x);
  const r = Math.min(m, n);
  const k = opts.rank ?? r;
  if (!(Number.isInteger(k) && k >= 0 && k <= r)) throw new LinalgError('thinSvd', `rank ${k} outside [0, ${r}] for a ${m}×${n} matrix`);
  const tall = m >= n;
  let w: Float64Array;
  {
    using g = await backend.matmul(x, x, tall ? { transA: true } : { transB: true });
    const eig = symmetricEigen(await readF64(backend, g), r);
    w = leadingColumns(eig.vectors, r, r, k);
  }
  // Y = X·W_k (tall) or Xᵀ·W_k (wide): the other side's vectors times σ.
  const project = async (basis: Float64Array) => {
    using wt = await uploadMatrix(backend, basis, r, k);
    return await backend.matmul(x, wt, tall ? {} : { transA: true });
  };
  let y = await project(w);
  try {
    let s = Float64Array.from(await backend.columnDots(y, y), Math.sqrt);
    // f32 rounding can swap nearly equal values: keep the promise "largest first".
    const order = Array.from({ length: k }, (_, j) => j).sort((a, b) => s[b] - s[a] || a - b);
    if (order.some((j, i) => j !== i)) {
      w = permuteColumns(w, r, order);
      s = Float64Array.from(order, (j) => s[j]);
      backend.release(y);
      y = await project(w);
    }
    const other = await backend.scaleColumns(y, Float32Array.from(s, (v) => (v > 0 ? 1 / v : 0)));
    let side: Tensor;
    try {
      side = await uploadMatrix(backend, w, r, k);
    } catch (err) {
      backend.release(other);
      throw err;
    }
    return tall ? { U: other, S: s, V: side } : { U: side, S: s, V: other };
  } finally {
    backend.release(y);
  }
}

/** The k largest singular triplets by randomized subspace iteration (see the module comment). */
export async function truncatedSvd(backend: Backend, x: Tensor, k: number, opts: TruncatedSvdOptions = {}): Promise<SvdResult> {
  const [m, n] = shapeOf('truncatedSvd', x);
  const r = Math.min(m, n);
  if (!(Number.isInteger(k) && k >= 0 && k <= r)) throw new LinalgError('truncatedSvd', `k = ${k} outside [0, ${r}] for a ${m}×${n} matrix`);
  const oversample = opts.oversample ?? 10;
  const q = opts.powerIterations ?? 2;
  if (!(Number.isInteger(oversample) && oversample >= 0)) throw new LinalgError('truncatedSvd', `oversample ${oversample} is not a non-negative integer`);
  if (!(Number.isInteger(q) && q >= 0)) throw new LinalgError('truncatedSvd', `powerIterations ${q} is not a non-negative integer`);
  const l = Math.min(r, k + oversample);
  if (k === 0 || 2 * l >= r) return thinSvd(backend, x, { rank: k });
  // An orthonormal basis of the product's columns (completed when they are dependent); the product is released.
  const basisOf = async (product: Promise<Tensor>) => {
    using y = await product;
    return (await qr(backend, y, { rankDeficient: 'complete' })).Q;
  };
  let basis: Tensor;
  {
    using omega = await uploadMatrix(backend, gaussianMatrix(opts.seed ?? 0, n, l), n, l);
    basis = await basisOf(backend.matmul(x, omega));
  }
  try {
    for (let i = 0; i < q; i++) {
      const right = await basisOf(backend.matmul(x, basis, { transA: true }));
      backend.release(basis);
      try {
        basis = await basisOf(backend.matmul(x, right));
      } finally {
        backend.release(right);
      }
    }
    // Rayleigh–Ritz: B = Qᵀ·X = Ũ·S·Vᵀ, so X ≈ (Q·Ũ)·S·Vᵀ.
    using b = await backend.matmul(basis, x, { transA: true });
    const small = await thinSvd(backend, b, { rank: k });
    try {
      const U = await backend.matmul(basis, small.U);
      return { U, S: small.S, V: small.V };
    } catch (err) {
      backend.release(small.V);
      throw err;
    } finally {
      backend.release(small.U);
    }
  } finally {
    backend.release(basis);
  }
}

/** Columns of a row-major rows×k matrix in the given order. */
function permuteColumns(a: Float64Array, rows: number, order: readonly number[]): Float64Array {
  const k = order.length;
  const out = new Float64Array(rows * k);
  for (let i = 0; i < rows; i++) for (let j = 0; j < k; j++) out[i * k + j] = a[i * k + order[j]];
  return out;
}
