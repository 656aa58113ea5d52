/**
 * LiNeS (Wang et al., "LiNeS: Post-training Layer Scaling Prevents Forgetting and Enhances Model
 * Merging", ICLR 2025) over task arithmetic: τ_MTL = Σ_t w_t·(x_t − b), and a tensor of layer ℓ of
 * L gets λ = α + β·ℓ/(L−1) (L = 1: α + β; tensors outside the layers: α), result b + λ·τ_MTL.
 * 1-D tensors inside a layer (norms) are scaled like the layer's matrices.
 *
 * Without `alpha` the paper's default α = (1/T)·‖Σ_t (x_t − b)‖₁ / ‖τ_MTL‖₁ (1/T when all weights
 * are 1, or when ‖τ_MTL‖₁ = 0), both L1 norms over every float tensor of the model: one streamed
 * pass over the model before the merge (`prepare`).
 */
import { layerPosition } from '../../core/recipe/resolve.ts';
import { TensorScope, type Backend, type Tensor } from '../backend.ts';
import { copyOf, nonBaseModels, ParamReader, requireBase } from './common.ts';
import type { MethodDescriptor, ModelPass } from './types.ts';

export interface LinesState {
  numLayers: number;
  /** The automatic α, when some tensor has no `alpha` of its own. */
  defaultAlpha?: number;
}

/** Σ_t c_t·(x_t − b) as one tensor (δ_t formed one at a time). */
async function sumOfTaskVectors(backend: Backend, base: Tensor, xs: readonly Tensor[], coefs: readonly number[]): Promise<Tensor> {
  using scope = new TensorScope(backend);
  const deltas = [];
  for (const x of xs) {
    deltas.push(
      scope.add(
        await backend.lincomb([
          { x, coef: 1 },
          { x: base, coef: -1 },
        ]),
      ),
    );
  }
  return await backend.lincomb(deltas.map((d, i) => ({ x: d, coef: coefs[i] })));
}

async function prepare(pass: ModelPass): Promise<LinesState> {
  const state: LinesState = { numLayers: pass.numLayers };
  if (pass.tensors.every((t) => pass.params(t.name).global.alpha !== undefined)) return state;
  let plain = 0;
  let weighted = 0;
  let count = 0;
  await pass.forEachTensor('lines: L1 norms for the default alpha', async (inputs) => {
    const reader = new ParamReader('lines', inputs.tensorName);
    if (!inputs.base) throw reader.error('needs a base model (base_model)');
    const models = inputs.models.filter((m) => !m.isBase);
    count = models.length;
    const weights = models.map((m) => reader.number(m.params, 'weight', m));
    const xs = models.map((m) => m.tensor);
    if (xs.length === 0) return;
    {
      using sum = await sumOfTaskVectors(inputs.backend, inputs.base, xs, xs.map(() => 1));
      plain += await inputs.backend.sumAbs(sum);
    }
    using mtl = await sumOfTaskVectors(inputs.backend, inputs.base, xs, weights);
    weighted += await inputs.backend.sumAbs(mtl);
  });
  if (count > 0) state.defaultAlpha = weighted === 0 ? 1 / count : plain / weighted / count;
  return state;
}

export const lines: MethodDescriptor<LinesState> = {
  name: 'lines',
  prettyName: 'LiNeS',
  help: 'Task arithmetic with the task vector scaled by depth: alpha for shallow layers up to alpha + beta for the last',
  referenceUrl: 'https://arxiv.org/abs/2410.17146',
  params: [
    {
      name: 'beta',
      kind: 'number',
      help: 'Extra scale of the deepest layer (grows linearly from 0 at layer 0)',
      required: true,
      min: 0,
      softMin: 0,
      softMax: 2,
    },
    {
      name: 'alpha',
      kind: 'number',
      help: 'Scale of the shallowest layer and of tensors outside the layers (default: the paper\'s L1-norm ratio, 1/T with unit weights)',
      softMin: 0,
      softMax: 2,
    },
  ],
  perModelParams: [{ name: 'weight', kind: 'number', help: "Weight of this model's task vector", default: 1, softMin: 0, softMax: 1 }],
  base: 'required',
  minModels: 1,
  prepare,
  async merge(ctx) {
    const { backend } = ctx;
    const reader = new ParamReader('lines', ctx.tensorName);
    const base = requireBase(ctx, 'lines');
    const models = nonBaseModels(ctx);
    if (models.length === 0) return copyOf(backend, base);
    const state = ctx.prepared;
    if (!state) throw reader.error('the engine did not run the whole-model pass (prepare) first');
    const beta = reader.number(ctx.params, 'beta');
    const alpha = reader.optionalNumber(ctx.params, 'alpha') ?? state.defaultAlpha;
    if (alpha === undefined) throw reader.error('no alpha and no default alpha from the whole-model pass');
    const lambda = alpha + beta * layerPosition(ctx.tensorName, state.numLayers);
    const weights = models.map((m) => reader.number(m.params, 'weight', m));
    using mtl = await sumOfTaskVectors(backend, base, models.map((m) => m.tensor), weights.map((w) => w * lambda));
    return await backend.lincomb([
      { x: base, coef: 1 },
      { x: mtl, coef: 1 },
    ]);
  },
};
