/**
 * RAM, Reinforced Agent Merging (mergekit `ram`, arXiv 2601.13572). Per tensor, with δ_i = x_i − base:
 * an entry of δ_i counts when |δ_i| > epsilon; c = how many models count there. Entries counted by
 * one model only are taken whole, entries shared by several are averaged over the c models:
 * result = base + Σ_i [|δ_i| > ε]·δ_i / max(c, 1).
 */
import { TensorScope, type Tensor } from '../backend.ts';
import type { ParamSpec } from '../../core/params.ts';
import { copyOf, nonBaseModels, ParamReader, requireBase, taskVectors } from './common.ts';
import { absAboveMask, onesLike } from './indicators.ts';
import type { MergeContext, MethodDescriptor } from './types.ts';

export const EPSILON_PARAM: ParamSpec = {
  name: 'epsilon',
  kind: 'number',
  help: 'An entry of a task vector counts when its magnitude is above this',
  default: 1e-5,
  min: 0,
  softMax: 0.01,
};

/** What RAM and RAM+ share: the task vectors, their counted entries and the counts per entry. */
export interface RamVectors {
  /** δ_i with the entries that do not count zeroed. */
  counted: Tensor[];
  /** 0/1 per model: the entries that count. */
  masks: Tensor[];
  /** How many models count at each entry. */
  counts: Tensor;
  ones: Tensor;
}

/** The counted task vectors of the non-base models; every tensor belongs to `scope`. */
export async function ramVectors(ctx: MergeContext, scope: TensorScope, base: Tensor, epsilon: number): Promise<RamVectors> {
  const { backend } = ctx;
  const ones = scope.add(await onesLike(backend, base));
  const deltas = scope.addAll(await taskVectors(backend, base, nonBaseModels(ctx).map((m) => m.tensor)));
  const masks: Tensor[] = [];
  const counted: Tensor[] = [];
  for (const d of deltas) {
    const m = scope.add(await absAboveMask(backend, d, ones, epsilon));
    masks.push(m);
    counted.push(scope.add(await backend.multiply(d, m)));
    scope.drop(d);
  }
  const counts = scope.add(await backend.lincomb(masks.map((x) => ({ x, coef: 1 }))));
  return { counted, masks, counts, ones };
}

export const ram: MethodDescriptor = {
  name: 'ram',
  prettyName: 'Reinforced Agent Merging',
  help: 'Take entries changed by one model whole and average those changed by several (changed: |δ| > epsilon)',
  referenceUrl: 'https://arxiv.org/abs/2601.13572',
  params: [EPSILON_PARAM],
  perModelParams: [],
  base: 'required',
  minModels: 1,
  async merge(ctx: MergeContext): Promise<Tensor> {
    const { backend } = ctx;
    const reader = new ParamReader('ram', ctx.tensorName);
    const base = requireBase(ctx, 'ram');
    if (nonBaseModels(ctx).length === 0) return copyOf(backend, base);
    const epsilon = reader.number(ctx.params, 'epsilon');
    using scope = new TensorScope(backend);
    const v = await ramVectors(ctx, scope, base, epsilon);
    const shares: Tensor[] = [];
    for (const z of v.counted) shares.push(scope.add(await backend.divideAtLeast(z, v.counts, 1)));
    return await backend.lincomb([{ x: base, coef: 1 }, ...shares.map((x) => ({ x, coef: 1 }))]);
  },
};
