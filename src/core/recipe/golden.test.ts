/**
 * Every golden case's recipe.yml (tests/fixtures/golden) parses to the Recipe written out by hand
 * below, validates against the real method registry, and round-trips through recipeToYaml.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { methodLookup } from '../../gpu/methods/index.ts';
import { fakeMethods } from './fake-methods.testutil.ts';
import { parseRecipe } from './parse.ts';
import type { Recipe, RecipeSliceSource } from './types.ts';
import { recipeToYaml } from './write.ts';

const CASES_DIR = new URL('../../../tests/fixtures/golden/cases/', import.meta.url);

type Params = Recipe['parameters'];
type ModelPath = (name: string) => string;

const bf16: ModelPath = (name) => `../../models/llama-bf16/${name}`;
const f32: ModelPath = (name) => `../../models/llama-f32/${name}`;

/** The named models at `at(name)`, in order, each with its own per-model parameters. */
function models(at: ModelPath, perModel: Record<string, Params>): Recipe['models'] {
  return Object.entries(perModel).map(([name, parameters]) => ({ model: at(name), parameters }));
}

/** `mergeMethod` over the f32 base: the three f32 experts, no per-model parameters (most papers' cases). */
function threeExperts(mergeMethod: string, parameters: Params = {}): Recipe {
  return { mergeMethod, models: models(f32, { expert1: {}, expert2: {}, expert3: {} }), baseModel: f32('base'), parameters };
}

/** Layers [from, to) of an f32 model as a slice source, without parameters of its own. */
function source(name: string, layerRange: [number, number]): RecipeSliceSource {
  return { model: f32(name), layerRange, parameters: {} };
}

/** mergekit's `dtype: float32` + `out_dtype: bfloat16`. */
const F32_OUT_BF16 = { dtype: 'F32', outDtype: 'BF16' } as const;

const EXPECTED: Record<string, Recipe> = {
  'p-iso-c': threeExperts('iso_c'),
  'p-iso-cts': threeExperts('iso_cts'),
  'p-lines': threeExperts('lines', { beta: 0.6 }),
  'p-lines-alpha': {
    mergeMethod: 'lines',
    models: models(f32, { expert1: { weight: 1 }, expert2: { weight: 0.7 }, expert3: { weight: 0.5 } }),
    baseModel: f32('base'),
    parameters: { alpha: 0.4, beta: 0.5 },
  },
  'p-pcb': threeExperts('pcb', { density: 0.3 }),
  'p-tsv': threeExperts('tsv'),
  'p-widen': threeExperts('widen', { above_average_value_ratio: 1.1 }),
  'arcee-fusion': {
    mergeMethod: 'arcee_fusion',
    models: models(f32, { base: {}, expert1: {} }),
    baseModel: f32('base'),
    parameters: {},
  },
  ram: threeExperts('ram', { epsilon: 0.003 }),
  'ramplus-tl': threeExperts('ramplus_tl', { epsilon: 0.01 }),
  'slices-passthrough': {
    mergeMethod: 'passthrough',
    models: [],
    slices: [
      { sources: [source('expert1', [0, 3])], parameters: {} },
      { sources: [source('expert2', [1, 4])], parameters: {} },
    ],
    parameters: {},
  },
  'slices-slerp': {
    mergeMethod: 'slerp',
    models: [],
    slices: [
      { sources: [source('expert1', [0, 4]), source('expert2', [0, 4])], parameters: {} },
      { sources: [source('expert1', [1, 3]), source('expert2', [1, 3])], parameters: {} },
    ],
    baseModel: f32('expert1'),
    parameters: { t: [0, 0.5, 1] },
  },
  sce: threeExperts('sce', { select_topk: 0.5 }),
  'breadcrumbs-ties-f32': {
    mergeMethod: 'breadcrumbs_ties',
    models: models(f32, {
      expert1: { weight: 1, density: 0.6, gamma: 0.02 },
      expert2: { weight: 0.5, density: 0.5, gamma: 0.05 },
      expert3: { weight: 0.5, density: 0.8, gamma: 0.01 },
    }),
    baseModel: f32('base'),
    parameters: {},
  },
  'dare-ties-f32': {
    mergeMethod: 'dare_ties',
    models: models(f32, {
      expert1: { weight: 1, density: 0.3 },
      expert2: { weight: 0.8, density: 0.5 },
      expert3: { weight: 0.6, density: 0.7 },
    }),
    baseModel: f32('base'),
    parameters: {},
  },
  'della-f32': {
    mergeMethod: 'della',
    models: models(f32, { expert1: { weight: 1, density: 0.4 }, expert2: { weight: 1, density: 0.6 } }),
    baseModel: f32('base'),
    parameters: { epsilon: 0.1 },
  },
  'linear-gradient-filter': {
    mergeMethod: 'linear',
    models: models(bf16, {
      expert1: { weight: [{ filter: 'self_attn', value: [1, 0.2] }, { value: 0.5 }] },
      expert2: { weight: 0.5 },
    }),
    parameters: {},
    ...F32_OUT_BF16,
  },
  linear: {
    mergeMethod: 'linear',
    models: models(bf16, { expert1: { weight: 0.5 }, expert2: { weight: 0.3 }, expert3: { weight: 0.2 } }),
    parameters: {},
    ...F32_OUT_BF16,
  },
  'model-stock': {
    mergeMethod: 'model_stock',
    models: models(bf16, { expert1: {}, expert2: {}, expert3: {} }),
    baseModel: bf16('base'),
    parameters: {},
    ...F32_OUT_BF16,
  },
  nuslerp: {
    mergeMethod: 'nuslerp',
    models: models(bf16, { expert1: { weight: 0.7 }, expert2: { weight: 0.3 } }),
    baseModel: bf16('base'),
    parameters: {},
    ...F32_OUT_BF16,
  },
  'slerp-gradient': {
    mergeMethod: 'slerp',
    models: models(bf16, { base: {}, expert1: {} }),
    baseModel: bf16('base'),
    parameters: {
      t: [
        { filter: 'self_attn', value: [0, 0.5, 0.3, 0.7, 1] },
        { filter: 'mlp', value: [1, 0.5, 0.7, 0.3, 0] },
        { value: 0.5 },
      ],
    },
    ...F32_OUT_BF16,
  },
  'task-arithmetic-native-bf16': {
    mergeMethod: 'task_arithmetic',
    models: models(bf16, { expert1: { weight: 0.5 }, expert2: { weight: 0.5 } }),
    baseModel: bf16('base'),
    parameters: {},
  },
  'task-arithmetic': {
    mergeMethod: 'task_arithmetic',
    models: models(bf16, { expert1: { weight: 1 }, expert2: { weight: 0.7 }, expert3: { weight: [0.2, 0.9] } }),
    baseModel: bf16('base'),
    parameters: { lambda: 0.8 },
    ...F32_OUT_BF16,
  },
  'ties-f32': {
    mergeMethod: 'ties',
    models: models(f32, {
      expert1: { weight: 1, density: 0.5 },
      expert2: { weight: 0.5, density: [1, 0.7, 0.1] },
      expert3: { weight: 0.8, density: 0.33 },
    }),
    baseModel: f32('base'),
    parameters: { normalize: true },
  },
  'ties-nonorm-f32': {
    mergeMethod: 'ties',
    models: models(f32, { expert1: { weight: 0.6, density: 0.2 }, expert2: { weight: 0.6, density: 0.4 } }),
    baseModel: f32('base'),
    parameters: { normalize: false, lambda: 1.2 },
  },
};

const caseNames = readdirSync(CASES_DIR, { withFileTypes: true })
  .filter((d) => d.isDirectory())
  .map((d) => d.name)
  .sort();

function recipeText(name: string): string {
  return readFileSync(new URL(`${name}/recipe.yml`, CASES_DIR), 'utf8');
}

describe('golden recipes', () => {
  it('has an expectation for every case', () => {
    expect(caseNames).toEqual(Object.keys(EXPECTED).sort());
  });

  describe.each(caseNames)('%s', (name) => {
    it('parses to the expected recipe', () => {
      expect(parseRecipe(recipeText(name), fakeMethods, { file: `${name}/recipe.yml` })).toEqual(EXPECTED[name]);
    });

    it('validates against the real method registry', () => {
      expect(parseRecipe(recipeText(name), methodLookup, { file: `${name}/recipe.yml` })).toEqual(EXPECTED[name]);
    });

    it('round-trips YAML → Recipe → YAML → Recipe', () => {
      const first = parseRecipe(recipeText(name), fakeMethods);
      const yaml = recipeToYaml(first);
      expect(parseRecipe(yaml, fakeMethods)).toEqual(first);
      // Writing is stable: the written text is a fixed point.
      expect(recipeToYaml(parseRecipe(yaml, fakeMethods))).toBe(yaml);
    });
  });
});
