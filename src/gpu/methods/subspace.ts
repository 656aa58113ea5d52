/**
 * What the subspace methods (TSV-M, Iso-C, Iso-CTS) share: the weighted task vectors
 * τ_t = w_t·(x_t − b), the rule for tensors that are not weight matrices (b + α·mean_t τ_t), and
 * the polar factor P·Qᵀ of a matrix by Newton–Schulz (src/gpu/linalg/polar.ts).
 */
import { isMatrixTensor } from '../../core/tensor-names.ts';
import { TensorScope, type Backend, type Tensor } from '../backend.ts';
import { symmetricEigen } from '../linalg/eigh.ts';
import { readF64, uploadMatrix } from '../linalg/host.ts';
import { polar } from '../linalg/polar.ts';
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

/** Below this λ_min/λ_max of XᵀX (κ(X) above 100) the Gram route loses too much: Newton–Schulz. */
const GRAM_POLAR_MIN_RATIO = 1e-4;

/**
 * The polar factor of a tall X whose columns are nearly orthonormal (singular vectors of several
 * tasks side by side) as X·(XᵀX)^−½: one Gram product, the eigendecomposition of the small Gram
 * matrix on the host in f64, one product — two products where Newton–Schulz needs two per step
 * (about 8 steps here). Its error is ~u·κ(X)², fine for κ near 1; a worse-conditioned X (tasks
 * sharing directions) goes to Newton–Schulz (~u·κ).
 */
export async function orthonormalColumnsPolar(backend: Backend, x: Tensor): Promise<Tensor> {
  const [rows, cols] = x.shape;
  if (cols === 0 || cols > rows) return polarFactor(backend, x);
  let eig;
  {
    using g = await backend.matmul(x, x, { transA: true });
    eig = symmetricEigen(await readF64(backend, g), cols);
  }
  const { values, vectors } = eig;
  if (!(values[cols - 1] > GRAM_POLAR_MIN_RATIO * values[0])) return polarFactor(backend, x);
  // (XᵀX)^−½ = W·Λ^−½·Wᵀ, in f64.
  const inv = new Float64Array(cols * cols);
  for (let i = 0; i < cols; i++) {
    for (let j = i; j < cols; j++) {
      let s = 0;
      for (let e = 0; e < cols; e++) s += (vectors[i * cols + e] * vectors[j * cols + e]) / Math.sqrt(values[e]);
      inv[i * cols + j] = s;
      inv[j * cols + i] = s;
    }
  }
  using root = await uploadMatrix(backend, inv, cols, cols);
  using y = await backend.matmul(x, root);
  // One Newton–Schulz step, Y ← Y − ½·Y·(YᵀY − I): squares the error of the f32 Gram route.
  using gram = await backend.matmul(y, y, { transA: true });
  using e = await backend.addDiagonal(gram, -1);
  return await backend.matmul(y, e, { alpha: -0.5, addend: y, beta: 1 });
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
