/**
 * Arcee Fusion (mergekit `arcee_fusion`): the base plus the other model's change only where it
 * matters. Per tensor, with d = x − base: importance = |d|·KL(softmax(x) + 1e-8 ‖ softmax(base) +
 * 1e-8), the KL taken per row over the last dimension (a 1-D tensor is one row); threshold =
 * median + 1.5·(q3 − q1) of the importances, each quantile the sorted value at index
 * floor(q·(n − 1)); result base + d where importance ≥ threshold, base elsewhere.
 *
 * Differences from mergekit, both by design: the KL is computed without its f32 cancellation (see
 * the backend's softmaxKlRows; mergekit's own f32 value is off by up to a few percent for rows that
 * barely changed, so entries right at the threshold may land on either side), and the quantiles are
 * exact over the whole tensor, where mergekit sorts a random sample of 1,000,000 entries for larger
 * tensors (so its own runs differ from each other there).
 */
import { TensorScope, type Tensor } from '../backend.ts';
import { expectNonBase, requireBase } from './common.ts';
import { onesLike } from './indicators.ts';
import { MethodError, type MergeContext, type MethodDescriptor } from './types.ts';

/** Added to both softmaxes before the KL (mergekit's eps). */
const SOFTMAX_EPS = 1e-8;
const QUANTILES = [0.25, 0.5, 0.75] as const;
const fr = Math.fround;

export const arceeFusion: MethodDescriptor = {
  name: 'arcee_fusion',
  prettyName: 'Arcee Fusion',
  help: "Take the other model's change only where it is unusually important (|change| × KL of the row's softmax, above median + 1.5 IQR)",
  referenceUrl: 'https://arcee.ai',
  params: [],
  perModelParams: [],
  base: 'required',
  minModels: 1,
  maxModels: 2,
  async merge(ctx: MergeContext): Promise<Tensor> {
    const { backend, shape } = ctx;
    const base = requireBase(ctx, 'arcee_fusion');
    const [other] = expectNonBase(ctx, 'arcee_fusion', 1);
    if (shape.length > 2) {
      throw new MethodError('arcee_fusion', ctx.tensorName, `${shape.length}-D tensors are not supported (the KL is taken per row of a 1-D or 2-D tensor)`);
    }
    const rowLength = shape.length === 0 ? 1 : shape[shape.length - 1];

    using scope = new TensorScope(backend);
    const delta = scope.add(
      await backend.lincomb([
        { x: other.tensor, coef: 1 },
        { x: base, coef: -1 },
      ]),
    );
    const kl = await backend.softmaxKlRows(other.tensor, base, rowLength, SOFTMAX_EPS);
    // Signed importance d·KL: its magnitude is |d|·KL (KL ≥ 0), which is all that ranks and masks read.
    const importance = scope.add(await backend.lincomb([{ x: delta, coef: Float32Array.from(kl) }]));

    const n = base.numel;
    const [q1, median, q3] = await Promise.all(QUANTILES.map((q) => valueAtRank(ctx, importance, Math.floor(fr(fr(q) * (n - 1))))));
    const threshold = fr(median + fr(1.5 * fr(q3 - q1)));

    const ones = scope.add(await onesLike(backend, base));
    const keep = scope.add(await backend.absAtLeast(importance, ones, threshold));
    scope.drop(importance);
    const kept = scope.add(await backend.multiply(delta, keep));
    return await backend.lincomb([
      { x: base, coef: 1 },
      { x: kept, coef: 1 },
    ]);
  },
};

/** |x| at ascending magnitude rank `rank` (the sorted value there, whatever the order of ties). */
async function valueAtRank(ctx: MergeContext, x: Tensor, rank: number): Promise<number> {
  using only = await ctx.backend.keepRankBand(x, rank, rank + 1);
  // One non-zero entry among zeros: its sum is exact.
  return fr(await ctx.backend.sumAbs(only));
}
