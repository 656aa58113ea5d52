/**
 * The slices planner on the golden checkpoints (4 layers each): which input layer feeds each output
 * layer, at which gradient position; a frankenmerge with repeated and reordered layers written
 * through the engine (each output tensor equals its input bytes; config and model card follow);
 * and the recipes it refuses, each named by slice.
 */
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openLocalModel } from '../../cli/open-models.ts';
import { parseRecipe } from '../../core/recipe/parse.ts';
import type { ModelSource } from '../../core/source.ts';
import { MemoryOutputFolder } from '../../core/sources/memory.ts';
import { readSafetensorsBytes } from '../../../tests/helpers/safetensors-file.ts';
import { CpuBackend } from '../cpu-backend.ts';
import { planMerge, runMerge } from '../engine.ts';
import { getMethod, methodLookup } from '../methods/index.ts';
import { planSlices, SlicesPlanError, withLayerCount } from './slices.ts';

const MODELS = resolve(__dirname, '../../../tests/fixtures/golden/models/llama-f32');

async function open(...names: string[]): Promise<Map<string, ModelSource>> {
  const sources = new Map<string, ModelSource>();
  for (const n of names) sources.set(n, await openLocalModel(join(MODELS, n)));
  return sources;
}

const FRANKEN = `slices:
  - sources: [{model: expert1, layer_range: [2, 4]}]
  - sources: [{model: expert2, layer_range: [0, 2]}]
  - sources: [{model: expert1, layer_range: [1, 3]}]
merge_method: passthrough
`;

describe('planSlices', () => {
  it('feeds output layers from the slices in order: repeated and reordered input layers, embeddings first, head last', async () => {
    const sources = await open('expert1', 'expert2');
    const recipe = parseRecipe(FRANKEN, methodLookup);
    const plan = planSlices(recipe, sources, getMethod('passthrough'));
    expect(plan.numLayers).toBe(6);
    const feeds = (name: string) => {
      const t = plan.tensors.find((x) => x.name === name)!;
      return [t.inputs.models.map((m) => m.id.split('/').pop()), t.inputs.tensors, t.inputs.slice.position];
    };
    const q = (k: number) => `model.layers.${k}.self_attn.q_proj.weight`;
    expect(feeds(q(0))).toEqual([['expert1'], [q(2)], 0]);
    expect(feeds(q(1))).toEqual([['expert1'], [q(3)], 1]);
    expect(feeds(q(2))).toEqual([['expert2'], [q(0)], 0]);
    expect(feeds(q(4))).toEqual([['expert1'], [q(1)], 0]);
    expect(feeds(q(5))).toEqual([['expert1'], [q(2)], 1]);
    expect(feeds('model.embed_tokens.weight')).toEqual([['expert1'], ['model.embed_tokens.weight'], 0]);
    expect(feeds('lm_head.weight')).toEqual([['expert1'], ['lm_head.weight'], 0]);
    expect(feeds('model.norm.weight')).toEqual([['expert1'], ['model.norm.weight'], 0]);
    const names = plan.tensors.map((t) => t.name);
    expect(names[0]).toBe('model.embed_tokens.weight');
    expect(names.filter((n) => n.includes('.layers.')).length).toBe(6 * 9);
    expect(new Set(names).size).toBe(names.length);
    expect(plan.config?.num_hidden_layers).toBe(6);
  });

  it('gives layer i of an n-layer slice the position i/(n−1), restarting per slice, 1 for a one-layer slice', async () => {
    const sources = await open('expert1', 'expert2');
    const recipe = parseRecipe(
      `slices:
  - sources: [{model: expert1, layer_range: [0, 4]}, {model: expert2, layer_range: [0, 4]}]
  - sources: [{model: expert1, layer_range: [3, 4]}, {model: expert2, layer_range: [1, 2]}]
merge_method: slerp
base_model: expert1
parameters: {t: 0.5}
`,
      methodLookup,
    );
    const plan = planSlices(recipe, sources, getMethod('slerp'));
    const at = (k: number) => plan.tensors.find((t) => t.name === `model.layers.${k}.mlp.up_proj.weight`)!.inputs;
    expect([0, 1, 2, 3, 4].map((k) => at(k).slice.position)).toEqual([0, 1 / 3, 2 / 3, 1, 1]);
    // Sources of one slice may start at different input layers.
    expect(at(4).tensors).toEqual(['model.layers.3.mlp.up_proj.weight', 'model.layers.1.mlp.up_proj.weight']);
    expect(at(4).base?.id).toContain('expert1');
  });

  it.each([
    ['a layer range past the model', 'slices:\n  - sources: [{model: expert1, layer_range: [2, 5]}]\nmerge_method: passthrough\n', /slices\[0\]\.sources\[0\]\.layer_range: \[2, 5\] goes past the 4 layers of .*expert1/],
    [
      'a base that is not a source of its slice',
      'slices:\n  - sources: [{model: expert1, layer_range: [0, 4]}, {model: expert2, layer_range: [0, 4]}]\nmerge_method: slerp\nbase_model: base\nparameters: {t: 0.5}\n',
      /slices\[0\]: the base model "base" is not one of the slice's sources/,
    ],
    [
      'too many sources for the method',
      'slices:\n  - sources: [{model: expert1, layer_range: [0, 4]}, {model: expert2, layer_range: [0, 4]}]\nmerge_method: passthrough\n',
      /slices\[0\]: passthrough takes exactly 1 sources per slice, this one has 2/,
    ],
    ['a whole-model method', 'slices:\n  - sources: [{model: expert1, layer_range: [0, 4]}]\nmerge_method: lines\nbase_model: expert1\nparameters: {beta: 1}\n', /lines runs passes over whole models/],
  ])('refuses %s', async (_, yaml, message) => {
    const sources = await open('expert1', 'expert2', 'base');
    const recipe = parseRecipe(yaml, methodLookup);
    expect(() => planSlices(recipe, sources, getMethod(recipe.mergeMethod))).toThrow(SlicesPlanError);
    expect(() => planSlices(recipe, sources, getMethod(recipe.mergeMethod))).toThrow(message);
  });

  it('sets every layer-count key a config has, adding num_hidden_layers when it has none', () => {
    expect(withLayerCount({ num_hidden_layers: 4, n_layer: 4, hidden_size: 8 }, 6)).toEqual({ num_hidden_layers: 6, n_layer: 6, hidden_size: 8 });
    expect(withLayerCount({ text_config: { num_hidden_layers: 4 } }, 2)).toEqual({ text_config: { num_hidden_layers: 2 } });
    expect(withLayerCount({ hidden_size: 8 }, 3)).toEqual({ hidden_size: 8, num_hidden_layers: 3 });
    expect(withLayerCount(null, 3)).toBeNull();
  });
});

describe('a frankenmerge through the engine', () => {
  it('writes each output layer as the bytes of the input layer that feeds it, with config and card', async () => {
    const sources = await open('expert1', 'expert2');
    const recipe = parseRecipe(FRANKEN, methodLookup);
    const out = new MemoryOutputFolder();
    await runMerge({ recipe, sources, backend: new CpuBackend(), output: out });
    const merged = readSafetensorsBytes(out.files.get('model.safetensors')!);
    const plan = planMerge(recipe, sources);
    expect(merged.size).toBe(plan.tensors.length);
    for (const t of plan.tensors) {
      const from = t.inputs!.models[0];
      const want = await from.readTensor(t.inputs!.tensors[0]);
      expect(Buffer.from(merged.get(t.name)!.bytes).equals(Buffer.from(want)), t.name).toBe(true);
    }
    const config = JSON.parse(new TextDecoder().decode(out.files.get('config.json')!)) as Record<string, unknown>;
    expect(config.num_hidden_layers).toBe(6);
    const card = new TextDecoder().decode(out.files.get('README.md')!);
    expect(card).toContain('| 0–1 | `expert1` 2–3 |');
    expect(card).toContain('| 2–3 | `expert2` 0–1 |');
    expect(card).toContain('| 4–5 | `expert1` 1–2 |');
    expect(new TextDecoder().decode(out.files.get('mergekit_config.yml')!)).toContain('layer_range: [2, 4]');
  });
});
