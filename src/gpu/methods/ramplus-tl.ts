/**
 * RAM+ tensor-local (mergekit `ramplus_tl`, arXiv 2601.13572): RAM, with each model's entries that
 * only it changed scaled up by λ_i = 1 + r·clamp(ρ_i, 0, alpha), where ρ_i = (entries it shares
 * with others) / max(entries only it changed, epsilon), both counted over this tensor. Shared
 * entries are averaged over the models that changed them, as in RAM.
 */
import { TensorScope, type Tensor } from '../backend.ts';
import { copyOf, nonBaseModels, ParamReader, requireBase } from './common.ts';
import { EPSILON_PARAM, ramVectors } from './ram.ts';
import type { MergeContext, MethodDescriptor } from './types.ts';

const fr = Math.fround;

export const ramplusTl: MethodDescriptor = {
  name: 'ramplus_tl',
  prettyName: 'Reinforced Agent Merging Plus (Tensor-Local)',
  help: 'RAM, with each model\'s unique changes scaled up by how much of its change it shares with others',
  referenceUrl: 'https://arxiv.org/abs/2601.13572',
  params: [
    { name: 'r', kind: 'number', help: 'Strength of the boost of unique entries', default: 0.1, min: 0, softMax: 1 },
    { name: 'alpha', kind: 'number', help: 'Cap of the shared/unique ratio in the boost', default: 0.2, min: 0, softMax: 1 },
    EPSILON_PARAM,
  ],
  perModelParams: [],
  base: 'required',
  minModels: 1,
  async merge(ctx: MergeContext): Promise<Tensor> {
    const { backend } = ctx;
    const reader = new ParamReader('ramplus_tl', ctx.tensorName);
    const base = requireBase(ctx, 'ramplus_tl');
    if (nonBaseModels(ctx).length === 0) return copyOf(backend, base);
    const r = reader.number(ctx.params, 'r');
    const alpha = reader.number(ctx.params, 'alpha');
    const epsilon = reader.number(ctx.params, 'epsilon');
    using scope = new TensorScope(backend);
    const v = await ramVectors(ctx, scope, base, epsilon);
    // Counts are integers: shared ⟺ count ≥ 2, unique ⟺ count = 1.
    const shared = scope.add(await backend.absAtLeast(v.counts, v.ones, 1.5));
    const anyCount = scope.add(await backend.absAtLeast(v.counts, v.ones, 0.5));
    const unique = scope.add(
      await backend.lincomb([
        { x: anyCount, coef: 1 },
        { x: shared, coef: -1 },
      ]),
    );
    scope.drop(anyCount);
    const terms: { x: Tensor; coef: number }[] = [{ x: base, coef: 1 }];
    for (let i = 0; i < v.counted.length; i++) {
      using sharedMask = await backend.multiply(v.masks[i], shared);
      using uniqueMask = await backend.multiply(v.masks[i], unique);
      const sharedCount = await backend.sumAbs(sharedMask);
      const uniqueCount = await backend.sumAbs(uniqueMask);
      // As mergekit computes it in f32: ρ = shared / max(unique, ε), λ = 1 + r·clamp(ρ, 0, α).
      const rho = fr(fr(sharedCount) / Math.max(fr(uniqueCount), fr(epsilon)));
      const lambda = fr(1 + fr(fr(r) * Math.min(Math.max(rho, 0), fr(alpha))));
      terms.push({ x: scope.add(await backend.multiply(v.counted[i], unique)), coef: lambda });
      using sharedPart = await backend.multiply(v.counted[i], shared);
      terms.push({ x: scope.add(await backend.divideAtLeast(sharedPart, v.counts, 1)), coef: 1 });
    }
    return await backend.lincomb(terms);
  },
};
