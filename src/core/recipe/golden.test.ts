/**
 * Every golden case's recipe.yml (tests/fixtures/golden) parses to the Recipe written out by hand
 * below, validates against the real method registry, and round-trips through recipeToYaml.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { methodLookup } from '../../gpu/methods/index.ts';
import { fakeMethods } from './fake-methods.testutil.ts';
import { parseRecipe } from './parse.ts';
import type { Recipe } from './types.ts';
import { recipeToYaml } from './write.ts';

const CASES_DIR = new URL('../../../tests/fixtures/golden/cases/', import.meta.url);

const bf16 = (name: string) => `../../models/llama-bf16/${name}`;
const f32 = (name: string) => `../../models/llama-f32/${name}`;

const EXPECTED: Record<string, Recipe> = {
  'p-iso-c': {
    mergeMethod: 'iso_c',
    models: [
      { model: f32('expert1'), parameters: {} },
      { model: f32('expert2'), parameters: {} },
      { model: f32('expert3'), parameters: {} },
    ],
    baseModel: f32('base'),
    parameters: {},
  },
  'p-iso-cts': {
    mergeMethod: 'iso_cts',
    models: [
      { model: f32('expert1'), parameters: {} },
      { model: f32('expert2'), parameters: {} },
      { model: f32('expert3'), parameters: {} },
    ],
    baseModel: f32('base'),
    parameters: {},
  },
  'p-lines': {
    mergeMethod: 'lines',
    models: [
      { model: f32('expert1'), parameters: {} },
      { model: f32('expert2'), parameters: {} },
      { model: f32('expert3'), parameters: {} },
    ],
    baseModel: f32('base'),
    parameters: { beta: 0.6 },
  },
  'p-lines-alpha': {
    mergeMethod: 'lines',
    models: [
      { model: f32('expert1'), parameters: { weight: 1 } },
      { model: f32('expert2'), parameters: { weight: 0.7 } },
      { model: f32('expert3'), parameters: { weight: 0.5 } },
    ],
    baseModel: f32('base'),
    parameters: { alpha: 0.4, beta: 0.5 },
  },
  'p-pcb': {
    mergeMethod: 'pcb',
    models: [
      { model: f32('expert1'), parameters: {} },
      { model: f32('expert2'), parameters: {} },
      { model: f32('expert3'), parameters: {} },
    ],
    baseModel: f32('base'),
    parameters: { density: 0.3 },
  },
  'p-tsv': {
    mergeMethod: 'tsv',
    models: [
      { model: f32('expert1'), parameters: {} },
      { model: f32('expert2'), parameters: {} },
      { model: f32('expert3'), parameters: {} },
    ],
    baseModel: f32('base'),
    parameters: {},
  },
  'p-widen': {
    mergeMethod: 'widen',
    models: [
      { model: f32('expert1'), parameters: {} },
      { model: f32('expert2'), parameters: {} },
      { model: f32('expert3'), parameters: {} },
    ],
    baseModel: f32('base'),
    parameters: { above_average_value_ratio: 1.1 },
  },
  'arcee-fusion': {
    mergeMethod: 'arcee_fusion',
    models: [
      { model: f32('base'), parameters: {} },
      { model: f32('expert1'), parameters: {} },
    ],
    baseModel: f32('base'),
    parameters: {},
  },
  ram: {
    mergeMethod: 'ram',
    models: [
      { model: f32('expert1'), parameters: {} },
      { model: f32('expert2'), parameters: {} },
      { model: f32('expert3'), parameters: {} },
    ],
    baseModel: f32('base'),
    parameters: { epsilon: 0.003 },
  },
  'ramplus-tl': {
    mergeMethod: 'ramplus_tl',
    models: [
      { model: f32('expert1'), parameters: {} },
      { model: f32('expert2'), parameters: {} },
      { model: f32('expert3'), parameters: {} },
    ],
    baseModel: f32('base'),
    parameters: { epsilon: 0.01 },
  },
  'slices-passthrough': {
    mergeMethod: 'passthrough',
    models: [],
    slices: [
      { sources: [{ model: f32('expert1'), layerRange: [0, 3], parameters: {} }], parameters: {} },
      { sources: [{ model: f32('expert2'), layerRange: [1, 4], parameters: {} }], parameters: {} },
    ],
    parameters: {},
  },
  'slices-slerp': {
    mergeMethod: 'slerp',
    models: [],
    slices: [
      {
        sources: [
          { model: f32('expert1'), layerRange: [0, 4], parameters: {} },
          { model: f32('expert2'), layerRange: [0, 4], parameters: {} },
        ],
        parameters: {},
      },
      {
        sources: [
          { model: f32('expert1'), layerRange: [1, 3], parameters: {} },
          { model: f32('expert2'), layerRange: [1, 3], parameters: {} },
        ],
        parameters: {},
      },
    ],
    baseModel: f32('expert1'),
    parameters: { t: [0, 0.5, 1] },
  },
  sce: {
    mergeMethod: 'sce',
    models: [
      { model: f32('expert1'), parameters: {} },
      { model: f32('expert2'), parameters: {} },
      { model: f32('expert3'), parameters: {} },
    ],
    baseModel: f32('base'),
    parameters: { select_topk: 0.5 },
  },
  'breadcrumbs-ties-f32': {
    mergeMethod: 'breadcrumbs_ties',
    models: [
      { model: f32('expert1'), parameters: { weight: 1, density: 0.6, gamma: 0.02 } },
      { model: f32('expert2'), parameters: { weight: 0.5, density: 0.5, gamma: 0.05 } },
      { model: f32('expert3'), parameters: { weight: 0.5, density: 0.8, gamma: 0.01 } },
    ],
    baseModel: f32('base'),
    parameters: {},
  },
  'dare-ties-f32': {
    mergeMethod: 'dare_ties',
    models: [
      { model: f32('expert1'), parameters: { weight: 1, density: 0.3 } },
      { model: f32('expert2'), parameters: { weight: 0.8, density: 0.5 } },
      { model: f32('expert3'), parameters: { weight: 0.6, density: 0.7 } },
    ],
    baseModel: f32('base'),
    parameters: {},
  },
  'della-f32': {
    mergeMethod: 'della',
    models: [
      { model: f32('expert1'), parameters: { weight: 1, density: 0.4 } },
      { model: f32('expert2'), parameters: { weight: 1, density: 0.6 } },
    ],
    baseModel: f32('base'),
    parameters: { epsilon: 0.1 },
  },
  'linear-gradient-filter': {
    mergeMethod: 'linear',
    models: [
      { model: bf16('expert1'), parameters: { weight: [{ filter: 'self_attn', value: [1, 0.2] }, { value: 0.5 }] } },
      { model: bf16('expert2'), parameters: { weight: 0.5 } },
    ],
    parameters: {},
    dtype: 'F32',
    outDtype: 'BF16',
  },
  linear: {
    mergeMethod: 'linear',
    models: [
      { model: bf16('expert1'), parameters: { weight: 0.5 } },
      { model: bf16('expert2'), parameters: { weight: 0.3 } },
      { model: bf16('expert3'), parameters: { weight: 0.2 } },
    ],
    parameters: {},
    dtype: 'F32',
    outDtype: 'BF16',
  },
  'model-stock': {
    mergeMethod: 'model_stock',
    models: [
      { model: bf16('expert1'), parameters: {} },
      { model: bf16('expert2'), parameters: {} },
      { model: bf16('expert3'), parameters: {} },
    ],
    baseModel: bf16('base'),
    parameters: {},
    dtype: 'F32',
    outDtype: 'BF16',
  },
  nuslerp: {
    mergeMethod: 'nuslerp',
    models: [
      { model: bf16('expert1'), parameters: { weight: 0.7 } },
      { model: bf16('expert2'), parameters: { weight: 0.3 } },
    ],
    baseModel: bf16('base'),
    parameters: {},
    dtype: 'F32',
    outDtype: 'BF16',
  },
  'slerp-gradient': {
    mergeMethod: 'slerp',
    models: [
      { model: bf16('base'), parameters: {} },
      { model: bf16('expert1'), parameters: {} },
    ],
    baseModel: bf16('base'),
    parameters: {
      t: [
        { filter: 'self_attn', value: [0, 0.5, 0.3, 0.7, 1] },
        { filter: 'mlp', value: [1, 0.5, 0.7, 0.3, 0] },
        { value: 0.5 },
      ],
    },
    dtype: 'F32',
    outDtype: 'BF16',
  },
  'task-arithmetic-native-bf16': {
    mergeMethod: 'task_arithmetic',
    models: [
      { model: bf16('expert1'), parameters: { weight: 0.5 } },
      { model: bf16('expert2'), parameters: { weight: 0.5 } },
    ],
    baseModel: bf16('base'),
    parameters: {},
  },
  'task-arithmetic': {
    mergeMethod: 'task_arithmetic',
    models: [
      { model: bf16('expert1'), parameters: { weight: 1 } },
      { model: bf16('expert2'), parameters: { weight: 0.7 } },
      { model: bf16('expert3'), parameters: { weight: [0.2, 0.9] } },
    ],
    baseModel: bf16('base'),
    parameters: { lambda: 0.8 },
    dtype: 'F32',
    outDtype: 'BF16',
  },
  'ties-f32': {
    mergeMethod: 'ties',
    models: [
      { model: f32('expert1'), parameters: { weight: 1, density: 0.5 } },
      { model: f32('expert2'), parameters: { weight: 0.5, density: [1, 0.7, 0.1] } },
      { model: f32('expert3'), parameters: { weight: 0.8, density: 0.33 } },
    ],
    baseModel: f32('base'),
    parameters: { normalize: true },
  },
  'ties-nonorm-f32': {
    mergeMethod: 'ties',
    models: [
      { model: f32('expert1'), parameters: { weight: 0.6, density: 0.2 } },
      { model: f32('expert2'), parameters: { weight: 0.6, density: 0.4 } },
    ],
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
