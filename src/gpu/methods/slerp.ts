/**
 * SLERP between the base (v0) and one other model (v1), over the flattened tensors, as mergekit:
 * dot of the unit vectors; |dot| > 0.9995 falls back to lerp; else
 * sin((1−t)θ)/sin θ·v0 + sin(tθ)/sin θ·v1 on the unnormalized tensors. The result stays in the span
 * of v0 and v1, so the coefficients come from their Gram matrix and one lincomb applies them.
 */
import type { Tensor } from '../backend.ts';
import { expectNonBase, ParamReader, requireBase, slerpCoefficients } from './common.ts';
import type { MergeContext, MethodDescriptor } from './types.ts';

export const slerp: MethodDescriptor = {
  name: 'slerp',
  prettyName: 'SLERP',
  help: 'Spherical interpolation between the base model (t = 0) and one other model (t = 1)',
  referenceUrl: 'https://en.wikipedia.org/wiki/Slerp',
  params: [
    {
      name: 't',
      kind: 'number',
      help: 'Interpolation position: 0 is the base model, 1 the other model',
      required: true,
      softMin: 0,
      softMax: 1,
    },
  ],
  perModelParams: [],
  base: 'required',
  minModels: 1,
  maxModels: 2,
  async merge(ctx: MergeContext): Promise<Tensor> {
    const reader = new ParamReader('slerp', ctx.tensorName);
    const v0 = requireBase(ctx, 'slerp');
    const [other] = expectNonBase(ctx, 'slerp', 1);
    const t = reader.number(ctx.params, 't');
    const v1 = other.tensor;
    const g = await ctx.backend.gram([v0, v1]);
    const [c0, c1] = slerpCoefficients(t, g[0], g[1], g[3]);
    return ctx.backend.lincomb([
      { x: v0, coef: c0 },
      { x: v1, coef: c1 },
    ]);
  },
};
