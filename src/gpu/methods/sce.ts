/**
 * SCE (mergekit `sce`, FuseChat 2.0's Select–Calculate–Erase). Per tensor, with δ_i = x_i − base:
 *  1. select (when select_topk < 1): the variance over models of each entry (population variance,
 *     two-pass: mean, then mean squared deviation); k = floor(select_topk·(entries with a non-zero
 *     variance)); keep the k entries of largest variance in every δ_i, zero the others (k = 0 zeroes
 *     all). Among equal variances the higher index is kept (mergekit's torch.topk breaks ties
 *     arbitrarily).
 *  2. calculate: w_i = ‖δ_i‖²/numel, normalized to sum 1 (uniform when all are 0).
 *  3. erase: the majority sign per entry is that of Σ δ_i (≥ 0 → +), unweighted; m_i = 1 where δ_i
 *     has it (zero never does). Result base + Σ w_i·m_i·δ_i / Σ w_i·m_i (a zero divisor → 1).
 * `int8_mask` is accepted and ignored (a memory option in mergekit).
 */
import { TensorScope, type Tensor } from '../backend.ts';
import { copyOf, nonBaseModels, ParamReader, requireBase, taskVectors } from './common.ts';
import { nonZeroMask, onesLike, positiveMask } from './indicators.ts';
import type { MergeContext, MethodDescriptor } from './types.ts';

/** Divisors are sums of normalized weights: the smallest normal f32 only keeps 0/0 away. */
const MIN_DIVISOR = 2 ** -126;

export const sce: MethodDescriptor = {
  name: 'sce',
  prettyName: 'SCE',
  help: 'Keep the entries where the models vary most, weight each model by its squared change, average the entries agreeing with the majority sign',
  referenceUrl: 'https://arxiv.org/abs/2408.07990',
  params: [
    {
      name: 'select_topk',
      kind: 'number',
      help: 'Fraction of entries (by variance across models) kept in every task vector; 1 keeps all',
      default: 1,
      min: 0,
      max: 1,
    },
    {
      name: 'int8_mask',
      kind: 'boolean',
      help: 'Accepted for mergekit recipes and ignored (a memory option there; results are the same)',
      default: false,
    },
  ],
  perModelParams: [],
  base: 'required',
  minModels: 1,
  async merge(ctx: MergeContext): Promise<Tensor> {
    const { backend } = ctx;
    const reader = new ParamReader('sce', ctx.tensorName);
    const base = requireBase(ctx, 'sce');
    const models = nonBaseModels(ctx);
    if (models.length === 0) return copyOf(backend, base);
    const topk = reader.number(ctx.params, 'select_topk');
    const n = models.length;

    using scope = new TensorScope(backend);
    const ones = scope.add(await onesLike(backend, base));
    let deltas = scope.addAll(await taskVectors(backend, base, models.map((m) => m.tensor)));

    if (topk < 1) {
      const mask = scope.add(await topVarianceMask(ctx, deltas, ones, topk));
      const masked: Tensor[] = [];
      for (const d of deltas) {
        masked.push(scope.add(await backend.multiply(d, mask)));
        scope.drop(d);
      }
      scope.drop(mask);
      deltas = masked;
    }

    // Matrix-level weights: mean squared entry of each (selected) task vector, normalized.
    const gram = await backend.gram(deltas);
    const numel = base.numel;
    const raw = deltas.map((_, i) => gram[i * n + i] / numel);
    const total = raw.reduce((a, b) => a + b, 0);
    const weights = total === 0 ? raw.map(() => 1 / n) : raw.map((w) => w / total);

    // Majority sign of the unweighted sum: sign = 1 − 2·[sum ≠ 0] + 2·[sum > 0] (±1, + at 0).
    const sum = scope.add(await backend.lincomb(deltas.map((x) => ({ x, coef: 1 }))));
    const nonZero = scope.add(await nonZeroMask(backend, sum, ones));
    const positive = scope.add(await positiveMask(backend, sum, ones));
    scope.drop(sum);
    const majority = scope.add(
      await backend.lincomb(
        [
          { x: nonZero, coef: -2 },
          { x: positive, coef: 2 },
        ],
        1,
      ),
    );
    scope.drop(nonZero);
    scope.drop(positive);

    // m_i = [δ_i·majority > 0]; the product only flips signs, so it is exact.
    const agreeing: Tensor[] = [];
    const masks: Tensor[] = [];
    for (const d of deltas) {
      using signed = await backend.multiply(d, majority);
      const m = scope.add(await positiveMask(backend, signed, ones));
      masks.push(m);
      agreeing.push(scope.add(await backend.multiply(d, m)));
      scope.drop(d);
    }
    const mixed = scope.add(await backend.lincomb(agreeing.map((x, i) => ({ x, coef: weights[i] }))));
    const divisor = scope.add(await backend.lincomb(masks.map((x, i) => ({ x, coef: weights[i] }))));
    // Where the divisor is 0 no model agrees and mixed is 0: 0 / MIN_DIVISOR = 0, as mergekit's 0 / 1.
    const mean = scope.add(await backend.divideAtLeast(mixed, divisor, MIN_DIVISOR));
    return await backend.lincomb([
      { x: base, coef: 1 },
      { x: mean, coef: 1 },
    ]);
  },
};

/** 1 at the k entries of largest variance across the task vectors (k from select_topk), else 0. */
async function topVarianceMask(ctx: MergeContext, deltas: readonly Tensor[], ones: Tensor, topk: number): Promise<Tensor> {
  const { backend } = ctx;
  const n = deltas.length;
  using scope = new TensorScope(backend);
  const mean = scope.add(await backend.lincomb(deltas.map((x) => ({ x, coef: 1 / n }))));
  const squares: Tensor[] = [];
  for (const d of deltas) {
    using deviation = await backend.lincomb([
      { x: d, coef: 1 },
      { x: mean, coef: -1 },
    ]);
    squares.push(scope.add(await backend.multiply(deviation, deviation)));
  }
  const variance = scope.add(await backend.lincomb(squares.map((x) => ({ x, coef: 1 / n }))));
  using nonZero = await nonZeroMask(backend, variance, ones);
  const count = await backend.sumAbs(nonZero);
  // mergekit: int(|density| · count_nonzero), the product taken in f32.
  const k = Math.floor(Math.fround(Math.fround(Math.abs(topk)) * count));
  const numel = variance.numel;
  if (k <= 0) return await backend.lincomb([{ x: ones, coef: 0 }]);
  using kept = await backend.keepRankBand(variance, numel - k, numel);
  return await nonZeroMask(backend, kept, ones);
}
