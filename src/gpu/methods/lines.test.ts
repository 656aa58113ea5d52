/**
 * LiNeS against a plain f64 reference written here from METHODS.md (not the method's code path),
 * merged through the engine on small in-memory Llama-shaped models, so the automatic alpha's
 * whole-model pass runs as it does for real checkpoints.
 * Tolerance: |got − want| <= 1e-6 + 1e-5·max|want| per tensor.
 */
import { describe, expect, it } from 'vitest';
import { parseRecipe } from '../../core/recipe/parse.ts';
import { MergeCancelledError, type MergeProgress } from '../engine.ts';
import { methodLookup } from './index.ts';
import { backendsUnderTest, makeModels, numelOf, mergeModels, type ModelValues, type TensorSpec } from './model-harness.ts';
import { expectClose } from './test-harness.ts';

const SPECS: TensorSpec[] = [
  { name: 'model.embed_tokens.weight', shape: [11, 6] },
  { name: 'model.layers.0.self_attn.q_proj.weight', shape: [6, 6] },
  { name: 'model.layers.0.input_layernorm.weight', shape: [6] },
  { name: 'model.layers.1.mlp.down_proj.weight', shape: [6, 9] },
  { name: 'model.layers.2.mlp.up_proj.weight', shape: [9, 6] },
  { name: 'model.layers.2.post_attention_layernorm.weight', shape: [6] },
  { name: 'model.norm.weight', shape: [6] },
  { name: 'lm_head.weight', shape: [11, 6] },
];

/** LiNeS in f64: λ(ℓ) = α + β·ℓ/(L−1) on `model.layers.ℓ.`, α elsewhere; α default from the L1 norms. */
function linesRef(base: ModelValues, models: ModelValues[], weights: number[], beta: number, numLayers: number, alpha?: number) {
  const T = models.length;
  const delta = (t: number, name: string) => Array.from(models[t].get(name)!, (x, i) => x - base.get(name)![i]);
  if (alpha === undefined) {
    let plain = 0;
    let weighted = 0;
    for (const s of SPECS) {
      const ds = models.map((_, t) => delta(t, s.name));
      for (let i = 0; i < numelOf(s); i++) {
        plain += Math.abs(ds.reduce((acc, d) => acc + d[i], 0));
        weighted += Math.abs(ds.reduce((acc, d, t) => acc + weights[t] * d[i], 0));
      }
    }
    alpha = weighted === 0 ? 1 / T : plain / weighted / T;
  }
  const out = new Map<string, Float64Array>();
  for (const s of SPECS) {
    const layer = /^model\.layers\.(\d+)\./.exec(s.name);
    const lambda = layer ? alpha + beta * (numLayers === 1 ? 1 : Number(layer[1]) / (numLayers - 1)) : alpha;
    const ds = models.map((_, t) => delta(t, s.name));
    out.set(s.name, Float64Array.from(base.get(s.name)!, (b, i) => b + lambda * ds.reduce((acc, d, t) => acc + weights[t] * d[i], 0)));
  }
  return { out, alpha };
}

function expectAllClose(got: Map<string, Float32Array>, want: Map<string, Float64Array>) {
  for (const s of SPECS) expectClose(got.get(s.name)!, want.get(s.name)!, 1e-5, 1e-6);
}

describe.each(backendsUnderTest())('lines ($name)', ({ get }) => {
  it('automatic alpha from the whole-model L1 norms, weighted models, beta over 3 layers', async () => {
    const { base, models } = makeModels(SPECS, 1, 3);
    const weights = [1, 0.7, 0.5];
    const { out, alpha } = linesRef(base, models, weights, 0.6, 3);
    expect(alpha).toBeGreaterThan(0.4); // not 1/T: the weights matter
    const got = await mergeModels({
      backend: get(),
      method: 'lines',
      specs: SPECS,
      base,
      models,
      numLayers: 3,
      params: '{beta: 0.6}',
      modelParams: weights.map((w) => `{weight: ${w}}`),
    });
    expectAllClose(got.tensors, out);
  });

  it('unit weights give alpha = 1/T', async () => {
    const { base, models } = makeModels(SPECS, 2, 3);
    const { out, alpha } = linesRef(base, models, [1, 1, 1], 0.5, 3);
    expect(alpha).toBeCloseTo(1 / 3, 12);
    const got = await mergeModels({ backend: get(), method: 'lines', specs: SPECS, base, models, numLayers: 3, params: '{beta: 0.5}' });
    expectAllClose(got.tensors, out);
  });

  it('reports the pass over every tensor, then the merge; each tensor is read once per pass per model', async () => {
    const { base, models } = makeModels(SPECS, 3, 2);
    const got = await mergeModels({ backend: get(), method: 'lines', specs: SPECS, base, models, numLayers: 3, params: '{beta: 0.5}' });
    const passes = got.progress.filter((p) => p.pass);
    expect(passes.map((p) => p.pass!.tensorsDone)).toEqual(SPECS.map((_, i) => i + 1));
    expect(passes.every((p) => p.pass!.label.startsWith('lines:') && p.pass!.index === 1 && p.tensorsDone === 0)).toBe(true);
    expect(got.progress.filter((p) => !p.pass).map((p) => p.tensorsDone)).toEqual(SPECS.map((_, i) => i + 1));
    expect(got.reads).toBe(2 * SPECS.length * 3);
  });

  it('cancelled during the pass: stops there and writes nothing', async () => {
    const { base, models } = makeModels(SPECS, 6, 2);
    const seen: MergeProgress[] = [];
    const run = mergeModels({
      backend: get(),
      method: 'lines',
      specs: SPECS,
      base,
      models,
      numLayers: 3,
      params: '{beta: 0.5}',
      onProgress: (p, controller) => {
        seen.push(p);
        if (p.pass?.tensorsDone === 2) controller.abort();
      },
    });
    await expect(run).rejects.toThrow(MergeCancelledError);
    expect(seen.map((p) => p.pass?.tensorsDone)).toEqual([1, 2]);
  });

  it('a given alpha skips the pass; one layer (L = 1) gets alpha + beta', async () => {
    const { base, models } = makeModels(SPECS, 4, 2);
    const got = await mergeModels({ backend: get(), method: 'lines', specs: SPECS.slice(0, 3), base, models, numLayers: 1, params: '{alpha: 0.4, beta: 0.5}' });
    expect(got.progress.some((p) => p.pass)).toBe(false);
    expect(got.reads).toBe(3 * 3);
    const d = (t: number, name: string) => Array.from(models[t].get(name)!, (x, i) => x - base.get(name)![i]);
    for (const s of SPECS.slice(0, 3)) {
      const lambda = s.name.startsWith('model.layers.') ? 0.9 : 0.4;
      const want = Float64Array.from(base.get(s.name)!, (b, i) => b + lambda * (d(0, s.name)[i] + d(1, s.name)[i]));
      expectClose(got.tensors.get(s.name)!, want, 1e-5, 1e-6);
    }
  });

  it('alpha = 1/T when the weighted task vectors cancel (‖τ_MTL‖₁ = 0)', async () => {
    const { base, models } = makeModels(SPECS, 5, 2);
    const got = await mergeModels({
      backend: get(),
      method: 'lines',
      specs: SPECS,
      base,
      models: [models[0], models[0]],
      numLayers: 3,
      params: '{beta: 0}',
      modelParams: ['{weight: 1}', '{weight: -1}'],
    });
    for (const s of SPECS) expectClose(got.tensors.get(s.name)!, base.get(s.name)!, 0, 1e-7);
  });

});

describe('lines parameters', () => {
  it('validates its parameters: beta required and >= 0, unknown names refused', () => {
    const recipe = (params: string) => `models:\n  - model: a\nmerge_method: lines\nbase_model: b\nparameters: ${params}\n`;
    expect(() => parseRecipe(recipe('{alpha: 0.3}'), methodLookup)).toThrow(/beta/);
    expect(() => parseRecipe(recipe('{beta: -0.1}'), methodLookup)).toThrow(/below the minimum 0/);
    expect(() => parseRecipe(recipe('{beta: 0.2, gamma: 1}'), methodLookup)).toThrow(/gamma/);
    expect(() => parseRecipe(recipe('{beta: 0.2}'), methodLookup)).not.toThrow();
  });
});
