/**
 * Which input tensors make each output tensor of a `slices:` recipe, as mergekit's planner decides:
 * output layers are numbered consecutively across slices; output layer `from + i` of a slice is made
 * of layer `layer_range[0] + i` of each of its sources, at gradient position i/(n−1) (1 when the
 * slice has one layer); the input embeddings come from the first slice's sources and every other
 * tensor outside the layers (final norm, LM head) from the last slice's, both at position 0.
 * Parameters are looked up in the source, the slice, the top level, then the default.
 *
 * Headers only: nothing here reads tensor data.
 */
import { isFloatDType } from '../../core/dtype.ts';
import { layerIndexOf, numLayersOf, type SliceResolveOptions } from '../../core/recipe/resolve.ts';
import { outputLayerCount, sliceBase, sliceLength } from '../../core/recipe/slices.ts';
import type { Recipe, RecipeSlice } from '../../core/recipe/types.ts';
import type { ModelSource, TensorInfo } from '../../core/source.ts';
import { isEmbeddingName, isInputEmbeddingName } from '../../core/tensor-names.ts';
import type { MethodDescriptor } from '../methods/types.ts';
import { mergesTokenizer } from './tokenizer.ts';

/** Where one output tensor's inputs come from and how its parameters resolve (a slice's view). */
export interface TensorSources {
  /** The slice as a `models:` recipe: its sources (with their parameters), its base, the top-level parameters. */
  recipe: Recipe;
  /** Position, slice parameters and input names for parameter lookup. */
  slice: SliceResolveOptions;
  /** One per source, in the slice's order. */
  models: ModelSource[];
  /** The tensor read in each of `models`. */
  tensors: string[];
  /** The slice's base (one of `models`), when the method uses a base. */
  base: ModelSource | undefined;
}

/** One output tensor of a slices merge. */
export interface SlicedTensor {
  name: string;
  shape: number[];
  outDtype: TensorInfo['dtype'];
  merged: boolean;
  rows?: number;
  inputs: TensorSources;
}

export interface SlicesPlan {
  /** The model whose config and tokenizer the output starts from: the first slice's first source. */
  reference: ModelSource;
  tensors: SlicedTensor[];
  /** Output layers. */
  numLayers: number;
  /** The reference's config.json with the output's layer count. */
  config: Record<string, unknown> | null;
  notes: string[];
}

/** A slices recipe that cannot be planned over these models (names the slice, model and tensor). */
export class SlicesPlanError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SlicesPlanError';
  }
}

/** Tensors of one model by layer index (`layers.<k>.`), and those outside the layers, in file order. */
interface LayerIndex {
  byLayer: Map<number, TensorInfo[]>;
  outside: TensorInfo[];
  numLayers: number;
}

export function planSlices(recipe: Recipe, sources: ReadonlyMap<string, ModelSource>, method: MethodDescriptor): SlicesPlan {
  const slices = recipe.slices ?? [];
  if (slices.length === 0) throw new SlicesPlanError('the recipe has no slices');
  if (method.prepare) {
    throw new SlicesPlanError(`${method.name} runs passes over whole models before merging; it cannot merge slices (list whole models under models)`);
  }
  const open = (ref: string): ModelSource => {
    const s = sources.get(ref);
    if (!s) throw new SlicesPlanError(`model "${ref}" was not opened`);
    return s;
  };
  const indexes = new Map<ModelSource, LayerIndex>();
  const indexOf = (m: ModelSource): LayerIndex => {
    let index = indexes.get(m);
    if (!index) indexes.set(m, (index = layerIndex(m)));
    return index;
  };

  const reference = open(slices[0].sources[0].model);
  const referenceIndex = indexOf(reference);
  if (referenceIndex.byLayer.size === 0) {
    throw new SlicesPlanError(`${reference.id} has no tensors named layers.<k>.: slices need models whose layers are numbered that way (Llama-style)`);
  }
  const outDtypeOf = (info: TensorInfo): TensorInfo['dtype'] => (isFloatDType(info.dtype) ? (recipe.outDtype ?? recipe.dtype ?? info.dtype) : info.dtype);
  const notes: string[] = [];
  const tensors: SlicedTensor[] = [];
  // A rebuilt vocabulary gathers embedding rows per token (plan/tokenizer.ts) instead of cutting them.
  const vocabRebuilt = mergesTokenizer(recipe);

  const views = slices.map((slice, si) => sliceView(recipe, slice, si, method, open, indexOf));

  // Outside the layers: input embeddings with the first slice, the rest with the last, at t = 0.
  const outside = (pick: (name: string) => boolean, view: SliceView) => {
    for (const info of referenceIndex.outside) {
      if (!pick(info.name)) continue;
      const names = view.models.map(() => info.name);
      tensors.push(plannedTensor(info.name, names, view, 0, outDtypeOf, notes, vocabRebuilt));
    }
  };
  outside(isInputEmbeddingName, views[0]);
  let next = 0;
  views.forEach((view) => {
    const n = sliceLength(view.slice);
    for (let i = 0; i < n; i++) {
      const position = n > 1 ? i / (n - 1) : 1;
      const inputLayers = view.slice.sources.map((s) => s.layerRange[0] + i);
      const first = indexOf(view.models[0]).byLayer.get(inputLayers[0]) ?? [];
      for (const info of first) {
        const names = view.models.map((m, j) => renumbered(info.name, inputLayers[0], inputLayers[j]));
        tensors.push(plannedTensor(renumbered(info.name, inputLayers[0], next + i), names, view, position, outDtypeOf, notes, vocabRebuilt));
      }
    }
    next += n;
  });
  outside((name) => !isInputEmbeddingName(name), views[views.length - 1]);

  const numLayers = outputLayerCount(slices);
  return { reference, tensors, numLayers, config: withLayerCount(reference.config, numLayers), notes };
}

interface SliceView {
  slice: RecipeSlice;
  index: number;
  models: ModelSource[];
  base: ModelSource | undefined;
  /** The slice as a models-form recipe (for parameter lookup). */
  recipe: Recipe;
}

function sliceView(
  recipe: Recipe,
  slice: RecipeSlice,
  si: number,
  method: MethodDescriptor,
  open: (ref: string) => ModelSource,
  indexOf: (m: ModelSource) => LayerIndex,
): SliceView {
  const where = `slices[${si}]`;
  const count = slice.sources.length;
  if (count < method.minModels || (method.maxModels !== undefined && count > method.maxModels)) {
    const range = method.maxModels === undefined ? `at least ${method.minModels}` : method.minModels === method.maxModels ? `exactly ${method.minModels}` : `${method.minModels} to ${method.maxModels}`;
    throw new SlicesPlanError(`${where}: ${method.name} takes ${range} sources per slice, this one has ${count}`);
  }
  const models = slice.sources.map((s) => open(s.model));
  slice.sources.forEach((s, j) => {
    const { numLayers } = indexOf(models[j]);
    const [from, to] = s.layerRange;
    if (to > numLayers) {
      throw new SlicesPlanError(`${where}.sources[${j}].layer_range: [${from}, ${to}] goes past the ${numLayers} layers of ${models[j].id}`);
    }
  });
  const baseRef = sliceBase(recipe, slice);
  let base: ModelSource | undefined;
  if (method.base !== 'unused' && baseRef !== undefined) {
    const j = slice.sources.findIndex((s) => s.model === baseRef);
    if (j < 0) {
      throw new SlicesPlanError(
        `${where}: the base model "${baseRef}" is not one of the slice's sources (a slice merges only its sources: add the base with the same number of layers)`,
      );
    }
    base = models[j];
  }
  if (method.base === 'required' && !base) throw new SlicesPlanError(`${where}: ${method.name} needs a base_model`);
  return {
    slice,
    index: si,
    models,
    base,
    recipe: {
      mergeMethod: recipe.mergeMethod,
      models: slice.sources.map((s) => ({ model: s.model, parameters: s.parameters })),
      ...(baseRef !== undefined ? { baseModel: baseRef } : {}),
      parameters: recipe.parameters,
      ...(recipe.dtype !== undefined ? { dtype: recipe.dtype } : {}),
      ...(recipe.outDtype !== undefined ? { outDtype: recipe.outDtype } : {}),
    },
  };
}

/** One output tensor read as `names[j]` from each of the slice's models; shapes checked. */
function plannedTensor(
  name: string,
  names: string[],
  view: SliceView,
  position: number,
  outDtypeOf: (info: TensorInfo) => TensorInfo['dtype'],
  notes: string[],
  vocabRebuilt: boolean,
): SlicedTensor {
  const infos = view.models.map((m, j) => {
    const info = m.tensors.get(names[j]);
    if (!info) throw new SlicesPlanError(`slices[${view.index}]: tensor ${names[j]} is missing from model ${m.id} (needed for output ${name})`);
    return info;
  });
  // Vocabulary tables of different sizes are cut to the base's rows (else the first source's), as planMerge does.
  const refIndex = view.base ? view.models.indexOf(view.base) : 0;
  const ref = infos[refIndex];
  const merged = isFloatDType(ref.dtype);
  let rows: number | undefined;
  infos.forEach((info, j) => {
    if (j === refIndex || sameShape(info.shape, ref.shape) || (vocabRebuilt && isEmbeddingName(name))) return;
    if (merged && !isFloatDType(info.dtype)) throw new SlicesPlanError(`tensor ${names[j]}: ${view.models[j].id} stores ${info.dtype}, ${view.models[refIndex].id} stores ${ref.dtype}`);
    const cut = isEmbeddingName(name) && info.shape.length === ref.shape.length && sameShape(info.shape.slice(1), ref.shape.slice(1)) && info.shape[0] > ref.shape[0];
    if (!cut) {
      throw new SlicesPlanError(`tensor ${names[j]}: shape [${info.shape}] in ${view.models[j].id} does not match [${ref.shape}] of ${names[refIndex]} in ${view.models[refIndex].id}`);
    }
    rows = ref.shape[0];
    notes.push(`${name}: ${view.models[j].id} has ${info.shape[0]} rows; using the first ${ref.shape[0]}`);
  });
  return {
    name,
    shape: [...ref.shape],
    outDtype: outDtypeOf(ref),
    merged,
    ...(rows !== undefined ? { rows } : {}),
    inputs: {
      recipe: view.recipe,
      slice: { position, sliceParameters: view.slice.parameters, modelTensorNames: names, sliceKeys: ['slices', view.index] },
      models: view.models,
      tensors: names,
      base: view.base,
    },
  };
}

function layerIndex(m: ModelSource): LayerIndex {
  const byLayer = new Map<number, TensorInfo[]>();
  const outside: TensorInfo[] = [];
  for (const info of m.tensors.values()) {
    const k = layerIndexOf(info.name);
    if (k === undefined) outside.push(info);
    else byLayer.set(k, [...(byLayer.get(k) ?? []), info]);
  }
  return { byLayer, outside, numLayers: numLayersOf(m.config, m.tensors.keys()) };
}

/** `name` (a tensor of layer `from`) with its layer index replaced by `to`. */
function renumbered(name: string, from: number, to: number): string {
  return name.replace(new RegExp(`(^|\\.)layers\\.${from}\\.`), `$1layers.${to}.`);
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/** config.json keys that give the layer count (as numLayersOf reads them). */
const LAYER_COUNT_KEYS = ['num_hidden_layers', 'n_layer', 'num_layers'];

/** `config` with every layer-count key it has (top level or text_config) set to `numLayers`. */
export function withLayerCount(config: Record<string, unknown> | null, numLayers: number): Record<string, unknown> | null {
  if (!config) return null;
  const out: Record<string, unknown> = { ...config };
  let set = false;
  for (const key of LAYER_COUNT_KEYS) {
    if (typeof out[key] === 'number') {
      out[key] = numLayers;
      set = true;
    }
  }
  const text = out.text_config;
  if (typeof text === 'object' && text !== null) {
    const t: Record<string, unknown> = { ...(text as Record<string, unknown>) };
    for (const key of LAYER_COUNT_KEYS) {
      if (typeof t[key] === 'number') {
        t[key] = numLayers;
        set = true;
      }
    }
    out.text_config = t;
  }
  if (!set) out.num_hidden_layers = numLayers;
  return out;
}
