/**
 * Model Stock (mergekit): with task vectors δ_i = x_i − base of N ≥ 2 models, c = mean pairwise
 * cosine of the δ_i (norm product clamped to ≥ 1e-6, cosine clamped to [−1, 1]),
 * t = N·c / (1 + (N − 1)·c), result t·mean(x_i) + (1 − t)·base. `filter_wise` computes c and t per
 * row (one row for 1-D tensors) with gramRows and per-row coefficients.
 */
import { releasing, rowCount, type Tensor } from '../backend.ts';
import { expectAtLeast, gramBlock, ParamReader, requireBase, taskVectors } from './common.ts';
import type { MergeContext, MethodDescriptor } from './types.ts';

/** t = N·c/(1 + (N−1)·c) from one N×N Gram block of the task vectors; undefined if the denominator is 0. */
export function modelStockRatio(g: ArrayLike<number>, n: number): number | undefined {
  let sum = 0;
  let pairs = 0;
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      const normProduct = Math.sqrt(Math.max(g[i * n + i], 0)) * Math.sqrt(Math.max(g[j * n + j], 0));
      sum += Math.min(1, Math.max(-1, g[i * n + j] / Math.max(normProduct, 1e-6)));
      pairs++;
    }
  }
  const c = sum / pairs;
  const denominator = 1 + (n - 1) * c;
  if (denominator === 0) return undefined;
  return (n * c) / denominator;
}

export const modelStock: MethodDescriptor = {
  name: 'model_stock',
  prettyName: 'Model Stock',
  help: 'Average the models and pull the average toward the base by the angle between their task vectors',
  referenceUrl: 'https://arxiv.org/abs/2403.19522',
  params: [
    {
      name: 'filter_wise',
      kind: 'boolean',
      help: 'Compute the interpolation ratio per row instead of per tensor',
      default: false,
    },
  ],
  perModelParams: [],
  base: 'required',
  minModels: 2,
  async merge(ctx: MergeContext): Promise<Tensor> {
    const { backend } = ctx;
    const reader = new ParamReader('model_stock', ctx.tensorName);
    const base = requireBase(ctx, 'model_stock');
    const models = expectAtLeast(ctx, 'model_stock', 2);
    const filterWise = reader.boolean(ctx.params, 'filter_wise');
    if (filterWise && ctx.shape.length > 2) {
      throw reader.error(`filter_wise on a ${ctx.shape.length}-D tensor is not supported (only 1-D and 2-D)`);
    }
    const n = models.length;
    const deltas = await taskVectors(backend, base, models.map((m) => m.tensor));
    let ratio: number | Float32Array;
    {
      // The task vectors are needed only for the ratio: released before the combination.
      using _deltas = releasing(backend, deltas);
      if (filterWise) {
        const rows = rowCount(ctx.shape);
        const g = await backend.gramRows(deltas);
        ratio = new Float32Array(rows);
        for (let r = 0; r < rows; r++) {
          const t = modelStockRatio(gramBlock(g, n, r), n);
          if (t === undefined) throw reader.error(`row ${r}: mean cosine −1/(N−1) makes the ratio 1/0`);
          ratio[r] = t;
        }
      } else {
        const t = modelStockRatio(await backend.gram(deltas), n);
        if (t === undefined) throw reader.error('mean cosine −1/(N−1) of the task vectors makes the ratio 1/0');
        ratio = t;
      }
    }
    const perModel = typeof ratio === 'number' ? ratio / n : ratio.map((t) => t / n);
    const baseCoef = typeof ratio === 'number' ? 1 - ratio : ratio.map((t) => 1 - t);
    return backend.lincomb([...models.map((m) => ({ x: m.tensor, coef: perModel })), { x: base, coef: baseCoef }]);
  },
};
