/**
 * Test support for the analysis (imported by *.test.ts only): small in-memory checkpoints with
 * chosen task vectors, and recipes over them.
 */
import type { Recipe, RecipeModel } from '../../core/recipe/types.ts';
import { openModel } from '../../core/safetensors/model.ts';
import { serializeSafetensors } from '../../core/safetensors/writer.ts';
import type { ModelSource } from '../../core/source.ts';
import { memoryFileTree } from '../../core/sources/memory.ts';
import { seeded } from '../../../tests/helpers/seeded.ts';
export { seeded };

/** Tensors of the toy checkpoints: two layers (attention, MLP, norm each) and a final norm. */
export const TOY_TENSORS: { name: string; shape: number[] }[] = [
  { name: 'model.embed_tokens.weight', shape: [5, 6] },
  { name: 'model.layers.0.self_attn.q_proj.weight', shape: [6, 6] },
  { name: 'model.layers.0.mlp.up_proj.weight', shape: [7, 6] },
  { name: 'model.layers.0.input_layernorm.weight', shape: [6] },
  { name: 'model.layers.1.self_attn.q_proj.weight', shape: [6, 6] },
  { name: 'model.layers.1.mlp.up_proj.weight', shape: [7, 6] },
  { name: 'model.layers.1.input_layernorm.weight', shape: [6] },
  { name: 'model.norm.weight', shape: [6] },
];

export const numelOf = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);


/** Values for every toy tensor, from `value(tensorIndex, elementIndex)`. */
export type ToyValues = (tensor: number, element: number) => number;

/** An F32 checkpoint of the toy tensors opened as a ModelSource with id `id`. */
export async function toyModel(id: string, value: ToyValues, tensors = TOY_TENSORS): Promise<ModelSource> {
  const bytes = serializeSafetensors(
    tensors.map((t, k) => {
      const data = Float32Array.from({ length: numelOf(t.shape) }, (_, e) => value(k, e));
      return { name: t.name, dtype: 'F32' as const, shape: t.shape, data: new Uint8Array(data.buffer) };
    }),
  );
  const config = new TextEncoder().encode(JSON.stringify({ model_type: 'llama', num_hidden_layers: 2 }));
  return openModel(memoryFileTree(id, { 'model.safetensors': bytes, 'config.json': config }), { id });
}

/** Base weights of the toy models: nonzero everywhere, mixed signs. */
export const toyBase: ToyValues = (k, e) => Math.fround(0.5 + 0.1 * k - 0.03 * e) || 0.25;

/** A task vector with no zero entries (deterministic, mixed signs and magnitudes). */
export function toyDelta(seed: number): ToyValues {
  return (k, e) => {
    const r = seeded(seed * 1000 + k * 97 + e)();
    const v = (r - 0.5) * 0.2;
    return v === 0 ? 0.01 : v;
  };
}

/** base + δ, rounded to f32 once (so δ recovered as x − base is what the test expects up to f32 rounding). */
export function plus(base: ToyValues, delta: ToyValues): ToyValues {
  return (k, e) => Math.fround(base(k, e) + delta(k, e));
}

export function recipeOf(method: string, models: { ref: string; params?: RecipeModel['parameters'] }[], opts: Partial<Recipe> = {}): Recipe {
  return {
    mergeMethod: method,
    models: models.map((m) => ({ model: m.ref, parameters: m.params ?? {} })),
    baseModel: 'base',
    parameters: {},
    ...opts,
  };
}

export function sourcesOf(models: readonly ModelSource[]): Map<string, ModelSource> {
  return new Map(models.map((m) => [m.id, m]));
}
