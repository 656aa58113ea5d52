/**
 * WIDEN (Yu et al., "Extend Model Merging from Fine-Tuned to Pre-Trained Large Language Models via
 * Weight Disentanglement", 2024), as the authors' code computes it; the exact rules are the numbered
 * spec in the p-widen golden case's notes. Per tensor, no per-model weight, d_t = x_t − b:
 *
 * - 2-D: one vector per column (an input-embedding table per row: one token). Per model, the
 *   magnitude change |‖x_t[:, j]‖ − ‖b[:, j]‖| and the direction change 1 − cos(x_t[:, j], b[:, j])
 *   (cos 0 for a zero column) are ranked within the model (stable ascending, ties to the lower
 *   column), s = rank/n; each is softmaxed across the models per column, and replaced by
 *   `score_calibration_value` where rank > ratio·(n−1)/2 (above the ratio × mean significance).
 *   w_t[j] = (S_mag + S_dir)/2; column j of the result is b[:, j] + Σ_t w_t[j]·d_t[:, j].
 *   The column statistics come from columnDots (rows: gramRows); the sum from scaleColumns
 *   (rows: per-row lincomb coefficients).
 * - Every other tensor, flattened: S_t[i] = softmax across models of |d_t[i]|, replaced by the
 *   calibration value where |d_t[i]| > ratio·mean_i |d_t[i]|; result b + Σ_t S_t[i]·d_t[i]. These are
 *   norms and biases (small), computed on the host in f64 from the tensors read back.
 */
import { isInputEmbeddingName } from '../../core/tensor-names.ts';
import { TensorScope, type Tensor } from '../backend.ts';
import { copyOf, nonBaseModels, ParamReader, requireBase, taskVectors } from './common.ts';
import type { MergeContext, MethodDescriptor } from './types.ts';

/** Column statistics of one model against the base: magnitude and direction changes. */
export interface ColumnChanges {
  magnitude: Float64Array;
  direction: Float64Array;
}

/** Changes of each column from ‖b‖², ‖x‖² and x·b per column. */
export function columnChanges(baseSq: ArrayLike<number>, xSq: ArrayLike<number>, xDotB: ArrayLike<number>): ColumnChanges {
  const n = baseSq.length;
  const magnitude = new Float64Array(n);
  const direction = new Float64Array(n);
  for (let j = 0; j < n; j++) {
    const nb = Math.sqrt(Math.max(baseSq[j], 0));
    const nx = Math.sqrt(Math.max(xSq[j], 0));
    magnitude[j] = Math.abs(nx - nb);
    direction[j] = 1 - (nb > 0 && nx > 0 ? xDotB[j] / (nx * nb) : 0);
  }
  return { magnitude, direction };
}

/** Position of each entry in a stable ascending sort (ties: the lower index first). */
export function ascendingRanks(values: Float64Array): Uint32Array {
  const order = Array.from(values.keys()).sort((a, b) => values[a] - values[b] || a - b);
  const pos = new Uint32Array(values.length);
  order.forEach((j, rank) => (pos[j] = rank));
  return pos;
}

/**
 * Per-model scores of one statistic (magnitude or direction) for n columns: rank significance,
 * softmax across models, calibration where rank > ratio·(n−1)/2.
 */
function rankScores(stats: readonly Float64Array[], ratio: number, calibration: number): Float64Array[] {
  const n = stats[0].length;
  const ranks = stats.map(ascendingRanks);
  const threshold = (ratio * (n - 1)) / 2;
  const scores = stats.map(() => new Float64Array(n));
  for (let j = 0; j < n; j++) {
    let sum = 0;
    for (let t = 0; t < stats.length; t++) sum += Math.exp(ranks[t][j] / n);
    for (let t = 0; t < stats.length; t++) {
      scores[t][j] = ranks[t][j] > threshold ? calibration : Math.exp(ranks[t][j] / n) / sum;
    }
  }
  return scores;
}

/** w_t[j] = (S_mag_t[j] + S_dir_t[j]) / 2 for every model, from their column changes. */
export function widenColumnWeights(changes: readonly ColumnChanges[], ratio: number, calibration: number): Float32Array[] {
  const mag = rankScores(changes.map((c) => c.magnitude), ratio, calibration);
  const dir = rankScores(changes.map((c) => c.direction), ratio, calibration);
  return changes.map((_, t) => Float32Array.from(mag[t], (m, j) => (m + dir[t][j]) / 2));
}

/** The non-2-D rule on host values: b + Σ_t S_t ⊙ d_t, S_t = softmax_t |d_t| with calibration. */
export function widenElementwise(base: Float32Array, xs: readonly Float32Array[], ratio: number, calibration: number): Float32Array {
  const n = base.length;
  const deltas = xs.map((x) => Float64Array.from(x, (v, i) => v - base[i]));
  const thresholds = deltas.map((d) => ratio * (n > 0 ? d.reduce((s, v) => s + Math.abs(v), 0) / n : 0));
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let top = -Infinity;
    for (const d of deltas) top = Math.max(top, Math.abs(d[i]));
    let sum = 0;
    for (const d of deltas) sum += Math.exp(Math.abs(d[i]) - top);
    let acc = base[i];
    deltas.forEach((d, t) => {
      const a = Math.abs(d[i]);
      acc += (a > thresholds[t] ? calibration : Math.exp(a - top) / sum) * d[i];
    });
    out[i] = acc;
  }
  return out;
}

async function mergeMatrix(ctx: MergeContext, base: Tensor, xs: readonly Tensor[], ratio: number, calibration: number): Promise<Tensor> {
  const { backend } = ctx;
  using scope = new TensorScope(backend);
  const deltas = scope.addAll(await taskVectors(backend, base, xs));
  if (isInputEmbeddingName(ctx.tensorName)) {
    // A column of the transposed table is a row of the stored one.
    const g = await backend.gramRows([base, ...xs]);
    const rows = ctx.shape[0];
    const k = xs.length + 1;
    const at = (r: number, i: number, j: number) => g[r * k * k + i * k + j];
    const changes = xs.map((_, t) =>
      columnChanges(
        Float64Array.from({ length: rows }, (_, r) => at(r, 0, 0)),
        Float64Array.from({ length: rows }, (_, r) => at(r, t + 1, t + 1)),
        Float64Array.from({ length: rows }, (_, r) => at(r, 0, t + 1)),
      ),
    );
    const weights = widenColumnWeights(changes, ratio, calibration);
    return await backend.lincomb([{ x: base, coef: 1 }, ...deltas.map((d, t) => ({ x: d, coef: weights[t] }))]);
  }
  const baseSq = await backend.columnDots(base, base);
  const changes: ColumnChanges[] = [];
  for (const x of xs) changes.push(columnChanges(baseSq, await backend.columnDots(x, x), await backend.columnDots(x, base)));
  const weights = widenColumnWeights(changes, ratio, calibration);
  const scaled: Tensor[] = [];
  for (let t = 0; t < deltas.length; t++) {
    scaled.push(scope.add(await backend.scaleColumns(deltas[t], weights[t])));
    scope.drop(deltas[t]);
  }
  return await backend.lincomb([{ x: base, coef: 1 }, ...scaled.map((x) => ({ x, coef: 1 }))]);
}

export const widen: MethodDescriptor = {
  name: 'widen',
  prettyName: 'WIDEN',
  help: 'Weight disentanglement: per-column magnitude and direction changes, ranked per model and softmax-weighted across models',
  referenceUrl: 'https://arxiv.org/abs/2408.03092',
  params: [
    {
      name: 'above_average_value_ratio',
      kind: 'number',
      help: 'Scores whose significance is above this times the mean are replaced by the calibration value',
      default: 1,
      min: 0,
      softMin: 0.5,
      softMax: 2,
    },
    {
      name: 'score_calibration_value',
      kind: 'number',
      help: 'The score given to significant columns (and entries of 1-D tensors)',
      default: 1,
      softMin: 0,
      softMax: 2,
    },
  ],
  perModelParams: [],
  base: 'required',
  minModels: 1,
  async merge(ctx) {
    const { backend } = ctx;
    const reader = new ParamReader('widen', ctx.tensorName);
    const base = requireBase(ctx, 'widen');
    const models = nonBaseModels(ctx);
    if (models.length === 0) return copyOf(backend, base);
    const ratio = reader.number(ctx.params, 'above_average_value_ratio');
    const calibration = reader.number(ctx.params, 'score_calibration_value');
    const xs = models.map((m) => m.tensor);
    if (ctx.shape.length === 2) return mergeMatrix(ctx, base, xs, ratio, calibration);
    const values = widenElementwise(await backend.read(base), await Promise.all(xs.map((x) => backend.read(x))), ratio, calibration);
    return backend.upload(values, ctx.shape);
  },
};
