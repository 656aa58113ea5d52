/**
 * TSV-M (Gargiulo et al., "Task Singular Vectors: Reducing Task Interference in Model Merging",
 * CVPR 2025). Per weight matrix (m×n, r = min(m, n)) with T task vectors τ_t: k = floor(r/T); the
 * top k singular triplets of each τ_t, side by side, Û = [U_1..U_T] (m×Tk), ŝ, V̂ = [V_1..V_T]
 * (n×Tk); Δ = polar(Û)·diag(ŝ)·polar(V̂)ᵀ decorrelates the tasks' subspaces; result b + α·Δ.
 * k = 0 (fewer dimensions than tasks) and every non-matrix tensor: b + α·mean_t τ_t.
 * SVDs are thinSvd (Gram + host eigendecomposition, src/gpu/linalg); the stacked singular
 * vectors' polar factors come from their small Gram matrix (qrPolar, subspace.ts).
 */
import { TensorScope } from '../backend.ts';
import { thinSvd } from '../linalg/svd.ts';
import { addScaledProduct, qrPolar, subspaceMerge, SUBSPACE_PARAMS } from './subspace.ts';
import type { MethodDescriptor } from './types.ts';

export const tsv: MethodDescriptor = {
  name: 'tsv',
  prettyName: 'TSV-M',
  help: "Task singular vectors: each task's top singular directions, decorrelated (polar factors) and recombined",
  referenceUrl: 'https://arxiv.org/abs/2412.00081',
  ...SUBSPACE_PARAMS,
  base: 'required',
  minModels: 1,
  merge(ctx) {
    const { backend } = ctx;
    return subspaceMerge(ctx, 'tsv', async (taus, base, alpha) => {
      const [m, n] = ctx.shape;
      const k = Math.floor(Math.min(m, n) / taus.length);
      if (k === 0) return undefined;
      using scope = new TensorScope(backend);
      const us = [];
      const vs = [];
      const s = new Float32Array(k * taus.length);
      for (let t = 0; t < taus.length; t++) {
        const svd = await thinSvd(backend, taus[t], { rank: k });
        us.push(scope.add(svd.U));
        vs.push(scope.add(svd.V));
        s.set(svd.S, t * k);
      }
      const uHat = scope.add(await backend.concatColumns(us));
      for (const u of us) scope.drop(u);
      const vHat = scope.add(await backend.concatColumns(vs));
      for (const v of vs) scope.drop(v);
      const pu = scope.add(await qrPolar(backend, uHat));
      scope.drop(uHat);
      const pv = scope.add(await qrPolar(backend, vHat));
      scope.drop(vHat);
      return await addScaledProduct(backend, base, pu, s, pv, alpha);
    });
  },
};
