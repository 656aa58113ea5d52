/**
 * Iso-CTS (Marczak et al., "No Task Left Behind", ICML 2025): Iso-C with room for each task. Per
 * weight matrix (m×n, r = min(m, n)), f = `common_space_fraction`:
 *   k = floor(f·r); s = min(round((r − k)/T), floor(r/T))·T (round half to even); k = r − s; p = s/T.
 *   Common subspace: the top k singular triplets U_c, σ_c, V_c of M = Σ_t τ_t.
 *   Task-specific: the top p triplets U_t, s_t, V_t of R_t = τ_t − U_c·(U_cᵀ·τ_t).
 *   Δ = mean(s_1..s_T, σ_c)·polar([U_1..U_T, U_c])·polar([V_1..V_T, V_c])ᵀ; result b + α·Δ.
 * p = 0 is Iso-C; every non-matrix tensor gets b + α·mean_t τ_t.
 * SVDs are thinSvd (Gram + host eigendecomposition, src/gpu/linalg); the stacked singular
 * vectors' polar factors come from their small Gram matrix (qrPolar, subspace.ts).
 */
import { TensorScope, type Tensor } from '../backend.ts';
import { thinSvd } from '../linalg/svd.ts';
import { isoC } from './iso-c.ts';
import { nonBaseModels, ParamReader } from './common.ts';
import { addScaledProduct, isMatrixTensor, qrPolar, subspaceMerge, SUBSPACE_PARAMS } from './subspace.ts';
import type { MethodDescriptor } from './types.ts';

/** Round half to even (Python's round, as the paper's code). */
function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** Sizes of the common (k) and per-task (p) subspaces for rank r, T tasks and fraction f. */
export function isoCtsSizes(r: number, tasks: number, fraction: number): { common: number; perTask: number } {
  const k0 = Math.floor(fraction * r);
  const s = Math.min(roundHalfEven((r - k0) / tasks), Math.floor(r / tasks)) * tasks;
  return { common: r - s, perTask: s / tasks };
}

export const isoCts: MethodDescriptor = {
  name: 'iso_cts',
  prettyName: 'Iso-CTS',
  help: 'Isotropic merging in a common subspace plus task-specific subspaces, spectrum flattened',
  referenceUrl: 'https://arxiv.org/abs/2502.04959',
  params: [
    ...SUBSPACE_PARAMS.params,
    {
      name: 'common_space_fraction',
      kind: 'number',
      help: 'Share of the rank given to the common subspace of the summed task vector (0 < f < 1)',
      default: 0.8,
      min: 0,
      max: 1,
      softMin: 0.5,
      softMax: 0.95,
    },
  ],
  perModelParams: SUBSPACE_PARAMS.perModelParams,
  base: 'required',
  minModels: 1,
  merge(ctx) {
    const { backend } = ctx;
    const reader = new ParamReader('iso_cts', ctx.tensorName);
    const fraction = reader.number(ctx.params, 'common_space_fraction');
    if (!(fraction > 0 && fraction < 1)) throw reader.error(`common_space_fraction must be in (0, 1), got ${fraction}`);
    const r = Math.min(ctx.shape[0], ctx.shape[1]);
    const tasks = nonBaseModels(ctx).length;
    if (isMatrixTensor(ctx.tensorName, ctx.shape) && tasks > 0 && isoCtsSizes(r, tasks, fraction).perTask === 0) return isoC.merge(ctx);
    return subspaceMerge(ctx, 'iso_cts', async (taus, base, alpha) => {
      const { common: k, perTask: p } = isoCtsSizes(r, taus.length, fraction);
      using scope = new TensorScope(backend);
      const sum = scope.add(await backend.lincomb(taus.map((x) => ({ x, coef: 1 }))));
      const c = await thinSvd(backend, sum, { rank: k });
      const uc = scope.add(c.U);
      const vc = scope.add(c.V);
      scope.drop(sum);
      const us: Tensor[] = [];
      const vs: Tensor[] = [];
      let total = c.S.reduce((a, b) => a + b, 0);
      for (let t = 0; t < taus.length; t++) {
        // R_t = τ_t − U_c·(U_cᵀ·τ_t): the part of τ_t outside the common subspace.
        using proj = await backend.matmul(uc, taus[t], { transA: true });
        using residual = await backend.matmul(uc, proj, { alpha: -1, addend: taus[t], beta: 1 });
        const svd = await thinSvd(backend, residual, { rank: p });
        us.push(scope.add(svd.U));
        vs.push(scope.add(svd.V));
        total += svd.S.reduce((a, b) => a + b, 0);
      }
      const mean = total / r;
      const uCat = scope.add(await backend.concatColumns([...us, uc]));
      const vCat = scope.add(await backend.concatColumns([...vs, vc]));
      for (const x of [...us, ...vs, uc, vc]) scope.drop(x);
      const pu = scope.add(await qrPolar(backend, uCat));
      scope.drop(uCat);
      const pv = scope.add(await qrPolar(backend, vCat));
      scope.drop(vCat);
      return await addScaledProduct(backend, base, pu, new Float32Array(r).fill(mean), pv, alpha);
    });
  },
};
