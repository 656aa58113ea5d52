/** Passthrough (mergekit): copy the one input, optionally multiplied by its per-model `scale`. */
import type { Tensor } from '../backend.ts';
import { ParamReader } from './common.ts';
import type { MergeContext, MethodDescriptor } from './types.ts';

export const passthrough: MethodDescriptor = {
  name: 'passthrough',
  prettyName: 'Passthrough',
  help: 'Copy one model unchanged (optionally scaled); the building block of layer-stacking merges',
  params: [],
  perModelParams: [
    { name: 'scale', kind: 'number', help: 'Multiply the tensor by this (absent: unchanged)', softMin: 0, softMax: 2 },
  ],
  base: 'unused',
  minModels: 1,
  maxModels: 1,
  async merge(ctx: MergeContext): Promise<Tensor> {
    const reader = new ParamReader('passthrough', ctx.tensorName);
    if (ctx.models.length !== 1) throw reader.error(`takes exactly one model, got ${ctx.models.length}`);
    const [only] = ctx.models;
    const scale = reader.optionalNumber(only.params, 'scale', only) ?? 1;
    return ctx.backend.lincomb([{ x: only.tensor, coef: scale }]);
  },
};
