/**
 * The layer-stack editor's model (pure): a recipe's `slices:` as a vertical stack of output layers,
 * each fed by one layer of each source of its slice, and the edits the editor makes on it. Every
 * edit returns new slices; the component writes them back as YAML, so the stack and the recipe text
 * are the same thing.
 */
import type { Recipe, RecipeSlice, RecipeSliceSource } from '../core/recipe/types.ts';

export interface StackRow {
  /** Output layer index. */
  output: number;
  /** The slice it belongs to, and its place in it. */
  slice: number;
  indexInSlice: number;
  /** The input layer each source gives it. */
  sources: { model: string; layer: number }[];
}

/** One row per output layer, top (layer 0) first. */
export function stackRows(slices: readonly RecipeSlice[]): StackRow[] {
  const rows: StackRow[] = [];
  slices.forEach((slice, s) => {
    const n = sliceSize(slice);
    for (let i = 0; i < n; i++) {
      rows.push({ output: rows.length, slice: s, indexInSlice: i, sources: slice.sources.map((src) => ({ model: src.model, layer: src.layerRange[0] + i })) });
    }
  });
  return rows;
}

/** Layers a slice gives (its first source's range). */
export function sliceSize(slice: RecipeSlice): number {
  const [from, to] = slice.sources[0]?.layerRange ?? [0, 0];
  return Math.max(0, to - from);
}

/**
 * A `models:` recipe as one slice (mergekit's own reading of it): every model over all its layers,
 * the base added when it is not listed. Null when a layer count is unknown or they differ.
 */
export function asSlices(recipe: Recipe, layersOf: (ref: string) => number | null): RecipeSlice[] | null {
  if (recipe.slices) return recipe.slices;
  const refs = recipe.models.map((m) => m.model);
  if (recipe.baseModel !== undefined && !refs.includes(recipe.baseModel)) refs.push(recipe.baseModel);
  if (refs.length === 0) return null;
  const counts = refs.map(layersOf);
  if (counts.some((c) => c === null || c < 1) || new Set(counts).size !== 1) return null;
  const n = counts[0]!;
  return [
    {
      sources: refs.map((model) => ({ model, layerRange: [0, n] as [number, number], parameters: recipe.models.find((m) => m.model === model)?.parameters ?? {} })),
      parameters: {},
    },
  ];
}

/**
 * The slices as a `models:` recipe again, when that says the same: one slice, no slice base or
 * parameters, every source over all of its layers. Null otherwise.
 */
export function asModelsRecipe(recipe: Recipe, layersOf: (ref: string) => number | null): Recipe | null {
  const slices = recipe.slices;
  if (!slices || slices.length !== 1) return null;
  const [slice] = slices;
  if (slice.baseModel !== undefined || Object.keys(slice.parameters).length > 0) return null;
  if (!slice.sources.every((s) => s.layerRange[0] === 0 && layersOf(s.model) === s.layerRange[1])) return null;
  const { slices: _slices, ...rest } = recipe;
  // The base needs no entry of its own unless it carries parameters.
  const models = slice.sources.filter((s) => s.model !== recipe.baseModel || Object.keys(s.parameters).length > 0).map((s) => ({ model: s.model, parameters: s.parameters }));
  return { ...rest, models };
}

/** The recipe with these slices (and no models list). */
export function withSlices(recipe: Recipe, slices: RecipeSlice[]): Recipe {
  return { ...recipe, models: [], slices };
}

/** Slice `from` moved to position `to` (the others keep their order). */
export function moveSlice(slices: readonly RecipeSlice[], from: number, to: number): RecipeSlice[] {
  const out = [...slices];
  const clamped = Math.max(0, Math.min(out.length - 1, to));
  if (from < 0 || from >= out.length || clamped === from) return out;
  const [moved] = out.splice(from, 1);
  out.splice(clamped, 0, moved);
  return out;
}

/** A copy of slice `i` right after it (the same layers again: a repeated block). */
export function duplicateSlice(slices: readonly RecipeSlice[], i: number): RecipeSlice[] {
  if (i < 0 || i >= slices.length) return [...slices];
  return [...slices.slice(0, i + 1), structuredClone(slices[i]), ...slices.slice(i + 1)];
}

export function removeSlice(slices: readonly RecipeSlice[], i: number): RecipeSlice[] {
  return slices.filter((_, k) => k !== i);
}

/** A new one-source slice at the end. */
export function addSlice(slices: readonly RecipeSlice[], model: string, from: number, to: number): RecipeSlice[] {
  return [...slices, { sources: [{ model, layerRange: [from, to], parameters: {} }], parameters: {} }];
}

/**
 * Source j of slice i starting at `from` (its length kept); `count` layers for every source of the
 * slice (all sources of a slice give the same number). Each source stays inside its model when its
 * layer count is known.
 */
export function setSourceStart(slices: readonly RecipeSlice[], i: number, j: number, from: number, layersOf: (ref: string) => number | null): RecipeSlice[] {
  return editSlice(slices, i, (slice) => {
    const n = sliceSize(slice);
    const sources = slice.sources.map((s, k) => {
      if (k !== j) return s;
      const max = layersOf(s.model);
      const start = Math.max(0, Math.min(from, max === null ? from : max - n));
      return { ...s, layerRange: [start, start + n] as [number, number] };
    });
    return { ...slice, sources };
  });
}

export function setSliceSize(slices: readonly RecipeSlice[], i: number, count: number, layersOf: (ref: string) => number | null): RecipeSlice[] {
  return editSlice(slices, i, (slice) => {
    // The most layers every source can give from where it starts.
    const room = Math.min(...slice.sources.map((s) => (layersOf(s.model) ?? Infinity) - s.layerRange[0]));
    const n = Math.max(1, Math.min(count, room));
    return { ...slice, sources: slice.sources.map((s) => ({ ...s, layerRange: [s.layerRange[0], s.layerRange[0] + n] as [number, number] })) };
  });
}

export function setSourceModel(slices: readonly RecipeSlice[], i: number, j: number, model: string, layersOf: (ref: string) => number | null): RecipeSlice[] {
  const next = editSlice(slices, i, (slice) => ({ ...slice, sources: slice.sources.map((s, k) => (k === j ? { ...s, model } : s)) }));
  // Keep the source inside its new model.
  const s = next[i].sources[j];
  return setSourceStart(next, i, j, s.layerRange[0], layersOf);
}

/** Another model merged into slice i, over the same layers as its first source. */
export function addSource(slices: readonly RecipeSlice[], i: number, model: string): RecipeSlice[] {
  return editSlice(slices, i, (slice) => {
    const source: RecipeSliceSource = { model, layerRange: [...slice.sources[0].layerRange] as [number, number], parameters: {} };
    return { ...slice, sources: [...slice.sources, source] };
  });
}

export function removeSource(slices: readonly RecipeSlice[], i: number, j: number): RecipeSlice[] {
  return editSlice(slices, i, (slice) => (slice.sources.length > 1 ? { ...slice, sources: slice.sources.filter((_, k) => k !== j) } : slice));
}

function editSlice(slices: readonly RecipeSlice[], i: number, edit: (s: RecipeSlice) => RecipeSlice): RecipeSlice[] {
  return slices.map((s, k) => (k === i ? edit(s) : s));
}

/** "layers 3–5" / "layer 3". */
export function layerSpan(from: number, to: number): string {
  return to - from === 1 ? `layer ${from}` : `layers ${from}–${to - 1}`;
}
