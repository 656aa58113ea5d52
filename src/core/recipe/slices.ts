/**
 * mergekit's `slices:` (output layer slices), as its planner reads them: each slice lists sources
 * (a model and a `layer_range: [from, to)`), all with the same number of layers; the slices' layers
 * are numbered consecutively in the output. Parsing, validation against a method's schema, and the
 * layer map the model card and the studio show.
 */
import type { MethodSchema, ParamSpec } from '../params.ts';
import type { RecipeKey } from './errors.ts';
import { checkKeys, isMapping, modelRefFromRaw, parametersFromRaw, type Fail } from './raw.ts';
import type { ParamValue, Recipe, RecipeSlice, RecipeSliceSource } from './types.ts';
import { checkParamValue, isRequired, quote, show, unknownParamReason } from './validate.ts';

const SLICE_KEYS = ['sources', 'base_model', 'parameters'] as const;
const SOURCE_KEYS = ['model', 'layer_range', 'parameters'] as const;

/** `slices:` → RecipeSlice[], checking structure only (parameter names: validateSlices). */
export function slicesFromRaw(raw: unknown, fail: Fail): RecipeSlice[] {
  if (!Array.isArray(raw) || raw.length === 0) fail(['slices'], 'must be a non-empty list of {sources: [{model, layer_range}]}');
  return (raw as unknown[]).map((entry, i) => sliceFromRaw(entry, ['slices', i], fail));
}

function sliceFromRaw(entry: unknown, keys: RecipeKey[], fail: Fail): RecipeSlice {
  if (!isMapping(entry)) fail(keys, `${show(entry)} must be a mapping {sources, base_model, parameters}`);
  const m = entry as Record<string, unknown>;
  checkKeys(m, SLICE_KEYS, keys, fail, ' in a slice');
  if (!Array.isArray(m.sources) || m.sources.length === 0) {
    fail([...keys, 'sources'], `${m.sources === undefined ? 'missing' : show(m.sources)}: list the slice's sources as {model, layer_range: [from, to]}`);
  }
  const slice: RecipeSlice = {
    sources: (m.sources as unknown[]).map((s, j) => sourceFromRaw(s, [...keys, 'sources', j], fail)),
    parameters: parametersFromRaw(m.parameters, [...keys, 'parameters'], fail),
  };
  if (m.base_model !== undefined && m.base_model !== null) slice.baseModel = modelRefFromRaw(m.base_model, [...keys, 'base_model'], fail);
  return slice;
}

function sourceFromRaw(entry: unknown, keys: RecipeKey[], fail: Fail): RecipeSliceSource {
  if (!isMapping(entry)) fail(keys, `${show(entry)} must be a mapping {model, layer_range, parameters}`);
  const m = entry as Record<string, unknown>;
  checkKeys(m, SOURCE_KEYS, keys, fail, ' in a slice source');
  const model = modelRefFromRaw(m.model, [...keys, 'model'], fail);
  const range = m.layer_range;
  const rangeKeys = [...keys, 'layer_range'];
  if (range === undefined || range === null) fail(rangeKeys, 'missing: give the layers as [from, to] (to excluded)');
  if (!Array.isArray(range) || range.length !== 2 || !range.every((v) => Number.isInteger(v) && v >= 0)) {
    fail(rangeKeys, `${show(range)} must be [from, to]: two layer indices, from included, to excluded`);
  }
  const [from, to] = range as [number, number];
  if (to <= from) fail(rangeKeys, `[${from}, ${to}] is empty: to must be above from (to is excluded)`);
  return { model, layerRange: [from, to], parameters: parametersFromRaw(m.parameters, [...keys, 'parameters'], fail) };
}

/** Layers a slice contributes (every source has this many; validateSlices checks). */
export function sliceLength(slice: RecipeSlice): number {
  const [from, to] = slice.sources[0].layerRange;
  return to - from;
}

/** Output layers of a slices recipe. */
export function outputLayerCount(slices: readonly RecipeSlice[]): number {
  return slices.reduce((n, s) => n + sliceLength(s), 0);
}

/** The base model of a slice: its own, else the recipe's. */
export function sliceBase(recipe: Recipe, slice: RecipeSlice): string | undefined {
  return slice.baseModel ?? recipe.baseModel;
}

/**
 * Checks a slices recipe against the method's schema, as validateRecipe does for `models`:
 * sources of a slice have equal layer counts and distinct models; a source's parameters are
 * per-model ones; a slice's parameters are global or per-model; required parameters are given at
 * some level (source, slice, top level).
 */
export function validateSlices(recipe: Recipe, method: MethodSchema, fail: Fail): void {
  const slices = recipe.slices ?? [];
  const globalSpecs = new Map(method.params.map((s) => [s.name, s]));
  const perModelSpecs = new Map(method.perModelParams.map((s) => [s.name, s]));
  const topLevel = recipe.parameters ?? {};
  slices.forEach((slice, i) => {
    const keys = ['slices', i];
    const length = sliceLength(slice);
    const seen = new Map<string, number>();
    slice.sources.forEach((source, j) => {
      const at = [...keys, 'sources', j];
      const [from, to] = source.layerRange;
      if (to - from !== length) {
        fail([...at, 'layer_range'], `[${from}, ${to}] has ${to - from} layers, the slice's first source ${length}: every source of a slice gives the same number of layers`);
      }
      const before = seen.get(source.model);
      if (before !== undefined) fail([...at, 'model'], `${quote(source.model)} is already source ${before} of this slice`);
      seen.set(source.model, j);
      for (const [name, value] of Object.entries(source.parameters)) {
        const spec = perModelSpecs.get(name);
        if (!spec) {
          if (globalSpecs.has(name)) {
            fail([...at, 'parameters', name], `${quote(name)} is a global parameter of ${method.name}: put it in the slice's or the top-level parameters`);
          }
          fail([...at, 'parameters', name], unknownParamReason(name, method, [...perModelSpecs.keys()]), [...at, 'parameters']);
        }
        checkParamValue(spec, value, [...at, 'parameters', name], fail);
      }
    });
    for (const [name, value] of Object.entries(slice.parameters)) {
      const spec = globalSpecs.get(name) ?? perModelSpecs.get(name);
      if (!spec) fail([...keys, 'parameters', name], unknownParamReason(name, method, [...globalSpecs.keys(), ...perModelSpecs.keys()]), [...keys, 'parameters']);
      checkParamValue(spec, value, [...keys, 'parameters', name], fail);
    }
    const base = sliceBase(recipe, slice);
    for (const spec of method.params) {
      if (!isRequired(spec) || Object.hasOwn(topLevel, spec.name) || Object.hasOwn(slice.parameters, spec.name)) continue;
      fail([...keys, 'parameters', spec.name], `missing required parameter ${quote(spec.name)} of ${method.name} (set it in the slice's or the top-level parameters)`, [...keys]);
    }
    slice.sources.forEach((source, j) => {
      if (source.model === base) return;
      for (const spec of method.perModelParams) {
        if (!isRequired(spec) || hasParam(spec, source.parameters, slice.parameters, topLevel)) continue;
        fail(
          [...keys, 'sources', j, 'parameters', spec.name],
          `model ${quote(source.model)} has no ${quote(spec.name)} parameter, required by ${method.name} (set it in the source's, the slice's or the top-level parameters)`,
          [...keys, 'sources', j],
        );
      }
    });
  });
}

function hasParam(spec: ParamSpec, ...levels: Record<string, ParamValue>[]): boolean {
  return levels.some((l) => Object.hasOwn(l, spec.name));
}

/** One output slice as the model card and the studio show it: which input layers make which output layers. */
export interface SliceLayerMap {
  /** Output layers [from, to). */
  output: [number, number];
  sources: { model: string; layers: [number, number] }[];
}

export function sliceLayerMap(slices: readonly RecipeSlice[]): SliceLayerMap[] {
  let next = 0;
  return slices.map((slice) => {
    const n = sliceLength(slice);
    const entry: SliceLayerMap = { output: [next, next + n], sources: slice.sources.map((s) => ({ model: s.model, layers: [...s.layerRange] as [number, number] })) };
    next += n;
    return entry;
  });
}

/** The model card's layer table: which input layers make each run of output layers. */
export function layerMapMarkdown(slices: readonly RecipeSlice[]): string[] {
  const span = ([from, to]: [number, number]) => (to - from === 1 ? `${from}` : `${from}–${to - 1}`);
  const lines = ['## Layers', '', `${outputLayerCount(slices)} output layers, made from these input layers (one slice per row; a row with several sources merges them layer by layer):`, ''];
  lines.push('| output layers | input layers |', '|---|---|');
  for (const entry of sliceLayerMap(slices)) {
    lines.push(`| ${span(entry.output)} | ${entry.sources.map((s) => `\`${s.model}\` ${span(s.layers)}`).join(' + ')} |`);
  }
  lines.push('');
  return lines;
}
