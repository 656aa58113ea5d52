import { describe, expect, it } from 'vitest';
import { RecipeError } from './errors.ts';
import { fakeMethods, fakeMethodsWithoutNames } from './fake-methods.testutil.ts';
import { parseRecipe } from './parse.ts';
import type { Recipe } from './types.ts';
import { validateRecipe } from './validate.ts';

const FILE = 'recipe.yml';

function parse(text: string): Recipe {
  return parseRecipe(text, fakeMethods, { file: FILE });
}

/** The RecipeError `fn` throws (fails the test when it throws anything else or nothing). */
function recipeError(fn: () => unknown): RecipeError {
  try {
    fn();
  } catch (e) {
    if (e instanceof RecipeError) return e;
    throw e;
  }
  throw new Error('expected a RecipeError, nothing was thrown');
}

const TIES = `models:
  - model: org/base
  - model: org/expert1
    parameters:
      weight: 1.0
      density: 0.5
  - model: ./local/expert2
    parameters:
      weight: 0.5
      density: [1, 0.7, 0.1]
merge_method: ties
base_model: org/base
parameters:
  normalize: true
dtype: float32
out_dtype: bfloat16
`;

describe('parseRecipe', () => {
  it('parses a ties recipe into the Recipe shape', () => {
    expect(parse(TIES)).toEqual({
      mergeMethod: 'ties',
      models: [
        { model: 'org/base', parameters: {} },
        { model: 'org/expert1', parameters: { weight: 1, density: 0.5 } },
        { model: './local/expert2', parameters: { weight: 0.5, density: [1, 0.7, 0.1] } },
      ],
      baseModel: 'org/base',
      parameters: { normalize: true },
      dtype: 'F32',
      outDtype: 'BF16',
    } satisfies Recipe);
  });

  it('leaves optional keys out rather than undefined', () => {
    const r = parse('models:\n  - model: a\n    parameters: {weight: 1}\nmerge_method: linear\n');
    expect(Object.keys(r).sort()).toEqual(['mergeMethod', 'models', 'parameters']);
    expect(r.parameters).toEqual({});
  });

  it('reads conditions, with and without filter, and a single {filter, value} mapping', () => {
    const r = parse(`models:
  - model: a
    parameters:
      weight:
        - filter: self_attn
          value: [1, 0.2]
        - value: 0.5
  - model: b
    parameters:
      weight: {filter: "*", value: 0.3}
merge_method: linear
`);
    expect(r.models[0].parameters.weight).toEqual([{ filter: 'self_attn', value: [1, 0.2] }, { value: 0.5 }]);
    expect(r.models[1].parameters.weight).toEqual([{ filter: '*', value: 0.3 }]);
  });

  it.each([
    ['bfloat16', 'BF16'],
    ['bf16', 'BF16'],
    ['float16', 'F16'],
    ['fp16', 'F16'],
    ['half', 'F16'],
    ['float32', 'F32'],
    ['fp32', 'F32'],
    ['float', 'F32'],
  ])('reads dtype %s as %s', (name, dtype) => {
    const r = parse(`models: [{model: a, parameters: {weight: 1}}]\nmerge_method: linear\ndtype: ${name}\nout_dtype: ${name}\n`);
    expect(r.dtype).toBe(dtype);
    expect(r.outDtype).toBe(dtype);
  });

  it('accepts the base model listed without per-model parameters', () => {
    expect(() => parse(TIES)).not.toThrow();
  });

  it('accepts a required per-model parameter given only at top level', () => {
    const r = parse('models:\n  - model: a\n  - model: b\nmerge_method: linear\nparameters:\n  weight: 0.5\n');
    expect(r.parameters).toEqual({ weight: 0.5 });
  });

  it('accepts a required parameter given only through conditions (checked per tensor later)', () => {
    expect(() =>
      parse('models:\n  - model: a\n    parameters:\n      weight: [{filter: mlp, value: 1}]\nmerge_method: linear\n'),
    ).not.toThrow();
  });

  it('accepts integer, enum and number parameters of the right kind', () => {
    const r = parse(
      'models: [{model: a}, {model: b}]\nmerge_method: karcher\nparameters: {max_iter: 20, tol: 1e-6}\n',
    );
    expect(r.parameters).toEqual({ max_iter: 20, tol: 1e-6 });
    const d = parse(
      'models: [{model: a, parameters: {weight: 1}}]\nbase_model: b\nmerge_method: dare_ties\nparameters: {rescale_mode: density}\n',
    );
    expect(d.parameters.rescale_mode).toBe('density');
  });
});

describe('keys Merge Studio does not support yet', () => {
  it('with unsupported: warn, the rest is imported and each key left out is reported in the CLI\'s words, with its line', () => {
    const yaml = 'models: [{model: a, parameters: {weight: 1}}]\nmerge_method: linear\nmodules: {}\n';
    let refused = '';
    try {
      parseRecipe(yaml, fakeMethods, { file: 'recipe.yml' });
    } catch (e) {
      refused = (e as Error).message;
    }
    expect(refused).toBe('recipe.yml: modules: not supported yet (per-module merges): list whole models under models, or layers under slices');
    const warnings: RecipeError[] = [];
    const r = parseRecipe(yaml, fakeMethods, { file: 'recipe.yml', unsupported: 'warn', onWarning: (w) => warnings.push(w) });
    expect(r).toEqual({ mergeMethod: 'linear', models: [{ model: 'a', parameters: { weight: 1 } }], parameters: {} });
    expect(warnings.map((w) => [w.path, w.line])).toEqual([['modules', 3]]);
    expect(warnings[0].message).toBe(refused);
  });
});

describe('slices, tokenizers and chat templates (mergekit keys)', () => {
  const SLICES = `slices:
  - sources:
      - model: org/a
        layer_range: [0, 24]
        parameters: {weight: 0.7}
      - model: org/b
        layer_range: [8, 32]
    base_model: org/b
    parameters: {weight: [0, 1]}
  - sources:
      - model: org/a
        layer_range: [30, 40]
        parameters: {weight: 1}
merge_method: linear
parameters:
  normalize: false
tokenizer:
  source: union
  tokens:
    <|im_start|>:
      source: org/a
    <|im_end|>:
      source: {kind: model_token, model: org/b, token: </s>}
      force: true
    <pad>:
      source: {kind: zero}
    <extra>:
  pad_to_multiple_of: 64
chat_template: chatml
`;

  it('parses slices (sources, layer ranges, slice and source parameters, slice base) and the tokenizer block', () => {
    expect(parse(SLICES)).toEqual({
      mergeMethod: 'linear',
      models: [],
      slices: [
        {
          sources: [
            { model: 'org/a', layerRange: [0, 24], parameters: { weight: 0.7 } },
            { model: 'org/b', layerRange: [8, 32], parameters: {} },
          ],
          baseModel: 'org/b',
          parameters: { weight: [0, 1] },
        },
        { sources: [{ model: 'org/a', layerRange: [30, 40], parameters: { weight: 1 } }], parameters: {} },
      ],
      parameters: { normalize: false },
      tokenizer: {
        source: 'union',
        tokens: {
          '<|im_start|>': { source: { kind: 'model', model: 'org/a' } },
          '<|im_end|>': { source: { kind: 'model_token', model: 'org/b', token: '</s>' }, force: true },
          '<pad>': { source: { kind: 'zero' } },
          '<extra>': {},
        },
        padToMultipleOf: 64,
      },
      chatTemplate: 'chatml',
    } satisfies Recipe);
  });

  it('parses tokenizer_source and a Jinja chat_template', () => {
    const r = parse('models: [{model: a, parameters: {weight: 1}}]\nmerge_method: linear\ntokenizer_source: union\nchat_template: "{% for m in messages %}{{ m.content }}{% endfor %}"\n');
    expect(r.tokenizerSource).toBe('union');
    expect(r.chatTemplate).toBe('{% for m in messages %}{{ m.content }}{% endfor %}');
  });

  it('takes a {filter, value} condition and a gradient at every level', () => {
    const r = parse('slices:\n  - sources:\n      - {model: a, layer_range: [0, 2], parameters: {weight: [{filter: mlp, value: [0, 1]}, {value: 1}]}}\n    parameters: {weight: [1, 0]}\nmerge_method: linear\n');
    expect(r.slices?.[0].sources[0].parameters.weight).toEqual([{ filter: 'mlp', value: [0, 1] }, { value: 1 }]);
  });
});

describe('parseRecipe errors name the place and the reason', () => {
  const cases: Array<{ name: string; yaml: string; path: string; message: string; line?: number }> = [
    {
      name: 'unknown top-level key',
      yaml: 'models: [{model: a, parameters: {weight: 1}}]\nmerge_methd: linear\n',
      path: 'merge_methd',
      message:
        'recipe.yml: unknown key "merge_methd" (allowed: slices, models, merge_method, base_model, parameters, dtype, out_dtype, tokenizer_source, tokenizer, chat_template)',
      line: 2,
    },
    {
      name: 'empty slice sources',
      yaml: 'slices:\n  - sources: []\nmerge_method: passthrough\n',
      path: 'slices[0].sources',
      message: 'recipe.yml: slices[0].sources: []: list the slice\'s sources as {model, layer_range: [from, to]}',
      line: 2,
    },
    {
      name: 'both models and slices',
      yaml: 'models: [{model: a}]\nslices:\n  - sources: [{model: a, layer_range: [0, 1]}]\nmerge_method: passthrough\n',
      path: 'slices',
      message: 'recipe.yml: slices: give either models or slices, not both (models merges whole models, slices merges layer ranges)',
      line: 3,
    },
    {
      name: 'a layer range that is empty',
      yaml: 'slices:\n  - sources:\n      - model: a\n        layer_range: [4, 4]\nmerge_method: passthrough\n',
      path: 'slices[0].sources[0].layer_range',
      message: 'recipe.yml: slices[0].sources[0].layer_range: [4, 4] is empty: to must be above from (to is excluded)',
      line: 4,
    },
    {
      name: 'a layer range that is not two indices',
      yaml: 'slices:\n  - sources:\n      - model: a\n        layer_range: [0, 2, 4]\nmerge_method: passthrough\n',
      path: 'slices[0].sources[0].layer_range',
      message: 'recipe.yml: slices[0].sources[0].layer_range: [0,2,4] must be [from, to]: two layer indices, from included, to excluded',
      line: 4,
    },
    {
      name: 'sources of a slice with different layer counts',
      yaml: 'slices:\n  - sources:\n      - {model: a, layer_range: [0, 4]}\n      - {model: b, layer_range: [0, 3]}\nmerge_method: slerp\nbase_model: a\nparameters: {t: 0.5}\n',
      path: 'slices[0].sources[1].layer_range',
      message:
        'recipe.yml: slices[0].sources[1].layer_range: [0, 3] has 3 layers, the slice\'s first source 4: every source of a slice gives the same number of layers',
      line: 4,
    },
    {
      name: 'unknown key in a slice source',
      yaml: 'slices:\n  - sources:\n      - {model: a, layer_range: [0, 4], layers: 3}\nmerge_method: passthrough\n',
      path: 'slices[0].sources[0].layers',
      message: 'recipe.yml: slices[0].sources[0]: unknown key "layers" in a slice source (allowed: model, layer_range, parameters)',
      line: 3,
    },
    {
      name: 'a global parameter in a slice source',
      yaml: 'slices:\n  - sources:\n      - model: a\n        layer_range: [0, 4]\n        parameters: {normalize: true, weight: 1}\nmerge_method: linear\n',
      path: 'slices[0].sources[0].parameters.normalize',
      message: 'recipe.yml: slices[0].sources[0].parameters.normalize: "normalize" is a global parameter of linear: put it in the slice\'s or the top-level parameters',
      line: 5,
    },
    {
      name: 'a required per-model parameter missing at every level of a slice',
      yaml: 'slices:\n  - sources:\n      - model: a\n        layer_range: [0, 4]\nmerge_method: linear\n',
      path: 'slices[0].sources[0].parameters.weight',
      message:
        'recipe.yml: slices[0].sources[0]: model "a" has no "weight" parameter, required by linear (set it in the source\'s, the slice\'s or the top-level parameters)',
      line: 3,
    },
    {
      name: 'tokenizer_source and tokenizer together',
      yaml: 'models: [{model: a, parameters: {weight: 1}}]\nmerge_method: linear\ntokenizer_source: union\ntokenizer: {source: base}\n',
      path: 'tokenizer',
      message: 'recipe.yml: tokenizer: give either tokenizer_source or tokenizer, not both (tokenizer.source replaces tokenizer_source)',
      line: 4,
    },
    {
      name: 'a model_token source with both token and token_id',
      yaml: 'models: [{model: a, parameters: {weight: 1}}]\nmerge_method: linear\ntokenizer:\n  tokens:\n    x: {source: {kind: model_token, model: a, token: y, token_id: 3}}\n',
      path: 'tokenizer.tokens.x.source',
      message: 'recipe.yml: tokenizer.tokens.x.source: give exactly one of token (a token string) and token_id (an id in that model)',
      line: 5,
    },
    {
      name: 'a chat template that is neither a name nor Jinja',
      yaml: 'models: [{model: a, parameters: {weight: 1}}]\nmerge_method: linear\nchat_template: vicuna\n',
      path: 'chat_template',
      message: 'recipe.yml: chat_template: "vicuna" is neither "auto", a built-in template (chatml, llama3, alpaca, mistral, zephyr) nor a Jinja template',
      line: 3,
    },
    {
      name: 'a chat template with a Jinja syntax error',
      yaml: 'models: [{model: a, parameters: {weight: 1}}]\nmerge_method: linear\nchat_template: "{% for m in messages %}{{ m.content }}"\n',
      path: 'chat_template',
      message: 'recipe.yml: chat_template: is not a valid Jinja chat template: a {% for %} or {% if %} block is left open',
      line: 3,
    },
    {
      name: 'unknown per-model parameter (typo)',
      yaml: 'models:\n  - model: a\n    parameters: {weight: 1}\n  - model: b\n    parameters:\n      weight: 1\n      desnity: 0.5\nmerge_method: ties\nbase_model: c\n',
      path: 'models[1].parameters.desnity',
      message: 'recipe.yml: models[1].parameters: unknown parameter "desnity" for ties (allowed: weight, density)',
      line: 7,
    },
    {
      name: 'unknown top-level parameter lists globals and per-model fallbacks',
      yaml: 'models: [{model: a, parameters: {weight: 1}}]\nbase_model: c\nmerge_method: ties\nparameters: {normalise: true}\n',
      path: 'parameters.normalise',
      message: 'recipe.yml: parameters: unknown parameter "normalise" for ties (allowed: normalize, lambda, int8_mask, weight, density)',
      line: 4,
    },
    {
      name: 'global parameter in a model',
      yaml: 'models:\n  - model: a\n    parameters:\n      weight: 1\n      normalize: false\nbase_model: c\nmerge_method: ties\n',
      path: 'models[0].parameters.normalize',
      message: 'recipe.yml: models[0].parameters.normalize: "normalize" is a global parameter of ties: put it in the top-level parameters',
      line: 5,
    },
    {
      name: 'wrong type for a number',
      yaml: 'models:\n  - model: a\n    parameters:\n      weight: "abc"\nmerge_method: linear\n',
      path: 'models[0].parameters.weight',
      message: 'recipe.yml: models[0].parameters.weight: "abc" must be a number, a gradient list, or a list of {filter, value}',
      line: 4,
    },
    {
      name: 'a number for a boolean',
      yaml: 'models: [{model: a, parameters: {weight: 1}}]\nmerge_method: linear\nparameters:\n  normalize: 1\n',
      path: 'parameters.normalize',
      message: 'recipe.yml: parameters.normalize: 1 must be true or false, or a list of {filter, value}',
    },
    {
      name: '"yes" is a string in YAML 1.2, not a boolean',
      yaml: 'models: [{model: a, parameters: {weight: 1}}]\nmerge_method: linear\nparameters:\n  normalize: yes\n',
      path: 'parameters.normalize',
      message: 'recipe.yml: parameters.normalize: "yes" must be true or false, or a list of {filter, value}',
    },
    {
      name: 'a gradient for a boolean',
      yaml: 'models: [{model: a, parameters: {weight: 1}}]\nmerge_method: linear\nparameters:\n  normalize: [0, 1]\n',
      path: 'parameters.normalize',
      message:
        'recipe.yml: parameters.normalize: [0,1]: boolean parameter "normalize" cannot vary over layers; must be true or false, or a list of {filter, value}',
    },
    {
      name: 'enum option',
      yaml: 'models: [{model: a, parameters: {weight: 1}}]\nbase_model: b\nmerge_method: dare_ties\nparameters: {rescale_mode: l2}\n',
      path: 'parameters.rescale_mode',
      message: 'recipe.yml: parameters.rescale_mode: "l2" must be one of "l1", "density", or a list of {filter, value}',
    },
    {
      name: 'integer',
      yaml: 'models: [{model: a}, {model: b}]\nmerge_method: karcher\nparameters: {max_iter: 2.5}\n',
      path: 'parameters.max_iter',
      message: 'recipe.yml: parameters.max_iter: 2.5 must be an integer, or a list of {filter, value}',
    },
    {
      name: 'integer below its minimum',
      yaml: 'models: [{model: a}, {model: b}]\nmerge_method: karcher\nparameters: {max_iter: 0}\n',
      path: 'parameters.max_iter',
      message: 'recipe.yml: parameters.max_iter: 0 is below the minimum 1',
    },
    {
      name: 'out of range at top level',
      yaml: 'models: [{model: a, parameters: {weight: 1}}]\nbase_model: b\nmerge_method: ties\nparameters:\n  density: 1.7\n',
      path: 'parameters.density',
      message: 'recipe.yml: parameters.density: 1.7 is out of range [0, 1]',
      line: 5,
    },
    {
      name: 'out of range inside a gradient',
      yaml: 'models:\n  - model: a\n    parameters: {weight: 1, density: [1, 0.5, 1.5]}\nbase_model: b\nmerge_method: ties\n',
      path: 'models[0].parameters.density[2]',
      message: 'recipe.yml: models[0].parameters.density[2]: 1.5 is out of range [0, 1]',
      line: 3,
    },
    {
      name: 'out of range inside a condition',
      yaml: 'models:\n  - model: a\n    parameters:\n      weight: 1\n      density:\n        - filter: mlp\n          value: 0.5\n        - value: -0.1\nbase_model: b\nmerge_method: ties\n',
      path: 'models[0].parameters.density[1].value',
      message: 'recipe.yml: models[0].parameters.density[1].value: -0.1 is out of range [0, 1]',
      line: 8,
    },
    {
      name: 'out of range inside a gradient inside a condition',
      yaml: 'models: [{model: a, parameters: {weight: 1, density: [{filter: mlp, value: [0.2, 2]}]}}]\nbase_model: b\nmerge_method: ties\n',
      path: 'models[0].parameters.density[0].value[1]',
      message: 'recipe.yml: models[0].parameters.density[0].value[1]: 2 is out of range [0, 1]',
    },
    {
      name: 'wrong type inside a condition',
      yaml: 'models: [{model: a, parameters: {weight: [{filter: mlp, value: true}]}}]\nmerge_method: linear\n',
      path: 'models[0].parameters.weight[0].value',
      message: 'recipe.yml: models[0].parameters.weight[0].value: true must be a number or a gradient list',
    },
    {
      name: 'non-finite number',
      yaml: 'models: [{model: a, parameters: {weight: .nan}}]\nmerge_method: linear\n',
      path: 'models[0].parameters.weight',
      message: 'recipe.yml: models[0].parameters.weight: NaN must be a finite number',
    },
    {
      name: 'unknown method, with the known ones',
      yaml: 'models: [{model: a, parameters: {weight: 1}}]\nmerge_method: tie\n',
      path: 'merge_method',
      message:
        'recipe.yml: merge_method: unknown method "tie" (known: linear, task_arithmetic, ties, dare_ties, breadcrumbs_ties, della, slerp, nuslerp, model_stock, karcher, sce, ram, ramplus_tl, arcee_fusion, tsv, iso_c, iso_cts, lines, pcb, widen, passthrough)',
      line: 2,
    },
    {
      name: 'missing merge_method',
      yaml: 'models: [{model: a, parameters: {weight: 1}}]\n',
      path: 'merge_method',
      message:
        'recipe.yml: merge_method: missing (known: linear, task_arithmetic, ties, dare_ties, breadcrumbs_ties, della, slerp, nuslerp, model_stock, karcher, sce, ram, ramplus_tl, arcee_fusion, tsv, iso_c, iso_cts, lines, pcb, widen, passthrough)',
    },
    {
      name: 'missing required weight',
      yaml: 'models:\n  - model: a\n    parameters: {weight: 1}\n  - model: org/b\n    parameters: {density: 0.5}\nbase_model: c\nmerge_method: ties\n',
      path: 'models[1].parameters.weight',
      message:
        'recipe.yml: models[1]: model "org/b" has no "weight" parameter, required by ties (set it in the model\'s parameters or in the top-level parameters)',
      line: 4,
    },
    {
      name: 'missing required global parameter',
      yaml: 'models: [{model: a}, {model: b}]\nbase_model: a\nmerge_method: slerp\n',
      path: 'parameters.t',
      message: 'recipe.yml: parameters: missing required parameter "t" of slerp',
    },
    {
      name: 'bad dtype',
      yaml: 'models: [{model: a, parameters: {weight: 1}}]\nmerge_method: linear\ndtype: bfloat32\n',
      path: 'dtype',
      message: 'recipe.yml: dtype: unknown dtype "bfloat32" (allowed: bfloat16, float16, float32, bf16, fp16, fp32, half, float)',
      line: 3,
    },
    {
      name: 'bad out_dtype',
      yaml: 'models: [{model: a, parameters: {weight: 1}}]\nmerge_method: linear\nout_dtype: int8\n',
      path: 'out_dtype',
      message: 'recipe.yml: out_dtype: unknown dtype "int8" (allowed: bfloat16, float16, float32, bf16, fp16, fp32, half, float)',
    },
    {
      name: 'missing models',
      yaml: 'merge_method: linear\n',
      path: 'models',
      message: 'recipe.yml: models: missing: list the models to merge (or layer ranges under slices)',
    },
    {
      name: 'empty models',
      yaml: 'models: []\nmerge_method: linear\n',
      path: 'models',
      message: 'recipe.yml: models: the recipe lists no models (give a list of {model, parameters})',
    },
    {
      name: 'a model written as a bare string',
      yaml: 'models:\n  - org/a\nmerge_method: linear\n',
      path: 'models[0]',
      message: 'recipe.yml: models[0]: write the model as "- model: org/a"',
      line: 2,
    },
    {
      name: 'unknown key in a model entry',
      yaml: 'models:\n  - model: a\n    weight: 1\nmerge_method: linear\n',
      path: 'models[0].weight',
      message: 'recipe.yml: models[0]: unknown key "weight" (allowed: model, parameters)',
      line: 3,
    },
    {
      name: 'a model listed twice',
      yaml: 'models:\n  - model: a\n    parameters: {weight: 1}\n  - model: a\n    parameters: {weight: 2}\nmerge_method: linear\n',
      path: 'models[1].model',
      message: 'recipe.yml: models[1].model: "a" is already listed as models[0]',
      line: 4,
    },
    {
      name: 'a list mixing numbers and conditions',
      yaml: 'models: [{model: a, parameters: {weight: [1, {value: 2}]}}]\nmerge_method: linear\n',
      path: 'models[0].parameters.weight[1]',
      message:
        'recipe.yml: models[0].parameters.weight[1]: {"value":2} does not fit this list: a list holds numbers (a gradient over layers) or {filter, value} conditions',
    },
    {
      name: 'unknown key in a condition',
      yaml: 'models: [{model: a, parameters: {weight: [{filtr: mlp, value: 2}]}}]\nmerge_method: linear\n',
      path: 'models[0].parameters.weight[0].filtr',
      message: 'recipe.yml: models[0].parameters.weight[0]: unknown key "filtr" in a {filter, value} condition (allowed: filter, value)',
    },
    {
      name: 'a parameter with no value',
      yaml: 'models:\n  - model: a\n    parameters:\n      weight:\nmerge_method: linear\n',
      path: 'models[0].parameters.weight',
      message: 'recipe.yml: models[0].parameters.weight: has no value',
      line: 4,
    },
    {
      name: 'an empty gradient list',
      yaml: 'models: [{model: a, parameters: {weight: []}}]\nmerge_method: linear\n',
      path: 'models[0].parameters.weight',
      message: 'recipe.yml: models[0].parameters.weight: is an empty list; must be a number, a gradient list, or a list of {filter, value}',
    },
    {
      name: 'an empty document',
      yaml: '# nothing\n',
      path: '',
      message: 'recipe.yml: the recipe is empty (it needs models or slices, and merge_method)',
    },
  ];

  it.each(cases)('$name', ({ yaml, path, message, line }) => {
    const e = recipeError(() => parse(yaml));
    expect(e.name).toBe('RecipeError');
    expect(e.message).toBe(message);
    expect(e.path).toBe(path);
    expect(e.file).toBe(FILE);
    if (line !== undefined) expect(e.line).toBe(line);
  });

  it('omits the known list when the lookup has no names', () => {
    const e = recipeError(() =>
      parseRecipe('models: [{model: a}]\nmerge_method: tie\n', fakeMethodsWithoutNames, { file: FILE }),
    );
    expect(e.message).toBe('recipe.yml: merge_method: unknown method "tie"');
  });

  it('reports YAML syntax errors with their line', () => {
    const e = recipeError(() => parse('models:\n  - model: a\n    parameters: {weight: 1\nmerge_method: linear\n'));
    expect(e.message).toMatch(/^recipe\.yml: invalid YAML: /);
    expect(e.line).toBeGreaterThanOrEqual(3);
  });

  it('reports duplicate keys', () => {
    const e = recipeError(() => parse('models: [{model: a, parameters: {weight: 1}}]\nmerge_method: linear\nmerge_method: ties\n'));
    expect(e.message).toMatch(/^recipe\.yml: invalid YAML: .*unique/i);
    expect(e.line).toBe(3);
  });

  it('leaves the file out of the message when none is given', () => {
    const e = recipeError(() => parseRecipe('models: []\nmerge_method: linear\n', fakeMethods));
    expect(e.message).toBe('models: the recipe lists no models (give a list of {model, parameters})');
  });
});

describe('validateRecipe on in-memory recipes', () => {
  const good: Recipe = {
    mergeMethod: 'ties',
    models: [
      { model: 'base', parameters: {} },
      { model: 'x', parameters: { weight: 1, density: [{ filter: 'mlp', value: [0.2, 0.8] }, { value: 1 }] } },
    ],
    baseModel: 'base',
    parameters: { normalize: false },
  };

  it('accepts a valid recipe', () => {
    expect(() => validateRecipe(good, fakeMethods)).not.toThrow();
  });

  it('gives the same messages as for YAML', () => {
    const bad: Recipe = { ...good, parameters: { density: 1.7 } };
    const e = recipeError(() => validateRecipe(bad, fakeMethods, 'studio'));
    expect(e.message).toBe('studio: parameters.density: 1.7 is out of range [0, 1]');
    expect(e.path).toBe('parameters.density');
  });

  it('rejects values YAML cannot produce but code can', () => {
    const inf: Recipe = { ...good, models: [good.models[0], { model: 'x', parameters: { weight: Infinity } }] };
    expect(recipeError(() => validateRecipe(inf, fakeMethods)).message).toBe(
      'models[1].parameters.weight: Infinity must be a finite number',
    );
    const nested = {
      ...good,
      models: [good.models[0], { model: 'x', parameters: { weight: [{ value: [{ value: 1 }] }] } }],
    } as unknown as Recipe;
    expect(recipeError(() => validateRecipe(nested, fakeMethods)).path).toBe('models[1].parameters.weight[0].value');
    const badDtype = { ...good, dtype: 'F64' } as unknown as Recipe;
    expect(recipeError(() => validateRecipe(badDtype, fakeMethods)).message).toBe(
      'dtype: "F64" is not a float dtype (allowed: bfloat16, float16, float32)',
    );
  });
});
