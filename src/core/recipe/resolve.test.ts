import { describe, expect, it } from 'vitest';
import { RecipeError } from './errors.ts';
import { fakeMethod } from './fake-methods.testutil.ts';
import {
  evalGradient,
  LayerIndexError,
  layerIndexOf,
  layerPosition,
  numLayersOf,
  resolveParamValue,
  resolveTensorParams,
} from './resolve.ts';
import type { ParamValue, Recipe } from './types.ts';

const layer = (k: number, rest = 'mlp.up_proj.weight') => `model.layers.${k}.${rest}`;

describe('layerIndexOf', () => {
  it.each([
    ['model.layers.3.mlp.up_proj.weight', 3],
    ['model.layers.12.self_attn.q_proj.weight', 12],
    ['layers.0.attention.wq.weight', 0],
    ['model.language_model.layers.7.input_layernorm.weight', 7],
    ['model.embed_tokens.weight', undefined],
    ['model.norm.weight', undefined],
    ['lm_head.weight', undefined],
    ['transformer.h.3.attn.c_attn.weight', undefined],
    ['model.sublayers.3.mlp.weight', undefined],
  ])('%s → %s', (name, k) => {
    expect(layerIndexOf(name)).toBe(k);
  });
});

describe('layerPosition', () => {
  it('is k/(L-1) for layer tensors', () => {
    expect([0, 1, 2, 3].map((k) => layerPosition(layer(k), 4))).toEqual([0, 1 / 3, 2 / 3, 1]);
    expect(layerPosition(layer(5), 11)).toBe(0.5);
  });
  it('is 1 for the only layer of a one-layer model', () => {
    expect(layerPosition(layer(0), 1)).toBe(1);
  });
  it('is 0 for tensors outside the layers', () => {
    expect(layerPosition('model.embed_tokens.weight', 4)).toBe(0);
    expect(layerPosition('model.norm.weight', 4)).toBe(0);
    expect(layerPosition('lm_head.weight', 4)).toBe(0);
  });
  it('refuses a layer index past the layer count', () => {
    expect(() => layerPosition(layer(4), 4)).toThrow(LayerIndexError);
    expect(() => layerPosition(layer(4), 4)).toThrow('tensor model.layers.4.mlp.up_proj.weight: layer 4 is outside a model of 4 layers');
  });
});

describe('evalGradient', () => {
  // Hand-computed: s = t(n-1), i = floor(s), f = s - i, (1-f)v[i] + f v[i+1].
  it('[1, 0.7, 0.1] over 4 layers (golden ties-f32, expert2 density)', () => {
    expect(evalGradient([1, 0.7, 0.1], 0)).toBe(1);
    expect(evalGradient([1, 0.7, 0.1], 1 / 3)).toBeCloseTo(0.8, 14); // 1/3·1 + 2/3·0.7
    expect(evalGradient([1, 0.7, 0.1], 2 / 3)).toBeCloseTo(0.5, 14); // 2/3·0.7 + 1/3·0.1
    expect(evalGradient([1, 0.7, 0.1], 1)).toBeCloseTo(0.1, 15);
    expect(evalGradient([1, 0.7, 0.1], 0.5)).toBeCloseTo(0.7, 15);
  });
  it('[0.2, 0.9] (golden task-arithmetic, expert3 weight)', () => {
    expect(evalGradient([0.2, 0.9], 0)).toBe(0.2);
    expect(evalGradient([0.2, 0.9], 1 / 3)).toBeCloseTo(0.2 + 0.7 / 3, 14);
    expect(evalGradient([0.2, 0.9], 2 / 3)).toBeCloseTo(0.2 + 1.4 / 3, 14);
    expect(evalGradient([0.2, 0.9], 1)).toBe(0.9);
  });
  it('five points over four layers (golden slerp-gradient, self_attn)', () => {
    const v = [0, 0.5, 0.3, 0.7, 1];
    expect(evalGradient(v, 0)).toBe(0);
    expect(evalGradient(v, 1 / 3)).toBeCloseTo(13 / 30, 14); // s = 4/3: 2/3·0.5 + 1/3·0.3
    expect(evalGradient(v, 2 / 3)).toBeCloseTo(17 / 30, 14); // s = 8/3: 1/3·0.3 + 2/3·0.7
    expect(evalGradient(v, 1)).toBe(1);
  });
  it('a single value is constant', () => {
    expect(evalGradient([0.4], 0)).toBe(0.4);
    expect(evalGradient([0.4], 0.77)).toBe(0.4);
    expect(evalGradient([0.4], 1)).toBe(0.4);
  });
  it('never leaves the span of the two neighbouring values through rounding', () => {
    for (let j = 0; j <= 1000; j++) {
      expect(evalGradient([1, 1], j / 1000)).toBe(1);
      expect(evalGradient([0.3, 0.3, 0.3], j / 1000)).toBe(0.3);
    }
  });
  it('refuses an empty list', () => {
    expect(() => evalGradient([], 0.5)).toThrow(RangeError);
  });
});

describe('resolveParamValue', () => {
  // The golden slerp-gradient case's `t`.
  const t: ParamValue = [
    { filter: 'self_attn', value: [0, 0.5, 0.3, 0.7, 1] },
    { filter: 'mlp', value: [1, 0.5, 0.7, 0.3, 0] },
    { value: 0.5 },
  ];
  it('picks the first matching condition and evaluates its gradient at the layer', () => {
    expect(resolveParamValue(t, layer(0, 'self_attn.q_proj.weight'), 4)).toBe(0);
    expect(resolveParamValue(t, layer(1, 'self_attn.q_proj.weight'), 4)).toBeCloseTo(13 / 30, 14);
    expect(resolveParamValue(t, layer(3, 'self_attn.o_proj.weight'), 4)).toBe(1);
    expect(resolveParamValue(t, layer(0, 'mlp.down_proj.weight'), 4)).toBe(1);
    expect(resolveParamValue(t, layer(1, 'mlp.gate_proj.weight'), 4)).toBeCloseTo(17 / 30, 14); // 2/3·0.5 + 1/3·0.7
    expect(resolveParamValue(t, layer(3, 'mlp.up_proj.weight'), 4)).toBe(0);
  });
  it('falls through to the entry without a filter', () => {
    expect(resolveParamValue(t, layer(2, 'input_layernorm.weight'), 4)).toBe(0.5);
    expect(resolveParamValue(t, 'model.embed_tokens.weight', 4)).toBe(0.5);
    expect(resolveParamValue(t, 'lm_head.weight', 4)).toBe(0.5);
  });
  it('evaluates gradients at t = 0 outside the layers', () => {
    expect(resolveParamValue([0.2, 0.9], 'model.norm.weight', 4)).toBe(0.2);
    expect(resolveParamValue([{ filter: 'embed', value: [0.3, 0.6] }], 'model.embed_tokens.weight', 4)).toBe(0.3);
  });
  it('treats "*" as matching everything, and returns undefined when nothing matches', () => {
    expect(resolveParamValue([{ filter: 'mlp', value: 1 }, { filter: '*', value: 2 }], 'lm_head.weight', 4)).toBe(2);
    expect(resolveParamValue([{ filter: 'mlp', value: 1 }], 'lm_head.weight', 4)).toBeUndefined();
  });
  it('returns scalars of every kind as they are', () => {
    expect(resolveParamValue(0.25, layer(2), 4)).toBe(0.25);
    expect(resolveParamValue(true, layer(2), 4)).toBe(true);
    expect(resolveParamValue('l1', layer(2), 4)).toBe('l1');
  });
});

describe('resolveTensorParams', () => {
  const ties = fakeMethod('ties');
  // The golden ties-f32 recipe.
  const golden: Recipe = {
    mergeMethod: 'ties',
    models: [
      { model: 'e1', parameters: { weight: 1.0, density: 0.5 } },
      { model: 'e2', parameters: { weight: 0.5, density: [1, 0.7, 0.1] } },
      { model: 'e3', parameters: { weight: 0.8, density: 0.33 } },
    ],
    baseModel: 'base',
    parameters: { normalize: true },
  };

  it('resolves the golden ties recipe per layer, with defaults for the rest', () => {
    const expected = [1, 0.8, 0.5, 0.1];
    for (let k = 0; k < 4; k++) {
      const r = resolveTensorParams(golden, ties, layer(k), 4);
      expect(r.global).toEqual({ normalize: true, lambda: 1, int8_mask: false });
      expect(r.perModel).toHaveLength(3);
      expect(r.perModel[0]).toEqual({ weight: 1, density: 0.5 });
      expect(r.perModel[1].weight).toBe(0.5);
      expect(r.perModel[1].density).toBeCloseTo(expected[k], 14);
      expect(r.perModel[2]).toEqual({ weight: 0.8, density: 0.33 });
    }
    expect(resolveTensorParams(golden, ties, 'model.embed_tokens.weight', 4).perModel[1].density).toBe(1);
  });

  it('looks up the model, then the top level, then the default', () => {
    const r: Recipe = {
      mergeMethod: 'ties',
      models: [
        { model: 'a', parameters: { weight: 2, density: 0.9 } },
        { model: 'b', parameters: { weight: 3 } },
        { model: 'c', parameters: {} },
      ],
      baseModel: 'base',
      parameters: { weight: 0.1, lambda: 0.5 },
    };
    const { global, perModel } = resolveTensorParams(r, ties, layer(0), 4);
    expect(global).toEqual({ normalize: true, lambda: 0.5, int8_mask: false });
    expect(perModel).toEqual([
      { weight: 2, density: 0.9 },
      { weight: 3, density: 1 },
      { weight: 0.1, density: 1 },
    ]);
  });

  it('moves on to the top level when no condition of the model matches (as mergekit)', () => {
    const r: Recipe = {
      mergeMethod: 'ties',
      models: [{ model: 'a', parameters: { weight: 1, density: [{ filter: 'self_attn', value: 0.2 }] } }],
      baseModel: 'base',
      parameters: { density: 0.6 },
    };
    expect(resolveTensorParams(r, ties, layer(1, 'self_attn.k_proj.weight'), 4).perModel[0].density).toBe(0.2);
    expect(resolveTensorParams(r, ties, layer(1, 'mlp.up_proj.weight'), 4).perModel[0].density).toBe(0.6);
  });

  it('names model, tensor and parameter when a required value is missing for a tensor', () => {
    const r: Recipe = {
      mergeMethod: 'ties',
      models: [
        { model: 'a', parameters: { weight: 1 } },
        { model: 'org/b', parameters: { weight: [{ filter: 'self_attn', value: 0.5 }] } },
      ],
      baseModel: 'base',
      parameters: {},
    };
    expect(resolveTensorParams(r, ties, layer(2, 'self_attn.v_proj.weight'), 4).perModel[1].weight).toBe(0.5);
    let error: unknown;
    try {
      resolveTensorParams(r, ties, layer(2, 'mlp.up_proj.weight'), 4);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(RecipeError);
    const e = error as RecipeError;
    expect(e.path).toBe('models[1].parameters.weight');
    expect(e.message).toBe(
      'models[1]: model "org/b", tensor model.layers.2.mlp.up_proj.weight: no value for ties\'s required parameter "weight" ' +
        "(not in the model's parameters nor the top-level parameters, or no condition matched)",
    );
  });

  it('names the tensor when a required global parameter has no matching condition', () => {
    const slerp = fakeMethod('slerp');
    const r: Recipe = {
      mergeMethod: 'slerp',
      models: [
        { model: 'base', parameters: {} },
        { model: 'x', parameters: {} },
      ],
      baseModel: 'base',
      parameters: { t: [{ filter: 'mlp', value: 0.3 }] },
    };
    expect(resolveTensorParams(r, slerp, layer(0), 4).global).toEqual({ t: 0.3 });
    expect(() => resolveTensorParams(r, slerp, 'lm_head.weight', 4)).toThrow(
      'parameters: tensor lm_head.weight: no value for slerp\'s required parameter "t" (no condition matched)',
    );
  });

  it('lets the base model listed among the models go without required per-model parameters', () => {
    const r: Recipe = {
      mergeMethod: 'ties',
      models: [
        { model: 'base', parameters: {} },
        { model: 'x', parameters: { weight: 1 } },
      ],
      baseModel: 'base',
      parameters: {},
    };
    expect(resolveTensorParams(r, ties, layer(0), 4).perModel).toEqual([{ density: 1 }, { weight: 1, density: 1 }]);
  });

  it('range-checks values after resolution (recipes that skipped validation)', () => {
    const r: Recipe = {
      mergeMethod: 'ties',
      models: [{ model: 'x', parameters: { weight: 1, density: [{ filter: 'mlp', value: [0.5, 1.5] }] } }],
      baseModel: 'base',
      parameters: {},
    };
    expect(resolveTensorParams(r, ties, layer(0), 4).perModel[0].density).toBe(0.5);
    expect(() => resolveTensorParams(r, ties, layer(3), 4)).toThrow(
      'models[0].parameters.density: model "x", tensor model.layers.3.mlp.up_proj.weight: 1.5 is out of range [0, 1]',
    );
  });
});

describe('numLayersOf', () => {
  const names = [layer(0), layer(1), layer(5), 'model.norm.weight'];
  it('reads num_hidden_layers, n_layer or num_layers from the config', () => {
    expect(numLayersOf({ num_hidden_layers: 32 }, names)).toBe(32);
    expect(numLayersOf({ n_layer: 12 }, names)).toBe(12);
    expect(numLayersOf({ num_layers: 24 }, names)).toBe(24);
    expect(numLayersOf({ text_config: { num_hidden_layers: 26 } }, names)).toBe(26);
  });
  it('falls back to 1 + the largest layer index in the names', () => {
    expect(numLayersOf(null, names)).toBe(6);
    expect(numLayersOf({ hidden_size: 64 }, new Set(names))).toBe(6);
    expect(numLayersOf({ num_hidden_layers: 'four' }, names)).toBe(6);
    expect(numLayersOf(null, ['model.embed_tokens.weight'])).toBe(0);
  });
});

describe('resolveTensorParams for a slice (mergekit planner semantics)', () => {
  const ties = fakeMethod('ties');
  // A slice as the planner hands it over: its sources as models, the recipe's top-level parameters.
  const sliceRecipe: Recipe = {
    mergeMethod: 'ties',
    models: [
      { model: 'a', parameters: { weight: 0.3, density: [{ filter: 'layers.7.', value: 0.9 }] } },
      { model: 'b', parameters: {} },
      { model: 'base', parameters: {} },
    ],
    baseModel: 'base',
    parameters: { density: 0.2, lambda: 2, weight: 0.1 },
  };
  const sliceParameters: Record<string, ParamValue> = { weight: [0, 1], lambda: [{ filter: 'mlp', value: 0.5 }] };
  const opts = (position: number) => ({
    position,
    sliceParameters,
    // Output layer 1 is made of input layers 7 (a), 3 (b), 3 (base).
    modelTensorNames: [layer(7), layer(3), layer(3)],
    sliceKeys: ['slices', 1],
  });

  it('looks a parameter up in the source, then the slice, then the top level, then the default', () => {
    const p = resolveTensorParams(sliceRecipe, ties, layer(1), 4, opts(0.25));
    expect(p.perModel[0].weight).toBe(0.3); // source
    expect(p.perModel[1].weight).toBe(0.25); // slice gradient [0, 1] at the slice position, not the layer's
    expect(p.perModel[1].density).toBe(0.2); // top level
    expect(p.global.lambda).toBe(0.5); // slice condition on the output name
    expect(p.global.normalize).toBe(true); // default
  });

  it("matches a source's filters against its input tensor's name, the globals against the output name", () => {
    const p = resolveTensorParams(sliceRecipe, ties, layer(1, 'self_attn.q_proj.weight'), 4, {
      ...opts(1),
      modelTensorNames: [layer(7, 'self_attn.q_proj.weight'), layer(3), layer(3)],
    });
    expect(p.perModel[0].density).toBe(0.9); // 'layers.7.' is in a's input name
    expect(p.global.lambda).toBe(2); // 'mlp' is not in the output name: falls through to the top level
  });

  it('names the source of a missing required parameter by its place in the slices', () => {
    const bare: Recipe = { ...sliceRecipe, parameters: {}, models: [{ model: 'a', parameters: {} }] };
    try {
      resolveTensorParams(bare, ties, layer(1), 4, { ...opts(0), sliceParameters: {} });
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(RecipeError);
      expect((e as RecipeError).path).toBe('slices[1].sources[0].parameters.weight');
    }
  });
});
