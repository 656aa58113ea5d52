/**
 * What the subspace methods (TSV-M, Iso-C, Iso-CTS) share: the weighted task vectors
 * τ_t = w_t·(x_t − b), the rule for tensors that are not weight matrices (b + α·mean_t τ_t), and
 * the polar factor P·Qᵀ of a matrix by Newton–Schulz (src/gpu/linalg/polar.ts).
 */
import { isMatrixTensor } from '../../core/tensor-names.ts';
import { TensorScope, type Backend, type Tensor } from '../backend.ts';
import { symmetricEigen } from '../linalg/eigh.ts';
import { uploadMatrix } from '../linalg/host.ts';
import { polar } from '../linalg/polar.ts';
import { qr, RankDeficientError } from '../linalg/qr.ts';
import { nonBaseModels, ParamReader, requireBase } from './common.ts';
import type { MergeContext, MethodDescriptor } from './types.ts';

export { isMatrixTensor };

/** τ_t = w_t·(x_t − b) for every non-base model (the caller releases them). */
export async function weightedTaskVectors(ctx: MergeContext, method: string): Promise<Tensor[]> {
  const { backend } = ctx;
  const reader = new ParamReader(method, ctx.tensorName);
  const base = requireBase(ctx, method);
  using scope = new TensorScope(backend);
  const taus: Tensor[] = [];
  for (const m of nonBaseModels(ctx)) {
    const w = reader.number(m.params, 'weight', m);
    taus.push(
      scope.add(
        await backend.lincomb([
          { x: m.tensor, coef: w },
          { x: base, coef: -w },
        ]),
      ),
    );
  }
  return taus.map((t) => scope.keep(t));
}

/** b + α·mean_t(τ_t): every tensor that is not a weight matrix (norms, biases, embeddings). */
export async function meanMerge(backend: Backend, base: Tensor, taus: readonly Tensor[], alpha: number): Promise<Tensor> {
  const coef = taus.length > 0 ? alpha / taus.length : 0;
  return backend.lincomb([{ x: base, coef: 1 }, ...taus.map((x) => ({ x, coef }))]);
}

/** The polar factor P·Qᵀ of X = P·S·Qᵀ (column-orthonormal for a tall X); the caller releases it. */
export async function polarFactor(backend: Backend, x: Tensor): Promise<Tensor> {
  return (await polar(backend, x)).polar;
}

/**
 * R·(RᵀR)^−½ for an r×r upper-triangular R (row-major f64): the polar factor of R, in f64 on the
 * host; undefined when RᵀR is not positive definite to f64 precision.
 */
function triangularPolar(R: Float64Array, r: number): Float64Array | undefined {
  const rtr = new Float64Array(r * r);
  for (let i = 0; i < r; i++) {
    for (let j = i; j < r; j++) {
      let s = 0;
      for (let k = 0; k <= Math.min(i, j); k++) s += R[k * r + i] * R[k * r + j];
      rtr[i * r + j] = s;
      rtr[j * r + i] = s;
    }
  }
  const { values, vectors } = symmetricEigen(rtr, r);
  if (!(values[r - 1] > 0)) return undefined;
  const invRoot = new Float64Array(r * r);
  for (let i = 0; i < r; i++) {
    for (let j = i; j < r; j++) {
      let s = 0;
      for (let e = 0; e < r; e++) s += (vectors[i * r + e] * vectors[j * r + e]) / Math.sqrt(values[e]);
      invRoot[i * r + j] = s;
      invRoot[j * r + i] = s;
    }
  }
  const out = new Float64Array(r * r);
  for (let i = 0; i < r; i++) {
    for (let k = i; k < r; k++) {
      const v = R[i * r + k];
      if (v !== 0) for (let j = 0; j < r; j++) out[i * r + j] += v * invRoot[k * r + j];
    }
  }
  return out;
}

/**
 * The polar factor P·Qᵀ of X through a thin QR of its tall side: X = Q·R (CholeskyQR2, f32
 * products, R in f64 on the host), polar(X) = Q·polar(R) with polar(R) = R·(RᵀR)^−½ from an f64
 * eigendecomposition of the small r×r RᵀR; a wide X goes through Xᵀ. About five products whatever
 * the condition number κ (Newton–Schulz from X takes about log₁.₅κ + 5 steps of two), and as
 * accurate (~u·κ): the f32 work is the QR, which is backward stable. A rank-deficient X, whose
 * polar factor is not unique, goes to Newton–Schulz (src/gpu/linalg/polar.ts).
 */
export async function qrPolar(backend: Backend, x: Tensor): Promise<Tensor> {
  const [rows, cols] = x.shape;
  const tall = rows >= cols;
  const r = Math.min(rows, cols);
  if (r === 0) return polarFactor(backend, x);
  using transposed = tall ? undefined : await backend.transpose(x);
  let factors;
  try {
    factors = await qr(backend, transposed ?? x);
  } catch (err) {
    if (err instanceof RankDeficientError) return polarFactor(backend, x);
    throw err;
  }
  using q = factors.Q;
  const w = triangularPolar(factors.R, r);
  if (!w) return polarFactor(backend, x);
  using wt = await uploadMatrix(backend, w, r, r);
  // Tall: Q·W. Wide: polar(X) = polar(Xᵀ)ᵀ = Wᵀ·Qᵀ.
  return tall ? await backend.matmul(q, wt) : await backend.matmul(wt, q, { transA: true, transB: true });
}

/** b + alpha·Δ with Δ = P·diag(s)·Qᵀ for column factors P (m×r), Q (n×r). */
export async function addScaledProduct(backend: Backend, base: Tensor, p: Tensor, s: Float32Array, q: Tensor, alpha: number): Promise<Tensor> {
  using ps = await backend.scaleColumns(p, s);
  return await backend.matmul(ps, q, { transB: true, alpha, addend: base, beta: 1 });
}

/** Global `alpha` and per-model `weight`, as every subspace method declares them. */
export const SUBSPACE_PARAMS: Pick<MethodDescriptor, 'params' | 'perModelParams'> = {
  params: [
    {
      name: 'alpha',
      kind: 'number',
      help: 'Scale of the merged task vector before it is added to the base',
      default: 1,
      softMin: 0,
      softMax: 2,
    },
  ],
  perModelParams: [{ name: 'weight', kind: 'number', help: "Weight of this model's task vector", default: 1, softMin: 0, softMax: 1 }],
};

/**
 * The common frame of a subspace method's merge: τ_t for the tensor, the mean rule for tensors
 * that are not matrices (and for matrices `matrix` declines by returning undefined), and the
 * release of every τ_t.
 */
export async function subspaceMerge(
  ctx: MergeContext,
  method: string,
  matrix: (taus: readonly Tensor[], base: Tensor, alpha: number) => Promise<Tensor | undefined>,
): Promise<Tensor> {
  const { backend } = ctx;
  const reader = new ParamReader(method, ctx.tensorName);
  const base = requireBase(ctx, method);
  const alpha = reader.number(ctx.params, 'alpha');
  using scope = new TensorScope(backend);
  const taus = scope.addAll(await weightedTaskVectors(ctx, method));
  if (taus.length > 0 && isMatrixTensor(ctx.tensorName, ctx.shape)) {
    const merged = await matrix(taus, base, alpha);
    if (merged) return merged;
  }
  return await meanMerge(backend, base, taus, alpha);
}
