/**
 * The polar factor of a matrix by the Newton–Schulz iteration, on Backend ops.
 *
 * For X = P·S·Qᵀ (thin SVD, r = min(m, n)) the polar factor is P·Qᵀ: for a tall X (m ≥ n) the
 * column-orthonormal X·(XᵀX)^−½, for a wide X the row-orthonormal (XXᵀ)^−½·X. Newton–Schulz maps
 * every singular value σ ∈ (0, √3) through p(σ) = 1.5σ − 0.5σ³ and leaves the singular vectors
 * alone, so the iterates converge to P·Qᵀ: quadratically near 1 (σ² − 1 = ε → ≈ −0.75ε²), by a
 * factor 1.5 per step for small σ (about log₁.₅ κ + 5 steps for condition number κ).
 *
 * Each step uses the smaller Gram matrix, r×r, as E = XᵀX − I (tall; XXᵀ − I when wide):
 *   X ← 1.5X − 0.5·X·(XᵀX) = X − 0.5·X·E      (one matmul with the addend X; E·X when wide)
 * Scaling (from G₀ = X̃ᵀX̃ for X̃ = X/‖X‖_F, so tr G₀ = 1, and g = ‖G₀‖_F): X₀ = s·X̃ with the
 * larger of two scales that both keep σ_max(X₀) inside the region of fast convergence:
 *   s_A = g^−½: σ_max² ≤ ‖XᵀX‖_F, so σ_max(X₀) ≤ 1 (loose by up to r^¼ for a flat spectrum);
 *   s_B = the least-squares scale s_LS = 1/g (minimizes ‖s²G₀ − I‖_F, exact for an orthonormal
 *   input up to a factor), where e = ‖s_LS²G₀ − I‖_F = √(r − 1/g²) bounds σ_max² ≤ 1 + e; when
 *   e > 0.7, s_B is shrunk by √(1.7/(1 + e)) so that σ_max² ≤ 1.7 (p(1.3) = 0.85: still fast).
 * A near-orthonormal input (TSV's stacked singular vectors) thus starts almost converged.
 *
 * Stopping rule, checked on each E_k before the step (the returned X_k is the iterate E_k
 * belongs to): stop when ‖E_k‖_F/√r ≤ tolerance (converged), or when ‖E_k‖_F ≤ 0.01 and
 * ‖E_k‖_F > ‖E_{k−1}‖_F/2 — past 0.01 the exact iteration gains a factor ≥ 100 per step, so
 * less than halving means the f32 rounding floor is reached (converged) — or after
 * maxIterations steps (not converged; callers decide).
 *
 * Accuracy: the polar factor of an f32 matrix is itself only determined to ~u·κ (u = 2^-24);
 * small well-conditioned matrices come out within a few 1e-7 of the f64 factor.
 */
import type { Backend, Tensor } from '../backend.ts';
import { frobeniusSquared, shapeOf } from './host.ts';

export interface PolarOptions {
  /** Converged when ‖XᵀX − I‖_F/√r ≤ tolerance (r = min(m, n)). @default 1e-6 */
  tolerance?: number;
  /** Newton–Schulz steps at most (each one r×r Gram and one product). @default 60 */
  maxIterations?: number;
}

export interface PolarResult {
  /** The polar factor P·Qᵀ, shape of the input (owned by the caller). */
  polar: Tensor;
  /** Newton–Schulz steps taken. */
  iterations: number;
  /** ‖XᵀX − I‖_F/√r of the returned factor (XXᵀ for a wide input). */
  residual: number;
  /** false when maxIterations ran out first (e.g. a rank-deficient input), or the input is zero. */
  converged: boolean;
}

/** Below this ‖E‖_F every |σ² − 1| ≤ 0.01 and an exact step shrinks ‖E‖ at least 100-fold. */
const QUADRATIC_REGIME = 0.01;

/** The polar factor of the 2-D tensor x by scaled Newton–Schulz (see the module comment). */
export async function polar(backend: Backend, x: Tensor, opts: PolarOptions = {}): Promise<PolarResult> {
  const [m, n] = shapeOf('polar', x);
  const tolerance = opts.tolerance ?? 1e-6;
  const maxIterations = opts.maxIterations ?? 60;
  const tall = m >= n;
  const r = Math.min(m, n);
  // The smaller Gram matrix, and the step a·X + b·X·E (E·X when wide).
  const gramOf = (t: Tensor, alpha: number) => backend.matmul(t, t, tall ? { transA: true, alpha } : { transB: true, alpha });
  const step = (t: Tensor, e: Tensor, a: number, b: number) =>
    tall ? backend.matmul(t, e, { alpha: b, addend: t, beta: a }) : backend.matmul(e, t, { alpha: b, addend: t, beta: a });
  const residualOf = async (e: Tensor) => Math.sqrt(await frobeniusSquared(backend, e));

  const f2 = r === 0 ? 0 : await frobeniusSquared(backend, x);
  if (!(f2 > 0)) {
    // Zero (or empty) input: its polar factor is not unique; return zeros.
    return { polar: await backend.lincomb([{ x, coef: 0 }]), iterations: 0, residual: Math.sqrt(r), converged: false };
  }
  // E₀ = X₀ᵀX₀ − I = s²·G₀ − I, and the factor `scale` that turns X into X₀.
  let e: Tensor;
  let scale: number;
  {
    using g0 = await gramOf(x, 1 / f2);
    const g = Math.sqrt(await frobeniusSquared(backend, g0));
    const sA = 1 / Math.sqrt(g);
    const lsResidual = Math.sqrt(Math.max(0, r - 1 / (g * g)));
    const sB = (1 / g) * (lsResidual <= 0.7 ? 1 : Math.sqrt(1.7 / (1 + lsResidual)));
    const s0 = Math.max(sA, sB);
    scale = s0 / Math.sqrt(f2);
    e = await backend.addDiagonal(g0, -1, s0 * s0);
  }
  let current: Tensor = x;
  let iterations = 0;
  let previous = Infinity;
  try {
    for (;;) {
      const norm = await residualOf(e);
      const converged = norm / Math.sqrt(r) <= tolerance || (norm <= QUADRATIC_REGIME && norm > previous / 2);
      if (converged || iterations >= maxIterations) {
        // current = x only if no step ran, which needs x to be orthonormal already (scale ≈ 1).
        const result = current === x ? await backend.lincomb([{ x, coef: scale }]) : current;
        return { polar: result, iterations, residual: norm / Math.sqrt(r), converged };
      }
      // X ← s·(X − 0.5·X·E); s = 1/c folds the initial scaling into the first step.
      const next = await step(current, e, scale, -0.5 * scale);
      backend.release(e);
      e = await gramOf(next, 1).then(async (gk) => {
        try {
          return await backend.addDiagonal(gk, -1);
        } finally {
          backend.release(gk);
        }
      });
      if (current !== x) backend.release(current);
      current = next;
      scale = 1;
      previous = norm;
      iterations++;
    }
  } catch (err) {
    if (current !== x) backend.release(current);
    throw err;
  } finally {
    backend.release(e);
  }
}
