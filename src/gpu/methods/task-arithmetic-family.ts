/**
 * The task-vector family (METHODS.md): ONE engine registered under eight names, differing only in
 * sign election, sparsifier and defaults. Per tensor: δ_i = x_i − base for each non-base model;
 * sparsify δ_i with its own parameters; optionally rescale what was kept; WD_i = w_i·δ_i; combine
 * (TIES sign election, or a plain sum); optionally divide by the weight sum; × lambda; + base.
 */
import { roundScalar, type FloatDType } from '../../core/dtype.ts';
import type { ParamSpec } from '../../core/params.ts';
import { TensorScope, type Tensor } from '../backend.ts';
import { copyOf, nonBaseModels, ParamReader, requireBase } from './common.ts';
import { isRandomSparsifier, RESCALE_MODES, SPARSIFIER_PARAMS, sparsifyAndRescale, type RescaleMode, type Sparsifier } from './sparsifiers.ts';
import type { MergeContext, MethodDescriptor } from './types.ts';

export type { Sparsifier } from './sparsifiers.ts';

export interface TaskArithmeticFamilyOptions {
  name: string;
  prettyName: string;
  help: string;
  referenceUrl: string;
  /** TIES sign election on w_i·δ_i before summing. */
  election: boolean;
  sparsifier: Sparsifier;
  normalizeDefault: boolean;
  /** Default of `rescale`; only random sparsifiers (DARE, DELLA) take the parameter. */
  rescaleDefault?: boolean;
}

/** |Σ w_i| below this is replaced by 1 when normalizing without election (as mergekit). */
const DIVISOR_EPS = 1e-8;

export function taskArithmeticFamily(opts: TaskArithmeticFamilyOptions): MethodDescriptor {
  const rescalable = isRandomSparsifier(opts.sparsifier);
  const params: ParamSpec[] = [
    {
      name: 'normalize',
      kind: 'boolean',
      help: 'Divide the combined task vector by the sum of the weights',
      default: opts.normalizeDefault,
    },
    {
      name: 'lambda',
      kind: 'number',
      help: 'Scale of the combined task vector before it is added to the base',
      default: 1,
      softMin: 0,
      softMax: 2,
    },
    {
      name: 'int8_mask',
      kind: 'boolean',
      help: 'Accepted for mergekit recipes and ignored (a memory option there; results are the same)',
      default: false,
    },
  ];
  if (rescalable) {
    params.push(
      {
        name: 'rescale',
        kind: 'boolean',
        help: 'Rescale each pruned task vector to make up for the dropped entries',
        default: opts.rescaleDefault ?? true,
      },
      {
        name: 'rescale_mode',
        kind: 'enum',
        help: 'l1: match the unpruned L1 norm (mergekit); density: divide by density (DARE paper)',
        default: 'l1',
        options: RESCALE_MODES,
      },
    );
  }
  const perModelParams: ParamSpec[] = [
    {
      name: 'weight',
      kind: 'number',
      help: "Weight of this model's task vector",
      required: true,
      softMin: -1,
      softMax: 1,
    },
    ...SPARSIFIER_PARAMS[opts.sparsifier],
  ];

  async function merge(ctx: MergeContext): Promise<Tensor> {
    const { backend } = ctx;
    const reader = new ParamReader(opts.name, ctx.tensorName);
    const base = requireBase(ctx, opts.name);
    const models = nonBaseModels(ctx);
    if (models.length === 0) return copyOf(backend, base);

    const normalize = reader.boolean(ctx.params, 'normalize');
    const lambda = reader.number(ctx.params, 'lambda');
    const rescale = rescalable && reader.boolean(ctx.params, 'rescale');
    const rescaleMode: RescaleMode = rescalable ? reader.option(ctx.params, 'rescale_mode', RESCALE_MODES) : 'l1';
    const weights = models.map((m) => reader.number(m.params, 'weight', m));

    using scope = new TensorScope(backend);
    // Sparsified task vectors (l1-rescaled on the backend), each with the factor (w_i × the host
    // part of the rescale) that makes it WD_i.
    const kept: Tensor[] = [];
    const factors: number[] = [];
    const rescaled: boolean[] = [];
    for (let i = 0; i < models.length; i++) {
      const input = models[i];
      const delta = scope.add(
        await backend.lincomb([
          { x: input.tensor, coef: 1 },
          { x: base, coef: -1 },
        ]),
      );
      const s = await sparsifyAndRescale(opts.sparsifier, { ctx, reader, input, delta }, { rescale, mode: rescaleMode, l1Factor: 'device' });
      if (s.kept !== delta) {
        scope.add(s.kept);
        scope.drop(delta);
      }
      kept.push(s.kept);
      factors.push(weights[i] * s.scale);
      rescaled.push(s.rescaled);
    }

    const compute = ctx.computeDtype ?? 'F32';
    if (compute !== 'F32') {
      return await mergeRounded({ ctx, scope, base, kept, rescaled, weights, factors, normalize, lambda, compute, election: opts.election });
    }

    if (opts.election) {
      const wds: Tensor[] = [];
      for (let i = 0; i < kept.length; i++) {
        wds.push(scope.add(await backend.lincomb([{ x: kept[i], coef: factors[i] }])));
        scope.drop(kept[i]);
      }
      const mixed = scope.add(await backend.signElect(wds, weights, normalize));
      for (const wd of wds) scope.drop(wd);
      return await backend.lincomb([
        { x: mixed, coef: lambda },
        { x: base, coef: 1 },
      ]);
    }

    let divisor = weights.reduce((a, b) => a + b, 0);
    if (Math.abs(divisor) < DIVISOR_EPS) divisor = 1;
    const outer = normalize ? lambda / divisor : lambda;
    return await backend.lincomb([
      ...kept.map((x, i) => ({ x, coef: factors[i] * outer })),
      { x: base, coef: 1 },
    ]);
  }

  /**
   * The same combination with every intermediate rounded to `compute`, as mergekit computes it in
   * torch BF16/F16 when the recipe sets no float32 `dtype`: δ·w, the sum over models, the division,
   * lambda and the final add each round once (weights too are stored in that dtype). Matches the
   * reference within an ulp or two instead of the tens of ulps plain f32 math gives near zero.
   */
  async function mergeRounded(a: {
    ctx: MergeContext;
    /** Owns every intermediate; the caller disposes it. */
    scope: TensorScope;
    base: Tensor;
    kept: Tensor[];
    /** kept[i] already carries its l1 rescale (an f32 product the emulation rounds like the others). */
    rescaled: boolean[];
    weights: number[];
    factors: number[];
    normalize: boolean;
    lambda: number;
    compute: FloatDType;
    election: boolean;
  }): Promise<Tensor> {
    const { backend } = a.ctx;
    // Each rounded result replaces its unrounded one at once (peak memory stays near the f32 path's).
    const round = async (t: Tensor) => {
      using unrounded = t;
      return a.scope.add(await backend.quantize(unrounded, a.compute));
    };
    // A rounded combination is one pass (lincombRounded), not a lincomb then a quantize.
    const lin = async (terms: { x: Tensor; coef: number }[]) => a.scope.add(await backend.lincombRounded(terms, a.compute));
    const wq = a.weights.map((w) => roundScalar(w, a.compute));
    // Each model's kept entries (and their rescaled copy) are released once its WD_i exists, each
    // WD_i once combined, each step of `mixed` once the next exists: backends that store every
    // result (GPU, reference) hold about one f32 tensor per model besides the inputs, not three.
    const wds: Tensor[] = [];
    for (let i = 0; i < a.kept.length; i++) {
      const rescale = a.factors[i] / a.weights[i];
      const kept = a.rescaled[i]
        ? await round(a.kept[i])
        : Number.isFinite(rescale) && rescale !== 1
          ? await lin([{ x: a.kept[i], coef: rescale }])
          : a.kept[i];
      wds.push(await lin([{ x: kept, coef: wq[i] }]));
      a.scope.drop(kept);
      a.scope.drop(a.kept[i]);
    }
    const next = (t: Tensor, replaced: Tensor) => (a.scope.drop(replaced), t);
    let mixed: Tensor;
    if (a.election) {
      const elected = await backend.signElect(wds, wq, a.normalize);
      for (const wd of wds) a.scope.drop(wd);
      mixed = await round(elected);
    } else {
      mixed = await lin(wds.map((x) => ({ x, coef: 1 })));
      for (const wd of wds) a.scope.drop(wd);
      if (a.normalize) {
        let divisor = roundScalar(wq.reduce((s, w) => s + w, 0), a.compute);
        if (Math.abs(divisor) < DIVISOR_EPS) divisor = 1;
        mixed = next(await lin([{ x: mixed, coef: 1 / divisor }]), mixed);
      }
    }
    if (a.lambda !== 1) mixed = next(await lin([{ x: mixed, coef: a.lambda }]), mixed);
    return await backend.lincombRounded(
      [
        { x: a.base, coef: 1 },
        { x: mixed, coef: 1 },
      ],
      a.compute,
    );
  }

  return {
    name: opts.name,
    prettyName: opts.prettyName,
    help: opts.help,
    referenceUrl: opts.referenceUrl,
    params,
    perModelParams,
    base: 'required',
    minModels: 1,
    merge,
  };
}
