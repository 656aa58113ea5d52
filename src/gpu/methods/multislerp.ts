/**
 * Multi-SLERP (mergekit): barycentric interpolation on the hypersphere. With T_i = x_i (− base),
 * U_i = T_i / (‖T_i‖ + eps), m = normalize(Σ w_i U_i), tangent r = Σ w_i (U_i − (U_i·m) m),
 * result = (m cos‖r‖ + r sin‖r‖/‖r‖) · Σ w_i ‖T_i‖ (+ base), where ‖r‖ includes + eps as mergekit.
 * Every vector here is a combination of the T_i, so the host works on coefficient vectors with the
 * Gram matrix of the T_i and one lincomb builds the result.
 */
import type { Tensor } from '../backend.ts';
import { releasing } from '../backend.ts';
import { copyOf, gramTimes, nonBaseModels, ParamReader, quadForm, taskVectors } from './common.ts';
import type { MergeContext, MethodDescriptor } from './types.ts';

/**
 * Coefficients c with result = Σ c_i T_i, from the Gram matrix G of the T_i (N×N) and the weights
 * (already normalized if asked). Returns undefined when the weighted mean of the unit vectors is
 * (nearly) zero and there are more than two inputs: the reference raises there.
 */
export function multislerpCoefficients(g: ArrayLike<number>, weights: readonly number[], eps: number): number[] | undefined {
  const n = weights.length;
  const norms = weights.map((_, i) => Math.sqrt(Math.max(g[i * n + i], 0)));
  const unitScale = norms.map((v) => 1 / (v + eps));
  // mean = Σ w_i U_i as coefficients over T
  const mean = weights.map((w, i) => w * unitScale[i]);
  const meanNorm = Math.sqrt(Math.max(quadForm(g, mean), 0));
  if (meanNorm < eps) {
    // mergekit: two inputs fall back to the weighted sum, more is an error.
    return n === 2 ? [...weights] : undefined;
  }
  const m = mean.map((c) => c / meanNorm);
  const gm = gramTimes(g, m);
  // dots_i = U_i · m; tangent = Σ w_i U_i − (Σ w_i dots_i) m
  let wDots = 0;
  for (let i = 0; i < n; i++) wDots += weights[i] * unitScale[i] * gm[i];
  const tangent = weights.map((w, i) => w * unitScale[i] - wDots * m[i]);
  const tangentNorm = Math.sqrt(Math.max(quadForm(g, tangent), 0)) + eps;
  let avgNorm = 0;
  for (let i = 0; i < n; i++) avgNorm += norms[i] * weights[i];
  const cos = Math.cos(tangentNorm);
  const sinc = Math.sin(tangentNorm) / tangentNorm;
  return m.map((mi, i) => (mi * cos + tangent[i] * sinc) * avgNorm);
}

export const multislerp: MethodDescriptor = {
  name: 'multislerp',
  prettyName: 'Multi-SLERP',
  help: 'Spherical weighted average of any number of models (of their task vectors when a base is given)',
  referenceUrl: 'https://goddard.blog/posts/multislerp-wow-what-a-cool-idea',
  params: [
    { name: 'normalize_weights', kind: 'boolean', help: 'Divide the weights by their sum', default: true },
    { name: 'eps', kind: 'number', help: 'Small constant that keeps norms away from zero', default: 1e-8, min: 0 },
  ],
  perModelParams: [
    { name: 'weight', kind: 'number', help: "This model's weight", required: true, softMin: 0, softMax: 1 },
  ],
  base: 'optional',
  minModels: 1,
  async merge(ctx: MergeContext): Promise<Tensor> {
    const { backend } = ctx;
    const reader = new ParamReader('multislerp', ctx.tensorName);
    const models = nonBaseModels(ctx);
    if (models.length === 0) throw reader.error('needs at least one non-base model');
    // The reference returns a single model unchanged.
    if (models.length === 1) return copyOf(backend, models[0].tensor);
    const normalize = reader.boolean(ctx.params, 'normalize_weights');
    const eps = reader.number(ctx.params, 'eps');
    let weights = models.map((m) => reader.number(m.params, 'weight', m));
    if (normalize) {
      const sum = weights.reduce((a, b) => a + b, 0);
      if (sum === 0) throw reader.error(`weights [${weights.join(', ')}] sum to 0; cannot normalize_weights`);
      weights = weights.map((w) => w / sum);
    }
    const deltas = ctx.base ? await taskVectors(backend, ctx.base, models.map((m) => m.tensor)) : [];
    using _deltas = releasing(backend, deltas);
    {
      const vs = ctx.base ? deltas : models.map((m) => m.tensor);
      const g = await backend.gram(vs);
      const coefs = multislerpCoefficients(g, weights, eps);
      if (!coefs) {
        throw reader.error(
          'the weighted mean of the unit vectors is zero (antipodal inputs whose weights cancel); change the weights',
        );
      }
      const terms = vs.map((x, i) => ({ x, coef: coefs[i] }));
      return await backend.lincomb(ctx.base ? [...terms, { x: ctx.base, coef: 1 }] : terms);
    }
  },
};
