/**
 * Consensus Task Arithmetic (Wang et al. 2024, "Localizing Task Information for Improved Model
 * Merging and Compression"). τ_MTL = Σ w_i·δ_i; each model's TALL mask keeps the entries where its
 * own task vector dominates what the others add: |δ_i| >= λ_i·|τ_MTL − δ_i|. Entries kept by fewer
 * than k masks are "selfish" (one model) or "catastrophic" (none) and are dropped from τ_MTL;
 * result = base + lambda·(τ_MTL ⊙ [count >= k]). Not in mergekit 0.1.4; tested against a direct
 * per-element reference.
 */
import type { Tensor } from '../backend.ts';
import { TensorScope } from '../backend.ts';
import { expectAtLeast, ParamReader, requireBase } from './common.ts';
import type { MergeContext, MethodDescriptor } from './types.ts';

export const consensusTa: MethodDescriptor = {
  name: 'consensus_ta',
  prettyName: 'Consensus (TALL masks)',
  help: 'Task arithmetic keeping only the entries that at least k models localise as their own (TALL masks)',
  referenceUrl: 'https://arxiv.org/abs/2405.07813',
  params: [
    {
      name: 'k',
      kind: 'integer',
      help: 'How many models must claim an entry for it to be kept (2 drops selfish and unused entries)',
      default: 2,
      min: 0,
      softMax: 4,
    },
    {
      name: 'lambda',
      kind: 'number',
      help: 'Scale of the kept task vector before it is added to the base',
      default: 1,
      softMin: 0,
      softMax: 2,
    },
  ],
  perModelParams: [
    {
      name: 'weight',
      kind: 'number',
      help: "Weight of this model's task vector in the multi-task vector",
      default: 1,
      softMin: -1,
      softMax: 1,
    },
    {
      name: 'tall_lambda',
      kind: 'number',
      help: "TALL mask threshold: keep where |δ_i| >= tall_lambda·|τ_MTL − δ_i| (the paper picks 0.2 to 0.6)",
      default: 0.4,
      min: 0,
      softMax: 1,
    },
  ],
  base: 'required',
  minModels: 2,
  async merge(ctx: MergeContext): Promise<Tensor> {
    const { backend } = ctx;
    const reader = new ParamReader('consensus_ta', ctx.tensorName);
    const base = requireBase(ctx, 'consensus_ta');
    const models = expectAtLeast(ctx, 'consensus_ta', 2);
    const k = reader.number(ctx.params, 'k');
    const lambda = reader.number(ctx.params, 'lambda');
    using scope = new TensorScope(backend);
    const keep = <T extends Tensor>(t: T) => scope.add(t);
    {
      const deltas: Tensor[] = [];
      for (const m of models) {
        deltas.push(keep(await backend.lincomb([{ x: m.tensor, coef: 1 }, { x: base, coef: -1 }])));
      }
      const mtl = keep(await backend.lincomb(deltas.map((x, i) => ({ x, coef: reader.number(models[i].params, 'weight', models[i]) }))));
      const masks: Tensor[] = [];
      for (let i = 0; i < models.length; i++) {
        const others = keep(await backend.lincomb([{ x: mtl, coef: 1 }, { x: deltas[i], coef: -1 }]));
        masks.push(keep(await backend.absAtLeast(deltas[i], others, reader.number(models[i].params, 'tall_lambda', models[i]))));
      }
      const counts = keep(await backend.lincomb(masks.map((x) => ({ x, coef: 1 }))));
      const ones = keep(await backend.lincomb([{ x: counts, coef: 0 }], 1));
      const consensus = keep(await backend.absAtLeast(counts, ones, k));
      const kept = keep(await backend.keepWhere(mtl, consensus));
      return await backend.lincomb([{ x: kept, coef: lambda }, { x: base, coef: 1 }]);
    }
  },
};
