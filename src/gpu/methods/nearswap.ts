/**
 * NearSwap (mergekit): per entry, w = clamp(t / max(|base − x|, 1e-6), 0, 1) and the result is
 * w·x + (1 − w)·base, so entries where the model stays within t of the base take the model's value
 * and the others move toward it by t. mergekit maps t / 0 to 1; the 1e-6 floor does the same for
 * any t ≥ 1e-6.
 */
import type { Tensor } from '../backend.ts';
import { expectNonBase, ParamReader, requireBase } from './common.ts';
import type { MergeContext, MethodDescriptor } from './types.ts';

export const nearswap: MethodDescriptor = {
  name: 'nearswap',
  prettyName: 'NearSwap',
  help: 'Take the other model\'s values where they are within t of the base, interpolate toward them elsewhere',
  referenceUrl: 'https://huggingface.co/alchemonaut/QuartetAnemoi-70B-t0.0001',
  params: [
    {
      name: 't',
      kind: 'number',
      help: 'Sameness threshold (> 0): entries closer than t to the base are swapped in fully',
      required: true,
      min: 0,
      softMax: 0.01,
    },
  ],
  perModelParams: [],
  base: 'required',
  minModels: 1,
  maxModels: 2,
  async merge(ctx: MergeContext): Promise<Tensor> {
    const reader = new ParamReader('nearswap', ctx.tensorName);
    const base = requireBase(ctx, 'nearswap');
    const [other] = expectNonBase(ctx, 'nearswap', 1);
    const t = reader.number(ctx.params, 't');
    if (t <= 0) throw reader.error(`parameter t must be > 0, got ${t}`);
    return ctx.backend.nearswap(base, other.tensor, t);
  },
};
