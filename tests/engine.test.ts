/**
 * The merge engine on constructed in-memory models: non-float tensors copied from the base,
 * embeddings of a larger vocabulary cut to the base's rows, progress that only grows, cancellation
 * that leaves nothing, and input errors that name tensor and model.
 */
import { describe, expect, it } from 'vitest';
import { decodeFloats, encodeFloats } from '../src/core/dtype.ts';
import { parseRecipe } from '../src/core/recipe/parse.ts';
import { openModel } from '../src/core/safetensors/model.ts';
import { serializeSafetensors } from '../src/core/safetensors/writer.ts';
import { memoryFileTree, MemoryOutputFolder } from '../src/core/sources/memory.ts';
import type { ModelSource } from '../src/core/source.ts';
import { CpuBackend } from '../src/gpu/cpu-backend.ts';
import { MergeCancelledError, MergeInputError, planMerge, runMerge, type MergeProgress } from '../src/gpu/engine.ts';
import { methodLookup } from '../src/gpu/methods/index.ts';
import { readSafetensorsBytes } from './helpers/safetensors-file.ts';

type Spec = { name: string; dtype: 'F32' | 'I64'; shape: number[]; values: number[] };

async function model(id: string, specs: Spec[]): Promise<ModelSource> {
  const tensors = specs.map((s) => ({
    name: s.name,
    dtype: s.dtype,
    shape: s.shape,
    data:
      s.dtype === 'F32'
        ? encodeFloats(Float32Array.from(s.values), 'F32')
        : new Uint8Array(BigInt64Array.from(s.values.map(BigInt)).buffer),
  }));
  const config = new TextEncoder().encode(JSON.stringify({ model_type: 'llama', num_hidden_layers: 1 }));
  return openModel(memoryFileTree(id, { 'model.safetensors': serializeSafetensors(tensors), 'config.json': config }), { id });
}

const LINEAR = parseRecipe(
  'models:\n  - model: a\n    parameters: {weight: 1}\n  - model: b\n    parameters: {weight: 3}\nmerge_method: linear\nbase_model: a\n',
  methodLookup,
);

describe('runMerge', () => {
  it('merges floats, copies integer tensors from the base, and cuts a larger vocabulary to the base rows', async () => {
    const a = await model('a', [
      { name: 'model.embed_tokens.weight', dtype: 'F32', shape: [2, 2], values: [1, 2, 3, 4] },
      { name: 'position_ids', dtype: 'I64', shape: [3], values: [0, 1, 2] },
    ]);
    const b = await model('b', [
      { name: 'model.embed_tokens.weight', dtype: 'F32', shape: [3, 2], values: [5, 6, 7, 8, 9, 9] },
      { name: 'position_ids', dtype: 'I64', shape: [3], values: [7, 7, 7] },
    ]);
    const sources = new Map([['a', a], ['b', b]]);
    const plan = planMerge(LINEAR, sources);
    expect(plan.notes.join()).toMatch(/embed_tokens.*3 rows.*first 2/);
    const out = new MemoryOutputFolder();
    const seen: MergeProgress[] = [];
    await runMerge({ recipe: LINEAR, sources, backend: new CpuBackend(), output: out, options: { onProgress: (p) => seen.push(p) } });
    const files = readSafetensorsBytes(out.files.get('model.safetensors')!);
    // (1·a + 3·b) / 4 over the first two rows of b
    expect(Array.from(decodeFloats(files.get('model.embed_tokens.weight')!.bytes, 'F32'))).toEqual([4, 5, 6, 7]);
    expect(files.get('model.embed_tokens.weight')!.shape).toEqual([2, 2]);
    expect(Array.from(new BigInt64Array(files.get('position_ids')!.bytes.slice().buffer))).toEqual([0n, 1n, 2n]);
    expect(seen.map((p) => p.tensorsDone)).toEqual([1, 2]);
    expect(seen.every((p, i) => i === 0 || p.bytesDone >= seen[i - 1].bytesDone)).toBe(true);
    expect(seen.at(-1)!.bytesDone).toBe(seen.at(-1)!.bytesTotal);
    expect([...out.files.keys()].sort()).toEqual(['README.md', 'config.json', 'mergekit_config.yml', 'model.safetensors']);
  });

  it('casts inputs through the recipe dtype before the math (F32 inputs, dtype bfloat16, out float32)', async () => {
    const recipe = parseRecipe(
      'models:\n  - model: a\n    parameters: {weight: 1}\n  - model: b\n    parameters: {weight: 1}\n' +
        'merge_method: linear\ndtype: bfloat16\nout_dtype: float32\n',
      methodLookup,
    );
    // 1.001 and 3.0039 are not BF16 values: rounded first they are 1 and 3, whose mean is exactly 2.
    const a = await model('a', [{ name: 'w', dtype: 'F32', shape: [2], values: [1.001, -1.001] }]);
    const b = await model('b', [{ name: 'w', dtype: 'F32', shape: [2], values: [3.0039, -3.0039] }]);
    const out = new MemoryOutputFolder();
    await runMerge({ recipe, sources: new Map([['a', a], ['b', b]]), backend: new CpuBackend(), output: out });
    const w = readSafetensorsBytes(out.files.get('model.safetensors')!).get('w')!;
    expect(w.dtype).toBe('F32');
    expect(Array.from(decodeFloats(w.bytes, 'F32'))).toEqual([2, -2]);
  });

  it('names the tensor and the model when a tensor is missing or shapes differ', async () => {
    const a = await model('a', [{ name: 'w', dtype: 'F32', shape: [2], values: [1, 2] }]);
    const missing = await model('b', [{ name: 'v', dtype: 'F32', shape: [2], values: [1, 2] }]);
    expect(() => planMerge(LINEAR, new Map([['a', a], ['b', missing]]))).toThrow(/tensor w is missing from model b/);
    const wrong = await model('b', [{ name: 'w', dtype: 'F32', shape: [3], values: [1, 2, 3] }]);
    expect(() => planMerge(LINEAR, new Map([['a', a], ['b', wrong]]))).toThrow(MergeInputError);
    expect(() => planMerge(LINEAR, new Map([['a', a], ['b', wrong]]))).toThrow(/tensor w: shape \[3\] in b does not match \[2\] in a/);
  });

  it('stops when cancelled and commits nothing', async () => {
    const specs = (k: number): Spec[] =>
      Array.from({ length: 5 }, (_, i) => ({ name: `t${i}`, dtype: 'F32' as const, shape: [4], values: [k, k, k, k] }));
    const sources = new Map([['a', await model('a', specs(1))], ['b', await model('b', specs(2))]]);
    const out = new MemoryOutputFolder();
    const controller = new AbortController();
    const run = runMerge({
      recipe: LINEAR,
      sources,
      backend: new CpuBackend(),
      output: out,
      options: { signal: controller.signal, onProgress: (p) => p.tensorsDone === 2 && controller.abort() },
    });
    await expect(run).rejects.toThrow(MergeCancelledError);
    expect(out.files.size).toBe(0);
  });

  it('refuses a method that needs a base when the recipe has none', async () => {
    const recipe = parseRecipe('models:\n  - model: a\n    parameters: {weight: 1}\nmerge_method: task_arithmetic\n', methodLookup);
    const a = await model('a', [{ name: 'w', dtype: 'F32', shape: [2], values: [1, 2] }]);
    expect(() => planMerge(recipe, new Map([['a', a]]))).toThrow(/task_arithmetic needs a base_model/);
  });
});
