/**
 * Per-tensor parameter resolution (../../shared/METHODS.md "Recipes", mergekit's `evaluate_setting`):
 * a value is a scalar, a gradient over layer depth, or a list of `{filter, value}` conditions, and a
 * parameter is looked up in the model's parameters, then the top-level parameters, then the
 * method's default.
 */
import type { MethodSchema, ParamScalar, ParamSpec } from '../params.ts';
import { RecipeError, type RecipeKey } from './errors.ts';
import type { ParamCondition, ParamValue, Recipe } from './types.ts';
import { isRequired, quote, scalarProblem } from './validate.ts';

/** A tensor whose layer index does not fit the model's layer count. */
export class LayerIndexError extends RangeError {
  constructor(
    readonly tensor: string,
    readonly layer: number,
    readonly numLayers: number,
  ) {
    super(`tensor ${tensor}: layer ${layer} is outside a model of ${numLayers} layers`);
    this.name = 'LayerIndexError';
  }
}

/**
 * `layers.<k>.` anywhere in the name (`model.layers.3.mlp.up_proj.weight` → 3); the first one wins.
 * Names with other layer prefixes (GPT-2's `h.<k>.`) count as non-layer tensors.
 */
const LAYER_INDEX = /(?:^|\.)layers\.(\d+)\./;

export function layerIndexOf(tensorName: string): number | undefined {
  const m = LAYER_INDEX.exec(tensorName);
  return m ? Number(m[1]) : undefined;
}

/**
 * Depth t ∈ [0, 1] of a tensor: k/(L−1) for layer k of L, 1 when L = 1 (as mergekit), and 0 for
 * every tensor outside the layers (embeddings, final norm, lm_head).
 */
export function layerPosition(tensorName: string, numLayers: number): number {
  const k = layerIndexOf(tensorName);
  if (k === undefined) return 0;
  if (k >= numLayers) throw new LayerIndexError(tensorName, k, numLayers);
  return numLayers === 1 ? 1 : k / (numLayers - 1);
}

/**
 * Piecewise-linear gradient at t: s = t·(n−1), i = ⌊s⌋, f = s − i, (1−f)·v[i] + f·v[min(i+1, n−1)].
 * The result is kept between v[i] and v[i+1], which the exact value is, so rounding can never push
 * it out of a range both ends satisfy (e.g. [1, 1] gives exactly 1).
 */
export function evalGradient(values: readonly number[], t: number): number {
  const n = values.length;
  if (n === 0) throw new RangeError('a gradient needs at least one value');
  const s = Math.min(Math.max(t, 0), 1) * (n - 1);
  const i = Math.min(Math.floor(s), n - 1);
  const f = s - i;
  const a = values[i];
  const b = values[Math.min(i + 1, n - 1)];
  const v = (1 - f) * a + f * b;
  return Math.min(Math.max(v, Math.min(a, b)), Math.max(a, b));
}

/**
 * One parameter value for one tensor: scalars as they are, gradients at the tensor's depth,
 * conditions by the first entry whose filter is absent, "*", or a substring of the name.
 * Undefined when no condition matches (the lookup then moves on to the next level).
 */
export function resolveParamValue(value: ParamValue, tensorName: string, numLayers: number, position?: number): ParamScalar | undefined {
  if (!Array.isArray(value)) return value;
  if (value.length === 0) return undefined;
  const t = () => position ?? layerPosition(tensorName, numLayers);
  if (value.every((v) => typeof v === 'number')) return evalGradient(value as number[], t());
  for (const cond of value as ParamCondition[]) {
    if (cond.filter === undefined || cond.filter === '*' || tensorName.includes(cond.filter)) {
      const v = cond.value;
      return Array.isArray(v) ? evalGradient(v, t()) : v;
    }
  }
  return undefined;
}

/** How a slice's tensor resolves its parameters (mergekit's planner). */
export interface SliceResolveOptions {
  /** The gradient position t: the layer's place in its slice (idx/(n−1), 1 when n = 1; 0 outside the layers). */
  position: number;
  /** The slice's parameters: looked up after a model's own, before the top-level ones. */
  sliceParameters: Record<string, ParamValue>;
  /** Per recipe model, the input tensor's name, which per-model filters match (as mergekit). */
  modelTensorNames: readonly string[];
  /** Where the slice is in the recipe (`['slices', 2]`), for messages. */
  sliceKeys: readonly RecipeKey[];
}

export interface TensorParams {
  /** The method's global parameters for this tensor, defaults applied. */
  global: Record<string, ParamScalar>;
  /** Per-model parameters, one record per recipe model in recipe order, defaults applied. */
  perModel: Record<string, ParamScalar>[];
}

/**
 * Every parameter of `method` for one tensor. Lookup: the model's parameters, the top-level
 * parameters, the default. A required parameter still missing is a RecipeError naming model,
 * tensor and parameter, except for the base model listed among the models, which (as in mergekit)
 * needs no per-model parameters: its record then lacks them. Parameters with neither a value nor a
 * default are left out of the records.
 */
export function resolveTensorParams(recipe: Recipe, method: MethodSchema, tensorName: string, numLayers: number, slice?: SliceResolveOptions): TensorParams {
  const topLevel = recipe.parameters ?? {};
  const sliceLevel = slice?.sliceParameters ?? {};
  const position = slice?.position;
  const modelKeys = (i: number): RecipeKey[] => (slice ? [...slice.sliceKeys, 'sources', i] : ['models', i]);
  const global: Record<string, ParamScalar> = {};
  for (const spec of method.params) {
    const fromSlice = lookup(sliceLevel, spec.name, tensorName, numLayers, position);
    const fromTop = fromSlice === undefined ? lookup(topLevel, spec.name, tensorName, numLayers, position) : undefined;
    const value = fromSlice ?? fromTop ?? spec.default;
    if (value === undefined) {
      if (isRequired(spec)) {
        throw new RecipeError(
          ['parameters', spec.name],
          `tensor ${tensorName}: no value for ${method.name}'s required parameter ${quote(spec.name)} (no condition matched)`,
          { at: ['parameters'] },
        );
      }
      continue;
    }
    const keys = fromSlice !== undefined ? [...(slice?.sliceKeys ?? []), 'parameters', spec.name] : ['parameters', spec.name];
    checkResolved(spec, value, keys, tensorName);
    global[spec.name] = value;
  }

  const perModel = recipe.models.map((entry, i) => {
    const own = entry.parameters ?? {};
    const isBase = entry.model === recipe.baseModel;
    const name = slice?.modelTensorNames[i] ?? tensorName;
    const params: Record<string, ParamScalar> = {};
    for (const spec of method.perModelParams) {
      const fromModel = lookup(own, spec.name, name, numLayers, position);
      const fromSlice = fromModel === undefined ? lookup(sliceLevel, spec.name, name, numLayers, position) : undefined;
      const fromTop = fromModel === undefined && fromSlice === undefined ? lookup(topLevel, spec.name, name, numLayers, position) : undefined;
      const value = fromModel ?? fromSlice ?? fromTop ?? spec.default;
      if (value === undefined) {
        if (isRequired(spec) && !isBase) {
          throw new RecipeError(
            [...modelKeys(i), 'parameters', spec.name],
            `model ${quote(entry.model)}, tensor ${name}: no value for ${method.name}'s required parameter ` +
              `${quote(spec.name)} (not in the model's parameters nor the top-level parameters, or no condition matched)`,
            { at: modelKeys(i) },
          );
        }
        continue;
      }
      const keys =
        fromModel !== undefined
          ? [...modelKeys(i), 'parameters', spec.name]
          : fromSlice !== undefined
            ? [...(slice?.sliceKeys ?? []), 'parameters', spec.name]
            : ['parameters', spec.name];
      checkResolved(spec, value, keys, name, entry.model);
      params[spec.name] = value;
    }
    return params;
  });
  return { global, perModel };
}

function lookup(params: Record<string, ParamValue>, name: string, tensorName: string, numLayers: number, position?: number): ParamScalar | undefined {
  return Object.hasOwn(params, name) ? resolveParamValue(params[name], tensorName, numLayers, position) : undefined;
}

function checkResolved(spec: ParamSpec, value: ParamScalar, keys: RecipeKey[], tensorName: string, model?: string): void {
  const problem = scalarProblem(spec, value, true);
  if (!problem) return;
  const who = model === undefined ? '' : `model ${quote(model)}, `;
  throw new RecipeError(keys, `${who}tensor ${tensorName}: ${problem}`);
}

/** config.json keys that give the number of transformer layers, in the order they are tried. */
const LAYER_COUNT_KEYS = ['num_hidden_layers', 'n_layer', 'num_layers'];

/**
 * Number of layers of a model: `num_hidden_layers` (or `n_layer`, `num_layers`) from config.json,
 * then the same keys in `text_config` (multimodal configs), else 1 + the largest layer index among
 * the tensor names (0 when no name has one).
 */
export function numLayersOf(config: Record<string, unknown> | null, tensorNames: Iterable<string>): number {
  const scopes = [config, config?.text_config];
  for (const scope of scopes) {
    if (typeof scope !== 'object' || scope === null) continue;
    for (const key of LAYER_COUNT_KEYS) {
      const v = (scope as Record<string, unknown>)[key];
      if (typeof v === 'number' && Number.isInteger(v) && v > 0) return v;
    }
  }
  let max = -1;
  for (const name of tensorNames) {
    const k = layerIndexOf(name);
    if (k !== undefined && k > max) max = k;
  }
  return max + 1;
}
