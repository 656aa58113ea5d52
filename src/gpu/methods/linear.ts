/**
 * Linear (model soups): Σ w_i·x_i over every recipe model (the base too when it is listed with a
 * weight), divided by Σ w_i when `normalize`.
 */
import type { Tensor } from '../backend.ts';
import { modelLabel, ParamReader } from './common.ts';
import type { MergeContext, MethodDescriptor } from './types.ts';

/** A weight sum this close to 0 cannot be normalized by. */
const ZERO_SUM = 1e-8;

export const linear: MethodDescriptor = {
  name: 'linear',
  prettyName: 'Linear',
  help: 'Weighted average of the models (every listed model counts, the base too)',
  referenceUrl: 'https://arxiv.org/abs/2203.05482',
  params: [
    {
      name: 'normalize',
      kind: 'boolean',
      help: 'Divide by the sum of the weights',
      default: true,
    },
  ],
  perModelParams: [
    { name: 'weight', kind: 'number', help: "This model's weight", required: true, softMin: 0, softMax: 1 },
  ],
  base: 'unused',
  minModels: 1,
  async merge(ctx: MergeContext): Promise<Tensor> {
    const reader = new ParamReader('linear', ctx.tensorName);
    const normalize = reader.boolean(ctx.params, 'normalize');
    const weights = ctx.models.map((m) => {
      if (m.params.weight === undefined) {
        throw reader.error(`${modelLabel(m)} has no weight (linear weighs every listed model, the base too)`);
      }
      return reader.number(m.params, 'weight', m);
    });
    let scale = 1;
    if (normalize) {
      const sum = weights.reduce((a, b) => a + b, 0);
      if (Math.abs(sum) < ZERO_SUM) {
        throw reader.error(`weights [${weights.join(', ')}] sum to ${sum}; cannot normalize (set normalize: false or change the weights)`);
      }
      scale = 1 / sum;
    }
    return ctx.backend.lincomb(ctx.models.map((m, i) => ({ x: m.tensor, coef: weights[i] * scale })));
  },
};
