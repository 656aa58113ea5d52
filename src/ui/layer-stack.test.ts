import { describe, expect, it } from 'vitest';
import { parseRecipe } from '../core/recipe/parse.ts';
import type { Recipe } from '../core/recipe/types.ts';
import { recipeToYaml } from '../core/recipe/write.ts';
import { methodLookup } from '../gpu/methods/index.ts';
import {
  addSlice,
  addSource,
  asModelsRecipe,
  asSlices,
  duplicateSlice,
  moveSlice,
  removeSlice,
  setSliceSize,
  setSourceModel,
  setSourceStart,
  stackRows,
  withSlices,
} from './layer-stack.ts';

const layers: Record<string, number> = { a: 8, b: 8, c: 6 };
const layersOf = (ref: string) => layers[ref] ?? null;
const slice = (model: string, from: number, to: number) => ({ sources: [{ model, layerRange: [from, to] as [number, number], parameters: {} }], parameters: {} });
const FRANKEN: Recipe = { mergeMethod: 'passthrough', models: [], slices: [slice('a', 0, 4), slice('b', 2, 6)], parameters: {} };

describe('the layer stack', () => {
  it('lists output layers top to bottom with the model and layer that feed each', () => {
    const rows = stackRows(addSource(FRANKEN.slices!, 1, 'c'));
    expect(rows).toHaveLength(8);
    expect(rows[0]).toEqual({ output: 0, slice: 0, indexInSlice: 0, sources: [{ model: 'a', layer: 0 }] });
    expect(rows[5]).toEqual({ output: 5, slice: 1, indexInSlice: 1, sources: [{ model: 'b', layer: 3 }, { model: 'c', layer: 3 }] });
  });

  it('reorders, duplicates (a repeated block) and removes slices', () => {
    const s = FRANKEN.slices!;
    expect(moveSlice(s, 1, 0).map((x) => x.sources[0].model)).toEqual(['b', 'a']);
    expect(moveSlice(s, 0, 5).map((x) => x.sources[0].model)).toEqual(['b', 'a']);
    const twice = duplicateSlice(s, 0);
    expect(twice.map((x) => x.sources[0].layerRange)).toEqual([[0, 4], [0, 4], [2, 6]]);
    twice[1].sources[0].layerRange[0] = 1;
    expect(s[0].sources[0].layerRange).toEqual([0, 4]); // a copy, not the same object
    expect(removeSlice(s, 0).map((x) => x.sources[0].model)).toEqual(['b']);
    expect(addSlice(s, 'c', 1, 3).at(-1)).toEqual(slice('c', 1, 3));
  });

  it('keeps every source of a slice the same length and inside its model', () => {
    const s = addSource(FRANKEN.slices!, 1, 'c'); // slice 1: b 2..6, c 2..6
    expect(setSliceSize(s, 1, 10, layersOf)[1].sources.map((x) => x.layerRange)).toEqual([[2, 6], [2, 6]]); // c has 6 layers
    expect(setSliceSize(s, 1, 3, layersOf)[1].sources.map((x) => x.layerRange)).toEqual([[2, 5], [2, 5]]);
    expect(setSourceStart(s, 1, 0, 7, layersOf)[1].sources[0].layerRange).toEqual([4, 8]); // 4 layers end at b's last
    expect(setSourceModel(s, 1, 0, 'c', layersOf)[1].sources[0]).toMatchObject({ model: 'c', layerRange: [2, 6] });
  });

  it('reads a models recipe as one slice over all layers (the base added) and back', () => {
    const models: Recipe = {
      mergeMethod: 'ties',
      models: [
        { model: 'a', parameters: { weight: 1, density: 0.5 } },
        { model: 'b', parameters: { weight: 0.5 } },
      ],
      baseModel: 'base',
      parameters: { normalize: true },
    };
    expect(asSlices(models, layersOf)).toBeNull(); // the base's layer count is unknown
    layers.base = 8;
    const slices = asSlices(models, layersOf)!;
    expect(slices[0].sources.map((s) => [s.model, s.layerRange, s.parameters])).toEqual([
      ['a', [0, 8], { weight: 1, density: 0.5 }],
      ['b', [0, 8], { weight: 0.5 }],
      ['base', [0, 8], {}],
    ]);
    expect(asModelsRecipe(withSlices(models, slices), layersOf)).toEqual(models);
    expect(asModelsRecipe(withSlices(models, setSliceSize(slices, 0, 4, layersOf)), layersOf)).toBeNull();
    delete layers.base;
  });

  it('round-trips through the YAML the editor writes', () => {
    const edited = withSlices(FRANKEN, duplicateSlice(moveSlice(FRANKEN.slices!, 1, 0), 1));
    const yaml = recipeToYaml(edited);
    expect(parseRecipe(yaml, methodLookup)).toEqual(edited);
    expect(yaml).toContain('layer_range: [2, 6]');
  });
});
