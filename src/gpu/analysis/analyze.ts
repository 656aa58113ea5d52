/**
 * The analysis driver: one streaming pass over a recipe's tensors, one tensor at a time like the
 * merge (src/gpu/engine.ts), keeping only small per-tensor summaries.
 *
 * - Model statistics (recipe-independent, cached per model set): task-vector dot products → norms,
 *   cosines, change relative to the base; sign conflicts; |δ| histograms.
 * - Recipe statistics (the method and parameters as they are now): for the task-vector family, the
 *   entries each model keeps (the method's own sparsifier functions, same seed and keys as the merge),
 *   their overlap, consensus and conflicts, and each model's share of the merged delta; for every
 *   method, the parameters each tensor resolves to.
 *
 * The math is the merge's f32 math; the 16-bit rounding the engine emulates when a recipe sets no
 * `dtype` (task-arithmetic-family.ts mergeRounded) is left out, so shares can differ from such a
 * merge in the last bits.
 */
import type { FloatDType } from '../../core/dtype.ts';
import { resolveTensorParams, layerIndexOf } from '../../core/recipe/resolve.ts';
import type { Recipe } from '../../core/recipe/types.ts';
import type { ModelSource } from '../../core/source.ts';
import type { Tensor } from '../backend.ts';
import { decodeInput, planMerge, readTensorBytes, type MergePlan, type TensorPlan } from '../engine.ts';
import { ParamReader } from '../methods/common.ts';
import { isRandomSparsifier, RESCALE_MODES, sparsifyAndRescale } from '../methods/sparsifiers.ts';
import type { MergeContext, MethodInput } from '../methods/types.ts';
import { BINS_PER_OCTAVE, binEdges, MIN_EXPONENT, OCTAVES } from './bins.ts';
import type { AnalysisCache } from './cache.ts';
import { familyStepsOf, type FamilySteps } from './family.ts';
import { MAX_SIGN_MODELS, type AnalysisOps } from './ops.ts';
import {
  byKind,
  byLayer,
  coefficientsOf,
  poolHistograms,
  summarizeModelGroup,
  summarizeRecipeGroup,
} from './summarize.ts';
import { tensorKindOf } from './tensor-kind.ts';
import type {
  AnalysisProgress,
  AnalysisResult,
  ModelGroupStats,
  ModelSetStats,
  RecipeGroupStats,
  RecipeStats,
  TensorKind,
  TensorModelStats,
  TensorRecipeStats,
} from './types.ts';

export interface AnalyzeOptions {
  /** Seed of the counter-based generator for random masks (DARE, DELLA), as the merge's. */
  seed?: number;
  /** Which statistics to compute (default: both). */
  parts?: { model?: boolean; recipe?: boolean };
  /** Model statistics by model set: a hit skips their computation. */
  cache?: AnalysisCache;
  signal?: AbortSignal;
  onProgress?: (p: AnalysisProgress) => void;
}

export interface AnalyzeJob {
  recipe: Recipe;
  /** Opened models, keyed by the model reference exactly as written in the recipe. */
  sources: ReadonlyMap<string, ModelSource>;
  ops: AnalysisOps;
  options?: AnalyzeOptions;
}

/** Inputs the analysis cannot work with (nothing to compare, too many models), in words. */
export class AnalysisInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AnalysisInputError';
  }
}

export class AnalysisCancelledError extends Error {
  constructor() {
    super('analysis cancelled');
    this.name = 'AnalysisCancelledError';
  }
}

/** |Σ w_i| below this is replaced by 1 when normalizing without election (as task-arithmetic-family.ts). */
const DIVISOR_EPS = 1e-8;

/** The numbers the studio and `merge-studio analyze` show, in one pass over the recipe's tensors. */
export async function analyzeMerge(job: AnalyzeJob): Promise<AnalysisResult> {
  const started = Date.now();
  const { recipe, sources, ops } = job;
  const opts = job.options ?? {};
  const seed = opts.seed ?? 0;
  const plan = planMerge(recipe, sources);
  const analyzedIdx = recipe.models.map((_, i) => i).filter((i) => plan.models[i] !== plan.base);
  const models = analyzedIdx.map((i) => plan.models[i]);
  const n = models.length;
  if (n === 0) throw new AnalysisInputError('nothing to analyze: the recipe lists no model besides the base');
  if (n > MAX_SIGN_MODELS) {
    throw new AnalysisInputError(`the recipe has ${n} models besides the base; the analysis compares at most ${MAX_SIGN_MODELS}`);
  }
  const tensors = plan.tensors.filter((t) => t.merged);
  const castTo = recipe.dtype ?? null;
  const wantModel = opts.parts?.model ?? true;
  const wantRecipe = opts.parts?.recipe ?? true;
  const key = opts.cache?.keyOf({ base: plan.base, models, tensors, castTo }) ?? modelSetKey(plan, models, tensors, castTo);
  let modelStats: ModelSetStats | null = wantModel ? (opts.cache?.get(key) ?? null) : null;
  const computeModel = wantModel && modelStats === null;
  const steps = familyStepsOf(recipe.mergeMethod);

  const modelEntries: TensorModelStats[] = [];
  const recipeEntries: TensorRecipeStats[] = [];
  if (computeModel || wantRecipe) {
    for (let k = 0; k < tensors.length; k++) {
      if (opts.signal?.aborted) throw new AnalysisCancelledError();
      const t = tensors[k];
      const entry = await analyzeTensor({ job, plan, t, models, analyzedIdx, steps, seed, computeModel, computeRecipe: wantRecipe });
      if (entry.model) modelEntries.push(entry.model);
      if (entry.recipe) recipeEntries.push(entry.recipe);
      opts.onProgress?.({
        tensorsDone: k + 1,
        tensorsTotal: tensors.length,
        currentTensor: t.name,
        parts: { model: computeModel, recipe: wantRecipe },
      });
    }
  }
  if (computeModel) {
    modelStats = modelSetStats(key, modelEntries, n, plan.numLayers);
    opts.cache?.set(key, modelStats);
  }
  return {
    format: 'merge-studio-analysis',
    version: 1,
    backend: ops.backend.description,
    models: analyzedIdx.map((i) => recipe.models[i].model),
    base: recipe.baseModel ?? null,
    numLayers: plan.numLayers,
    histogram: { minExponent: MIN_EXPONENT, octaves: OCTAVES, binsPerOctave: BINS_PER_OCTAVE, edges: binEdges() },
    modelStats,
    recipeStats: wantRecipe ? recipeStats(recipe, seed, steps, recipeEntries, n, plan.numLayers) : null,
    seconds: (Date.now() - started) / 1000,
  };
}

function modelSetKey(plan: MergePlan, models: readonly ModelSource[], tensors: readonly TensorPlan[], castTo: string | null): string {
  return JSON.stringify({
    base: plan.base?.id ?? null,
    models: models.map((m) => m.id),
    castTo,
    tensors: tensors.map((t) => `${t.name}[${t.shape.join(',')}]`),
  });
}

interface TensorArgs {
  job: AnalyzeJob;
  plan: MergePlan;
  t: TensorPlan;
  models: readonly ModelSource[];
  analyzedIdx: readonly number[];
  steps: FamilySteps | null;
  seed: number;
  computeModel: boolean;
  computeRecipe: boolean;
}

async function analyzeTensor(a: TensorArgs): Promise<{ model?: TensorModelStats; recipe?: TensorRecipeStats }> {
  const { job, plan, t } = a;
  const { ops } = job;
  const backend = ops.backend;
  const signal = job.options?.signal;
  const owned: Tensor[] = [];
  const own = <T extends Tensor>(x: T): T => {
    owned.push(x);
    return x;
  };
  try {
    const layer = layerIndexOf(t.name) ?? null;
    const kind = tensorKindOf(t.name);
    const numel = t.shape.reduce((x, y) => x * y, 1);
    const out: { model?: TensorModelStats; recipe?: TensorRecipeStats } = {};
    if (a.computeRecipe) out.recipe = paramsEntry(a, layer, kind, numel);
    // Only the task-vector family's trimming and the model statistics read the weights.
    const trims = out.recipe !== undefined && a.steps !== null && plan.base !== undefined;
    if (!a.computeModel && !trims) return out;
    const base = plan.base ? own(await loadTensor(backend, plan.base, t, job.recipe.dtype, signal)) : undefined;
    const deltas: Tensor[] = [];
    for (const m of a.models) {
      const x = own(await loadTensor(backend, m, t, job.recipe.dtype, signal));
      if (!base) {
        deltas.push(x);
        continue;
      }
      deltas.push(
        own(
          await backend.lincomb([
            { x, coef: 1 },
            { x: base, coef: -1 },
          ]),
        ),
      );
      release(owned, backend, x);
    }
    if (a.computeModel) {
      const histograms = await ops.magnitudeHistograms(deltas);
      out.model = {
        name: t.name,
        shape: [...t.shape],
        layer,
        kind,
        numel,
        gram: Array.from(await backend.gram(deltas)),
        baseNormSq: base ? (await backend.gram([base]))[0] : null,
        signs: await ops.signCounts(deltas),
        histograms,
      };
    }
    if (trims) await addTrimStats(a, out.recipe!, { base: base!, deltas, own });
    return out;
  } finally {
    for (const x of owned) backend.release(x);
  }
}

function release(owned: Tensor[], backend: AnalysisOps['backend'], x: Tensor): void {
  backend.release(x);
  const at = owned.indexOf(x);
  if (at >= 0) owned.splice(at, 1);
}

/** Numeric values of a resolved parameter record (booleans and options left out). */
function numeric(params: Record<string, unknown>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(params)) if (typeof v === 'number') out[k] = v;
  return out;
}

/** The parameters `t` resolves to, and room for the trimming statistics. */
function paramsEntry(a: TensorArgs, layer: number | null, kind: TensorKind, numel: number): TensorRecipeStats {
  const { job, plan, t, analyzedIdx } = a;
  const { global, perModel } = resolveTensorParams(job.recipe, plan.method, t.name, plan.numLayers);
  return {
    name: t.name,
    layer,
    kind,
    numel,
    params: { global: numeric(global), perModel: analyzedIdx.map((i) => numeric(perModel[i])) },
    kept: null,
    keptGram: null,
    keptHistograms: null,
    contributionNormSq: null,
  };
}

/** What the task-vector family keeps of each model and what each contributes (fills `entry`). */
async function addTrimStats(
  a: TensorArgs,
  entry: TensorRecipeStats,
  d: { base: Tensor; deltas: Tensor[]; own: <T extends Tensor>(x: T) => T },
): Promise<void> {
  const { job, plan, t, analyzedIdx } = a;
  const steps = a.steps!;
  const { recipe, ops } = job;
  const backend = ops.backend;
  const { global, perModel } = resolveTensorParams(recipe, plan.method, t.name, plan.numLayers);
  // Replay the family's steps (task-arithmetic-family.ts): sparsify, rescale, weight.
  const reader = new ParamReader(plan.method.name, t.name);
  // The sparsifiers read each model's parameters, position (the random masks' key) and label.
  let deltaIndex = 0;
  const inputs: MethodInput[] = recipe.models.map((m, i) => {
    const isBase = plan.models[i] === plan.base;
    const tensor = isBase ? d.base : d.deltas[deltaIndex];
    return { tensor, params: perModel[i], isBase, deltaIndex: isBase ? -1 : deltaIndex++, label: m.model };
  });
  const analyzed = analyzedIdx.map((i) => inputs[i]);
  const ctx: MergeContext = {
    backend,
    tensorName: t.name,
    shape: t.shape,
    base: d.base,
    models: inputs,
    params: global,
    seed: a.seed,
    replayMask: async () => undefined,
  };
  const normalize = reader.boolean(global, 'normalize');
  const lambda = reader.number(global, 'lambda');
  const rescalable = isRandomSparsifier(steps.sparsifier);
  const rescale = rescalable && reader.boolean(global, 'rescale');
  const rescaleMode = rescalable ? reader.option(global, 'rescale_mode', RESCALE_MODES) : 'l1';
  const weights = analyzed.map((m) => reader.number(m.params, 'weight', m));
  const kept: Tensor[] = [];
  const factors: number[] = [];
  for (let i = 0; i < analyzed.length; i++) {
    const delta = d.deltas[i];
    const s = await sparsifyAndRescale(steps.sparsifier, { ctx, reader, input: analyzed[i], delta }, { rescale, mode: rescaleMode });
    if (s.kept !== delta) d.own(s.kept);
    kept.push(s.kept);
    factors.push(weights[i] * s.scale);
  }
  entry.kept = await ops.signCounts(
    kept,
    factors.map((f) => f < 0),
  );
  entry.keptGram = Array.from(await backend.gram(kept));
  entry.keptHistograms = await ops.magnitudeHistograms(kept);
  if (steps.election) {
    const wds: Tensor[] = [];
    for (let i = 0; i < kept.length; i++) wds.push(d.own(await backend.lincomb([{ x: kept[i], coef: factors[i] }])));
    const normsSq = await ops.electedContributionNormsSq(wds, weights, normalize);
    entry.contributionNormSq = normsSq.map((v) => v * lambda * lambda);
  } else {
    let divisor = weights.reduce((x, y) => x + y, 0);
    if (Math.abs(divisor) < DIVISOR_EPS) divisor = 1;
    const outer = normalize ? lambda / divisor : lambda;
    const n = kept.length;
    entry.contributionNormSq = factors.map((f, i) => {
      // The merge scales by the f32 coefficient fround(f·outer) (lincomb takes f32 coefficients).
      const c = Math.fround(f * outer);
      return c * c * (entry.keptGram as number[])[i * n + i];
    });
  }
}

function modelSetStats(key: string, entries: TensorModelStats[], n: number, numLayers: number): ModelSetStats {
  const kinds: Partial<Record<TensorKind, ModelGroupStats>> = {};
  for (const [kind, list] of Object.entries(byKind(entries))) kinds[kind as TensorKind] = summarizeModelGroup(kind, list, n);
  return {
    key,
    tensors: entries,
    whole: summarizeModelGroup('whole model', entries, n),
    layers: byLayer(entries, numLayers).map((list, k) => summarizeModelGroup(`layer ${k}`, list, n)),
    nonLayer: summarizeModelGroup('outside the layers', entries.filter((e) => e.layer === null), n),
    byKind: kinds,
    pooledHistograms: poolHistograms(entries, n, (e) => e.histograms),
  };
}

function recipeStats(
  recipe: Recipe,
  seed: number,
  steps: FamilySteps | null,
  entries: TensorRecipeStats[],
  n: number,
  numLayers: number,
): RecipeStats {
  const kinds: Partial<Record<TensorKind, RecipeGroupStats>> = {};
  for (const [kind, list] of Object.entries(byKind(entries))) kinds[kind as TensorKind] = summarizeRecipeGroup(kind, list, n);
  const layers = byLayer(entries, numLayers);
  const nonLayer = entries.filter((e) => e.layer === null);
  const notes: string[] = [];
  if (!steps) {
    notes.push(
      `${recipe.mergeMethod} is outside the task-vector family: kept entries, overlap, consensus and shares of the merged delta ` +
        'are computed for task_arithmetic, ties, dare_*, breadcrumbs* and della*; the parameters per layer are shown.',
    );
  } else if (!recipe.baseModel) {
    notes.push(`${recipe.mergeMethod} needs a base model: without one there are no task vectors to trim.`);
  } else {
    notes.push('Kept entries are those the sparsifier keeps with a nonzero value; signs after trimming are those of w_i·δ_i, as the merge adds them.');
    if (isRandomSparsifier(steps.sparsifier)) notes.push(`Random masks are drawn with seed ${seed}, as a merge with the same seed draws them.`);
    if (steps.election) notes.push('Shares of the merged delta count only the entries that agree with the elected sign.');
  }
  return {
    method: recipe.mergeMethod,
    seed,
    sparsifier: steps?.sparsifier ?? null,
    election: steps?.election ?? false,
    tensors: entries,
    whole: summarizeRecipeGroup('whole model', entries, n),
    layers: layers.map((list, k) => summarizeRecipeGroup(`layer ${k}`, list, n)),
    nonLayer: summarizeRecipeGroup('outside the layers', nonLayer, n),
    byKind: kinds,
    pooledKeptHistograms: entries.some((e) => e.keptHistograms) ? poolHistograms(entries, n, (e) => e.keptHistograms) : null,
    coefficients: {
      layers: layers.map((list, k) => coefficientsOf(`layer ${k}`, list, n)),
      nonLayer: coefficientsOf('outside the layers', nonLayer, n),
    },
    notes,
  };
}

/** One model's tensor as the merge reads it (the engine's own read and cast). */
async function loadTensor(
  backend: AnalysisOps['backend'],
  m: ModelSource,
  t: TensorPlan,
  castTo: FloatDType | undefined,
  signal?: AbortSignal,
): Promise<Tensor> {
  const info = m.tensors.get(t.name);
  if (!info) throw new AnalysisInputError(`tensor ${t.name} is missing from model ${m.id}`);
  return decodeInput(backend, await readTensorBytes(m, t, signal), info.dtype as FloatDType, t.shape, castTo);
}
