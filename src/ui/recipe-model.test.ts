import { describe, expect, it } from 'vitest';
import type { ParamSpec } from '../core/params.ts';
import { METHODS } from '../gpu/methods/index.ts';
import type { ParamValue, Recipe } from '../core/recipe/types.ts';
import {
  adaptRecipeToMethod,
  convertValue,
  didYouMean,
  readRecipeText,
  unmatchedFilters,
  findMethod,
  firstNumber,
  initialValue,
  recipeProblem,
  sliderRange,
  sliderStep,
  startingModelParams,
  valueMode,
} from './recipe-model.ts';

const num = (over: Partial<ParamSpec>): ParamSpec => ({ name: 'x', kind: 'number', help: '', ...over });

describe('form values from parameter schemas', () => {
  it('sliders use the soft range, then the hard range, then [0, 1]', () => {
    expect(sliderRange(num({ min: 0, max: 1, softMax: 0.1 }))).toEqual({ min: 0, max: 0.1 });
    expect(sliderRange(num({ min: -2, max: 5 }))).toEqual({ min: -2, max: 5 });
    expect(sliderRange(num({}))).toEqual({ min: 0, max: 1 });
    expect(sliderRange(num({ min: 3 }))).toEqual({ min: 3, max: 4 });
  });

  it('steps are a power of ten about 1/100 of the range; integers step by 1', () => {
    expect(sliderStep(num({ min: 0, max: 1 }))).toBe(0.01);
    expect(sliderStep(num({ softMin: -1, softMax: 1 }))).toBe(0.01);
    expect(sliderStep(num({ min: 0, softMax: 0.01 }))).toBe(0.0001);
    expect(sliderStep(num({ kind: 'integer', min: 1, softMax: 100 }))).toBe(1);
  });

  it('starting values: the default, else 1 per model / the middle for a global, inside the slider', () => {
    expect(initialValue(num({ default: 0.3 }), 'model')).toBe(0.3);
    expect(initialValue(num({ required: true, softMin: -1, softMax: 1 }), 'model')).toBe(1);
    expect(initialValue(num({ required: true, softMin: 0, softMax: 0.5 }), 'model')).toBe(0.5);
    expect(initialValue(num({ required: true, softMin: 0, softMax: 1 }), 'global')).toBe(0.5);
    expect(initialValue({ name: 'b', kind: 'boolean', help: '' }, 'global')).toBe(false);
    expect(initialValue({ name: 'e', kind: 'enum', help: '', options: ['l1', 'density'] }, 'global')).toBe('l1');
  });

  it('every method’s starting parameters pass the recipe validator', () => {
    for (const method of METHODS) {
      const recipe = adaptRecipeToMethod({ mergeMethod: 'linear', models: [{ model: 'org/a', parameters: {} }, { model: 'org/b', parameters: {} }], baseModel: 'org/base', parameters: {} }, method);
      const problem = recipeProblem(recipe);
      // Only the model count may be off (passthrough takes one model); never a parameter.
      if (problem) expect(problem.path, `${method.name}: ${problem.message}`).toBe('models');
    }
  });
});

describe('switching method', () => {
  it('keeps shared per-model parameters and drops the rest, also from the all-models values', () => {
    const ties = findMethod('ties')!;
    const recipe = adaptRecipeToMethod(
      { mergeMethod: 'della', models: [{ model: 'a', parameters: { weight: 0.5, density: 0.4, epsilon: 0.1 } }], baseModel: 'b', parameters: { epsilon: 0.2, lambda: 0.7 } },
      ties,
    );
    expect(recipe).toEqual({ mergeMethod: 'ties', models: [{ model: 'a', parameters: { weight: 0.5, density: 0.4 } }], baseModel: 'b', parameters: { lambda: 0.7 } });
  });

  it('the base listed among the models gets no required parameters', () => {
    const linear = findMethod('linear')!;
    const recipe = adaptRecipeToMethod({ mergeMethod: 'slerp', models: [{ model: 'b', parameters: {} }, { model: 'a', parameters: {} }], baseModel: 'b', parameters: { t: 0.3 } }, linear);
    expect(recipe.models).toEqual([
      { model: 'b', parameters: {} },
      { model: 'a', parameters: { weight: 1 } },
    ]);
    expect(startingModelParams(linear)).toEqual({ weight: 1 });
  });
});

describe('value modes', () => {
  it('tells scalars, curves and rules apart', () => {
    expect(valueMode(0.5)).toBe('scalar');
    expect(valueMode(undefined)).toBe('scalar');
    expect(valueMode([1, 0.5])).toBe('curve');
    expect(valueMode([{ filter: 'mlp', value: 1 }])).toBe('rules');
  });

  it('converts between modes keeping the value', () => {
    expect(convertValue(0.4, 'curve', 1, 4)).toEqual([0.4, 0.4, 0.4, 0.4]);
    expect(convertValue(0.4, 'curve', 1, 32)).toHaveLength(5);
    expect(convertValue(0.4, 'curve', 1, null)).toEqual([0.4, 0.4, 0.4]);
    expect(convertValue([0.2, 0.8], 'scalar', 1, 4)).toBe(0.2);
    expect(convertValue([0.2, 0.8], 'rules', 1, 4)).toEqual([
      { filter: 'self_attn', value: [0.2, 0.8] },
      { filter: 'mlp', value: [0.2, 0.8] },
      { value: 0.2 },
    ]);
    expect(convertValue(undefined, 'scalar', 0.7, 4)).toBe(0.7);
    expect(firstNumber([{ filter: 'mlp', value: [0.3, 1] }], 9)).toBe(0.3);
  });
});

describe('recipe problems in words', () => {
  it('names a missing base, too few or too many models, and schema problems', () => {
    expect(recipeProblem({ mergeMethod: 'ties', models: [{ model: 'a', parameters: { weight: 1 } }], parameters: {} })?.message).toMatch(/TIES needs a base model/);
    expect(recipeProblem({ mergeMethod: 'ties', models: [], parameters: {} })?.message).toMatch(/no models/);
    expect(
      recipeProblem({ mergeMethod: 'slerp', baseModel: 'b', models: ['a', 'c', 'd'].map((model) => ({ model, parameters: {} })), parameters: { t: 0.5 } })?.message,
    ).toMatch(/SLERP takes at most 2 models/);
    expect(recipeProblem({ mergeMethod: 'ties', baseModel: 'b', models: [{ model: 'a', parameters: { weight: 1, density: 3 } }], parameters: {} })).toEqual({
      message: expect.stringMatching(/models\[0\]\.parameters\.density: .*3.*range/),
      path: 'models[0].parameters.density',
    });
    expect(recipeProblem({ mergeMethod: 'ties', baseModel: 'b', models: [{ model: 'a', parameters: { weight: 1 } }], parameters: {} })).toBeNull();
  });
});

describe('recipe text in the studio', () => {
  it('did you mean: typos within about a third of the letters, transpositions count once', () => {
    expect(didYouMean('desnity', ['weight', 'density'])).toBe('density');
    expect(didYouMean('normalise', ['normalize', 'lambda'])).toBe('normalize');
    expect(didYouMean('gamma', ['weight', 'density'])).toBeNull();
  });

  it('an unknown parameter is an error with its line and the likely name', () => {
    const read = readRecipeText('models:\n  - model: a\n    parameters: {weight: 1, desnity: 0.5}\nmerge_method: ties\nbase_model: b\n', 'recipe.yml');
    expect(read).toEqual({ error: { message: expect.stringContaining('unknown parameter "desnity"'), line: 3, suggestion: 'density' } });
    const method = readRecipeText('models:\n  - model: a\n    parameters: {weight: 1}\nmerge_method: tie\nbase_model: b\n', 'recipe.yml');
    expect('error' in method && method.error.suggestion).toBe('ties');
  });

  it('a key the studio does not support yet is a warning naming it; the rest is read', () => {
    const read = readRecipeText('models:\n  - model: a\n    parameters: {weight: 1}\nmerge_method: linear\nmodules: {text_decoder: {}}\n', 'recipe.yml');
    expect('recipe' in read && read.recipe.mergeMethod).toBe('linear');
    expect('warnings' in read && read.warnings).toEqual([
      'recipe.yml: modules: not supported yet (per-module merges): list whole models under models, or layers under slices (line 5): left out',
    ]);
  });

  it('a filter that is part of no tensor name is a warning naming it and its place', () => {
    const recipe = recipeOf({ weight: [{ filter: 'self_atn', value: 0.5 }, { filter: 'mlp', value: 1 }, { value: 1 }] });
    const names = ['model.layers.0.self_attn.q_proj.weight', 'model.layers.0.mlp.up_proj.weight'];
    expect(unmatchedFilters(recipe, names, './demo/base')).toEqual([
      'models[0].parameters.weight: the filter "self_atn" matches no tensor of ./demo/base; did you mean "self_attn"?',
    ]);
    expect(unmatchedFilters(recipe, [], './demo/base')).toEqual([]);
  });
});

function recipeOf(params: Record<string, ParamValue>): Recipe {
  return { mergeMethod: 'linear', models: [{ model: 'a', parameters: params }], parameters: {} };
}
