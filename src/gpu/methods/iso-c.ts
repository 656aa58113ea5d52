/**
 * Iso-C (Marczak et al., "No Task Left Behind: Isotropic Model Merging with Common and
 * Task-Specific Subspaces", ICML 2025). Per weight matrix: M = Σ_t τ_t, SVD M = U·S·Vᵀ with r
 * singular values, σ̄ = their mean; Δ = σ̄·U·Vᵀ = σ̄·polar(M) flattens the spectrum so no task's
 * directions dominate; result b + α·Δ. Every non-matrix tensor: b + α·mean_t τ_t.
 * polar(M) from M's small Gram matrix (qrPolar; Newton–Schulz when M is poorly conditioned);
 * σ̄ = ⟨M, polar(M)⟩_F / r (= trace(S)/r, no SVD needed). All task vectors zero gives σ̄ = 0 and
 * Δ = 0.
 */
import { TensorScope } from '../backend.ts';
import { qrPolar, subspaceMerge, SUBSPACE_PARAMS } from './subspace.ts';
import type { MethodDescriptor } from './types.ts';

export const isoC: MethodDescriptor = {
  name: 'iso_c',
  prettyName: 'Iso-C',
  help: 'Isotropic merging: the summed task vector with its singular values all set to their mean',
  referenceUrl: 'https://arxiv.org/abs/2502.04959',
  ...SUBSPACE_PARAMS,
  base: 'required',
  minModels: 1,
  merge(ctx) {
    const { backend } = ctx;
    return subspaceMerge(ctx, 'iso_c', async (taus, base, alpha) => {
      using scope = new TensorScope(backend);
      const sum = scope.add(await backend.lincomb(taus.map((x) => ({ x, coef: 1 }))));
      const w = scope.add(await qrPolar(backend, sum));
      const sigmaBar = (await backend.gram([sum, w]))[1] / Math.min(ctx.shape[0], ctx.shape[1]);
      return await backend.lincomb([
        { x: base, coef: 1 },
        { x: w, coef: alpha * sigmaBar },
      ]);
    });
  },
};
