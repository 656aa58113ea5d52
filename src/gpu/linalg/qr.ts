/**
 * Thin QR of a tall matrix by CholeskyQR2 (Fukaya et al. 2014), written on Backend ops:
 *
 *   G = XᵀX (backend matmul)  →  G = RᵀR (Cholesky on the host, f64)  →  Q = X·R⁻¹ (backend), twice.
 *
 * One pass leaves Q orthonormal to ~u·κ(X)², so the second pass, on a Q with κ ≈ 1, brings it to
 * ~u·n (u = 2^-24: the Gram and the products are f32). CholeskyQR needs κ(X) below ~u^-½ ≈ 4000:
 * when a pivot falls under 2^-20 of the largest diagonal entry of G, the pass is redone on
 * G + s·I with s = (m + n(n+1))·u·‖X‖_F² (shifted CholeskyQR, Fukaya et al. 2020), which always
 * factors and shrinks κ by roughly √s/‖X‖; then the unshifted passes resume. The result is
 * X = Q·R with R = R_last···R_first (f64 on the host).
 *
 * Rank deficiency: when a column of X lies in the span of the previous ones to f32 precision
 * (|R_jj| below 8·√m·u of the largest |R_ii|), qr throws RankDeficientError, unless asked to
 * complete the basis: then the shifted passes amplify the rounding noise in the missing directions
 * until Q is orthonormal, and Q's span contains X's (truncatedSvd's range finder wants that).
 */
import type { Backend, Tensor } from '../backend.ts';
import { cholesky, invertUpper, LinalgError, multiply, readF64, shapeOf, uploadMatrix } from './host.ts';

export interface QrOptions {
  /**
   * On (numerically) linearly dependent columns: 'throw' a RankDeficientError, or 'complete' Q to
   * an orthonormal basis with directions from rounding noise (R then has tiny diagonal entries).
   * @default 'throw'
   */
  rankDeficient?: 'throw' | 'complete';
}

export interface QrResult {
  /** m×n with orthonormal columns (owned by the caller). */
  Q: Tensor;
  /** n×n upper-triangular, row-major, f64: X = Q·R. */
  R: Float64Array;
  /** Shifted passes that were needed (0 for κ(X) below ~1000). */
  shiftedPasses: number;
}

export class RankDeficientError extends Error {
  constructor(reason: string) {
    super(`qr: ${reason}`);
    this.name = 'RankDeficientError';
  }
}

const U = 2 ** -24;
/** A pivot below this fraction of max_j G_jj sends the pass to the shifted Gram. */
const PIVOT_FLOOR = 2 ** -20;
/** Shifted passes allowed in a row (each gains a factor ~√(s)/‖X‖ in κ; noise needs ~4 to fill). */
const MAX_SHIFTED = 6;

/** Thin QR of the m×n tensor x (m ≥ n) by CholeskyQR2; see the module comment. */
export async function qr(backend: Backend, x: Tensor, opts: QrOptions = {}): Promise<QrResult> {
  const [m, n] = shapeOf('qr', x);
  if (m < n) throw new LinalgError('qr', `needs at least as many rows as columns, got a ${m}×${n} matrix`);
  if (n === 0) return { Q: await backend.sliceColumns(x, 0, 0), R: new Float64Array(0), shiftedPasses: 0 };
  let current: Tensor = x;
  let R = identity(n);
  let shiftedPasses = 0;
  let shiftedInARow = 0;
  let plainInARow = 0;
  try {
    while (plainInARow < 2) {
      const g = await gram(backend, current, n);
      let maxDiag = 0;
      let trace = 0;
      for (let j = 0; j < n; j++) {
        maxDiag = Math.max(maxDiag, g[j * n + j]);
        trace += g[j * n + j];
      }
      if (!(trace > 0)) throw new RankDeficientError(`the ${m}×${n} matrix is zero (or not finite): it has no orthonormal basis`);
      let step = cholesky(g, n, () => PIVOT_FLOOR * maxDiag);
      if ('failedAt' in step) {
        if (shiftedInARow >= MAX_SHIFTED) {
          throw new RankDeficientError(`the ${m}×${n} matrix stays rank deficient after ${MAX_SHIFTED} shifted passes (column ${step.failedAt})`);
        }
        const shift = (m + n * (n + 1)) * U * trace;
        for (let j = 0; j < n; j++) g[j * n + j] += shift;
        step = cholesky(g, n, () => 0);
        if ('failedAt' in step) throw new RankDeficientError(`the shifted Gram matrix of the ${m}×${n} matrix is not positive definite (column ${step.failedAt})`);
        shiftedPasses++;
        shiftedInARow++;
        plainInARow = 0;
      } else {
        shiftedInARow = 0;
        plainInARow++;
      }
      const next = await timesInverse(backend, current, step.r, n);
      if (current !== x) backend.release(current);
      current = next;
      R = multiply(step.r, R, n, n, n);
    }
  } catch (err) {
    if (current !== x) backend.release(current);
    throw err;
  }
  if (opts.rankDeficient !== 'complete') {
    let maxR = 0;
    for (let j = 0; j < n; j++) maxR = Math.max(maxR, Math.abs(R[j * n + j]));
    const floor = 8 * Math.sqrt(m) * U * maxR;
    for (let j = 0; j < n; j++) {
      if (Math.abs(R[j * n + j]) <= floor) {
        backend.release(current);
        throw new RankDeficientError(
          `the columns of the ${m}×${n} matrix are linearly dependent to f32 precision: column ${j} lies within ` +
            `${(Math.abs(R[j * n + j]) / maxR).toExponential(2)}·max|R_ii| of the span of the columns before it`,
        );
      }
    }
  }
  return { Q: current, R, shiftedPasses };
}

/** XᵀX of the m×n tensor x, on the host in f64. */
async function gram(backend: Backend, x: Tensor, n: number): Promise<Float64Array> {
  using g = await backend.matmul(x, x, { transA: true });
  const values = await readF64(backend, g);
  if (values.length !== n * n) throw new LinalgError('qr', `Gram matrix of ${values.length} values for ${n} columns`);
  return values;
}

/** x·R⁻¹ for an upper-triangular host R (uploaded in f32). */
async function timesInverse(backend: Backend, x: Tensor, r: Float64Array, n: number): Promise<Tensor> {
  using inv = await uploadMatrix(backend, invertUpper(r, n), n, n);
  return await backend.matmul(x, inv);
}

function identity(n: number): Float64Array {
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++) out[i * n + i] = 1;
  return out;
}
