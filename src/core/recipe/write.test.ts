import { describe, expect, it } from 'vitest';
import { fakeMethods } from './fake-methods.testutil.ts';
import { parseRecipe } from './parse.ts';
import type { Recipe } from './types.ts';
import { recipeToYaml } from './write.ts';

describe('recipeToYaml', () => {
  it('writes mergekit YAML: models first, snake_case keys, flow-style gradients', () => {
    const recipe: Recipe = {
      mergeMethod: 'ties',
      models: [
        { model: 'org/base', parameters: {} },
        { model: 'org/expert', parameters: { weight: 0.5, density: [1, 0.7, 0.1] } },
        {
          model: './local/expert2',
          parameters: { weight: [{ filter: 'self_attn', value: [1, 0.2] }, { value: 0.5 }] },
        },
      ],
      baseModel: 'org/base',
      parameters: { normalize: true, lambda: 0.8 },
      dtype: 'F32',
      outDtype: 'BF16',
    };
    expect(recipeToYaml(recipe)).toBe(
      [
        'models:',
        '  - model: org/base',
        '  - model: org/expert',
        '    parameters:',
        '      weight: 0.5',
        '      density: [1, 0.7, 0.1]',
        '  - model: ./local/expert2',
        '    parameters:',
        '      weight:',
        '        - filter: self_attn',
        '          value: [1, 0.2]',
        '        - value: 0.5',
        'merge_method: ties',
        'base_model: org/base',
        'parameters:',
        '  normalize: true',
        '  lambda: 0.8',
        'dtype: float32',
        'out_dtype: bfloat16',
        '',
      ].join('\n'),
    );
  });

  it('puts merge_method before base_model and leaves absent keys out', () => {
    const yaml = recipeToYaml({ mergeMethod: 'linear', models: [{ model: 'a', parameters: { weight: 1 } }], parameters: {} });
    expect(yaml).toBe('models:\n  - model: a\n    parameters:\n      weight: 1\nmerge_method: linear\n');
  });

  it('writes text PyYAML (YAML 1.1, used by mergekit) reads the same way', () => {
    const yaml = recipeToYaml({
      mergeMethod: 'dare_ties',
      // "yes"/"on" are booleans to PyYAML and "1_000" a number: they must be quoted.
      models: [
        { model: 'yes', parameters: { weight: 1e-7 } },
        { model: 'on', parameters: { weight: 2.5e-10 } },
        { model: '1_000', parameters: { weight: [1e21, -3e-8] } },
      ],
      baseModel: 'base',
      parameters: { rescale_mode: 'density' },
    });
    expect(yaml).toContain('  - model: "yes"\n    parameters:\n      weight: 1.0e-7\n');
    expect(yaml).toContain('  - model: "on"\n    parameters:\n      weight: 2.5e-10\n');
    expect(yaml).toContain('  - model: "1_000"\n    parameters:\n      weight: [1.0e+21, -3.0e-8]\n');
  });

  it('round-trips recipes with every kind of value', () => {
    const recipes: Recipe[] = [
      {
        mergeMethod: 'dare_ties',
        models: [
          { model: 'org/base@refs/pr/1', parameters: {} },
          {
            model: 'C:\\models\\x',
            parameters: {
              weight: [{ filter: '*', value: 1e-7 }],
              density: [{ filter: 'mlp', value: [0.1, 0.2, 0.3] }, { filter: '', value: 0.9 }],
            },
          },
          { model: 'true', parameters: { weight: -0.25 } },
        ],
        baseModel: 'org/base@refs/pr/1',
        parameters: { normalize: false, rescale: true, lambda: 1.5, rescale_mode: 'l1', int8_mask: true },
        dtype: 'F16',
        outDtype: 'F32',
      },
      {
        mergeMethod: 'karcher',
        models: [
          { model: 'a b', parameters: {} },
          { model: "it's: here # not a comment", parameters: {} },
        ],
        parameters: { max_iter: 3, tol: 1e-12 },
      },
    ];
    for (const recipe of recipes) {
      expect(parseRecipe(recipeToYaml(recipe), fakeMethods)).toEqual(recipe);
    }
  });
});

describe('recipeToYaml: slices, tokenizer, chat template', () => {
  const recipe: Recipe = {
    mergeMethod: 'slerp',
    models: [],
    slices: [
      {
        sources: [
          { model: 'org/a', layerRange: [0, 24], parameters: {} },
          { model: 'org/b', layerRange: [8, 32], parameters: {} },
        ],
        baseModel: 'org/a',
        parameters: { t: [0, 1] },
      },
      { sources: [{ model: 'org/a', layerRange: [24, 40], parameters: {} }, { model: 'org/b', layerRange: [24, 40], parameters: {} }], parameters: {} },
    ],
    baseModel: 'org/a',
    parameters: { t: 0.5 },
    dtype: 'F16',
    tokenizer: {
      source: 'union',
      tokens: { '<|im_end|>': { source: { kind: 'model_token', model: 'org/b', tokenId: 2 }, force: true }, '<x>': {} },
      padToMultipleOf: 32,
    },
    chatTemplate: "{% for m in messages %}{{ m['content'] }}\n{% endfor %}",
  };

  it('writes slices first with flow-style layer ranges, then the tokenizer keys last', () => {
    const yaml = recipeToYaml(recipe);
    expect(yaml.split('\n').slice(0, 9)).toEqual([
      'slices:',
      '  - sources:',
      '      - model: org/a',
      '        layer_range: [0, 24]',
      '      - model: org/b',
      '        layer_range: [8, 32]',
      '    base_model: org/a',
      '    parameters:',
      '      t: [0, 1]',
    ]);
    expect(yaml).not.toContain('models:');
    expect(yaml.indexOf('tokenizer:')).toBeGreaterThan(yaml.indexOf('dtype: float16'));
    expect(yaml).toContain('token_id: 2');
  });

  it('round-trips through parseRecipe', () => {
    const yaml = recipeToYaml(recipe);
    expect(parseRecipe(yaml, fakeMethods)).toEqual(recipe);
    expect(recipeToYaml(parseRecipe(yaml, fakeMethods))).toBe(yaml);
  });
});
