/**
 * The analysis driver: one streaming pass over a recipe's tensors, one tensor at a time like the
 * merge (src/gpu/engine.ts), keeping only small per-tensor summaries.
 *
 * - Model statistics (recipe-independent, cached per model set): task-vector dot products → norms,
 *   cosines, change relative to the base; sign conflicts; |δ| histograms; the weight matrices' top
 *   singular values, effective ranks and subspace overlaps (subspace.ts).
 * - Recipe statistics (the method and parameters as they are now): for the task-vector family, the
 *   entries each model keeps (the method's own sparsifier functions, same seed and keys as the merge),
 *   their overlap, consensus and conflicts, and each model's share of the merged delta; for every
 *   method, the parameters each tensor resolves to.
 *
 * The math is the merge's f32 math; the 16-bit rounding the engine emulates when a recipe sets no
 * `dtype` (task-arithmetic-family.ts mergeRounded) is left out, so shares can differ from such a
 * merge in the last bits.
 *
 * Re-runs do only what a change needs (cache.ts): a tensor whose resolved parameters did not change
 * keeps its recipe statistics; with ResidentTensors the inputs stay decoded on the backend and each
 * model's kept entries are reused while that model's sparsifier parameters stay the same, so moving
 * one model's density re-sparsifies that model alone and reads nothing.
 */
import type { FloatDType } from '../../core/dtype.ts';
import { resolveTensorParams, layerIndexOf } from '../../core/recipe/resolve.ts';
import { isMatrixTensor } from '../../core/tensor-names.ts';
import type { Recipe } from '../../core/recipe/types.ts';
import type { ModelSource } from '../../core/source.ts';
import type { Tensor } from '../backend.ts';
import { decodeInput, planMerge, readTensorBytes, type MergePlan, type TensorPlan } from '../engine.ts';
import { ParamReader } from '../methods/common.ts';
import { isRandomSparsifier, RESCALE_MODES, SPARSIFIER_PARAMS, sparsifyAndRescale } from '../methods/sparsifiers.ts';
import type { MergeContext, MethodInput } from '../methods/types.ts';
import { BINS_PER_OCTAVE, binEdges, MIN_EXPONENT, OCTAVES } from './bins.ts';
import type { AnalysisCache, ResidentTensors } from './cache.ts';
import { familyStepsOf, type FamilySteps } from './family.ts';
import { MAX_SIGN_MODELS, type AnalysisOps, type MagnitudeHistogram } from './ops.ts';
import {
  byKind,
  byLayer,
  coefficientsOf,
  poolHistograms,
  summarizeModelGroup,
  summarizeRecipeGroup,
} from './summarize.ts';
import { DEFAULT_SUBSPACE_RANK, summarizeSubspace, tensorSubspace } from './subspace.ts';
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
  /** Singular directions per weight matrix for the subspace statistics (subspace.ts). @default 16 */
  subspaceRank?: number;
  /** Which statistics to compute (default: both). */
  parts?: { model?: boolean; recipe?: boolean };
  /** Model statistics by model set, recipe statistics by tensor and parameters: a hit skips their computation. */
  cache?: AnalysisCache;
  /**
   * Inputs and kept entries left on the backend between runs (it must be the ops' backend's): a
   * re-run reads nothing and re-sparsifies only models whose parameters changed.
   */
  resident?: ResidentTensors;
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
  const subspaceRank = opts.subspaceRank ?? DEFAULT_SUBSPACE_RANK;
  let modelStats: ModelSetStats | null = wantModel ? (opts.cache?.get(key) ?? null) : null;
  if (modelStats && modelStats.subspace.rank !== subspaceRank) modelStats = null;
  const computeModel = wantModel && modelStats === null;
  const steps = familyStepsOf(recipe.mergeMethod);

  const modelEntries: TensorModelStats[] = [];
  const recipeEntries: TensorRecipeStats[] = [];
  if (opts.resident && opts.resident.backend !== ops.backend) throw new AnalysisInputError('the resident tensors belong to another backend');
  if (computeModel || wantRecipe) {
    for (let k = 0; k < tensors.length; k++) {
      if (opts.signal?.aborted) throw new AnalysisCancelledError();
      const t = tensors[k];
      const resolved = wantRecipe ? resolveTensorParams(recipe, plan.method, t.name, plan.numLayers) : null;
      // A tensor's recipe statistics depend on its inputs (the model set), its resolved parameters, the method and the seed.
      const entryKey = resolved && opts.cache ? JSON.stringify([key, t.name, recipe.mergeMethod, seed, resolved.global, resolved.perModel]) : null;
      let recipeEntry = entryKey ? opts.cache!.getRecipeEntry(entryKey) : undefined;
      if (computeModel || (wantRecipe && !recipeEntry)) {
        const entry = await analyzeTensor({ job, plan, t, models, analyzedIdx, steps, seed, setKey: key, resolved, computeModel, computeRecipe: wantRecipe && !recipeEntry });
        if (entry.model) modelEntries.push(entry.model);
        if (entry.recipe) {
          recipeEntry = entry.recipe;
          if (entryKey) opts.cache!.setRecipeEntry(entryKey, recipeEntry);
        }
      }
      if (recipeEntry) recipeEntries.push(recipeEntry);
      opts.onProgress?.({
        tensorsDone: k + 1,
        tensorsTotal: tensors.length,
        currentTensor: t.name,
        parts: { model: computeModel, recipe: wantRecipe },
      });
    }
  }
  if (computeModel) {
    modelStats = modelSetStats(key, modelEntries, n, plan.numLayers, subspaceRank);
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

type ResolvedParams = ReturnType<typeof resolveTensorParams>;

interface TensorArgs {
  job: AnalyzeJob;
  plan: MergePlan;
  t: TensorPlan;
  models: readonly ModelSource[];
  analyzedIdx: readonly number[];
  steps: FamilySteps | null;
  seed: number;
  /** The model set's key (inputs of this tensor are resident under it). */
  setKey: string;
  /** The tensor's parameters (null when the recipe part is not asked for). */
  resolved: ResolvedParams | null;
  computeModel: boolean;
  computeRecipe: boolean;
}

/** Inputs of one tensor: the base (when there is one) and each analyzed model's task vector. */
interface TensorInputs {
  base: Tensor | undefined;
  deltas: Tensor[];
}

async function analyzeTensor(a: TensorArgs): Promise<{ model?: TensorModelStats; recipe?: TensorRecipeStats }> {
  const { job, plan, t } = a;
  const { ops } = job;
  const backend = ops.backend;
  const resident = job.options?.resident;
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
    if (a.computeRecipe) out.recipe = paramsEntry(a, a.resolved!, layer, kind, numel);
    // Only the task-vector family's trimming and the model statistics read the weights.
    const trims = out.recipe !== undefined && a.steps !== null && plan.base !== undefined;
    if (!a.computeModel && !trims) return out;
    const inputsKey = `${a.setKey}\u0000${t.name}`;
    const inputs = await tensorInputs(a, inputsKey, own);
    if (a.computeModel) {
      const histograms = await ops.magnitudeHistograms(inputs.deltas);
      const gram = Array.from(await backend.gram(inputs.deltas));
      const rank = job.options?.subspaceRank ?? DEFAULT_SUBSPACE_RANK;
      out.model = {
        name: t.name,
        shape: [...t.shape],
        layer,
        kind,
        numel,
        gram,
        baseNormSq: inputs.base ? (await backend.gram([inputs.base]))[0] : null,
        signs: await ops.signCounts(inputs.deltas),
        histograms,
        subspace: isMatrixTensor(t.name, t.shape)
          ? await tensorSubspace(backend, inputs.deltas, { rank, normsSq: inputs.deltas.map((_, i) => gram[i * (inputs.deltas.length + 1)]) })
          : null,
      };
    }
    if (trims) await addTrimStats(a, out.recipe!, { base: inputs.base!, deltas: inputs.deltas, own, inputsKey });
    return out;
  } finally {
    for (const x of owned) backend.release(x);
    resident?.unpinAll();
  }
}

/** The tensor's inputs: resident from an earlier run, else read, cast and subtracted (and made resident when there is room). */
async function tensorInputs(a: TensorArgs, inputsKey: string, own: <T extends Tensor>(x: T) => T): Promise<TensorInputs> {
  const { job, plan, t } = a;
  const backend = job.ops.backend;
  const resident = job.options?.resident;
  const signal = job.options?.signal;
  const hit = resident?.take<{ hasBase: boolean }>(inputsKey);
  if (hit) return { base: hit.data.hasBase ? hit.tensors[0] : undefined, deltas: hit.tensors.slice(hit.data.hasBase ? 1 : 0) };
  const made: Tensor[] = [];
  try {
    const base = plan.base ? await loadTensor(backend, plan.base, t, job.recipe.dtype, signal) : undefined;
    if (base) made.push(base);
    const deltas: Tensor[] = [];
    for (const m of a.models) {
      const x = await loadTensor(backend, m, t, job.recipe.dtype, signal);
      if (!base) {
        made.push(x);
        deltas.push(x);
        continue;
      }
      try {
        const delta = await backend.lincomb([
          { x, coef: 1 },
          { x: base, coef: -1 },
        ]);
        made.push(delta);
        deltas.push(delta);
      } finally {
        backend.release(x);
      }
    }
    if (resident) resident.put(inputsKey, [...made], { hasBase: base !== undefined });
    else for (const x of made) own(x);
    made.length = 0;
    return { base, deltas };
  } finally {
    for (const x of made) backend.release(x);
  }
}

/** Numeric values of a resolved parameter record (booleans and options left out). */
function numeric(params: Record<string, unknown>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(params)) if (typeof v === 'number') out[k] = v;
  return out;
}

/** The parameters `t` resolves to, and room for the trimming statistics. */
function paramsEntry(a: TensorArgs, resolved: ResolvedParams, layer: number | null, kind: TensorKind, numel: number): TensorRecipeStats {
  const { t, analyzedIdx } = a;
  const { global, perModel } = resolved;
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

/** What one model's sparsifier kept: its factor and histogram; the tensor is the task vector itself when nothing was dropped. */
interface KeptData {
  scale: number;
  histogram: MagnitudeHistogram;
  /** Nothing dropped: `kept` is the task vector (not a tensor of its own). */
  isDelta: boolean;
}

/** What the task-vector family keeps of each model and what each contributes (fills `entry`). */
async function addTrimStats(
  a: TensorArgs,
  entry: TensorRecipeStats,
  d: { base: Tensor; deltas: Tensor[]; own: <T extends Tensor>(x: T) => T; inputsKey: string },
): Promise<void> {
  const { job, plan, t, analyzedIdx } = a;
  const steps = a.steps!;
  const { recipe, ops } = job;
  const backend = ops.backend;
  const resident = job.options?.resident;
  const { global, perModel } = a.resolved!;
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
  const sparsifierParams = SPARSIFIER_PARAMS[steps.sparsifier].map((p) => p.name);
  const kept: Tensor[] = [];
  const histograms: MagnitudeHistogram[] = [];
  const factors: number[] = [];
  for (let i = 0; i < analyzed.length; i++) {
    const delta = d.deltas[i];
    // What model i keeps depends on its own sparsifier parameters, its position (random masks), the seed and the rescaling only.
    const keptKey = `${d.inputsKey}\u0000kept\u0000${JSON.stringify([
      steps.sparsifier,
      i,
      sparsifierParams.map((n) => analyzed[i].params[n] ?? null),
      rescalable ? a.seed : null,
      rescale,
      rescaleMode,
    ])}`;
    let hit = resident?.take<KeptData>(keptKey);
    if (!hit) {
      const s = await sparsifyAndRescale(steps.sparsifier, { ctx, reader, input: analyzed[i], delta }, { rescale, mode: rescaleMode });
      const isDelta = s.kept === delta;
      const histogram = (await ops.magnitudeHistograms([s.kept]))[0];
      const data: KeptData = { scale: s.scale, histogram, isDelta };
      if (resident) hit = resident.put(keptKey, isDelta ? [] : [s.kept], data);
      else hit = { tensors: isDelta ? [] : [d.own(s.kept)], data };
    }
    kept.push(hit.data.isDelta ? delta : hit.tensors[0]);
    histograms.push(hit.data.histogram);
    factors.push(weights[i] * hit.data.scale);
  }
  entry.kept = await ops.signCounts(
    kept,
    factors.map((f) => f < 0),
  );
  entry.keptGram = Array.from(await backend.gram(kept));
  entry.keptHistograms = histograms;
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

function modelSetStats(key: string, entries: TensorModelStats[], n: number, numLayers: number, subspaceRank: number): ModelSetStats {
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
    subspace: summarizeSubspace(entries, n, numLayers, subspaceRank),
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
