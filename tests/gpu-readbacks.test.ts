/**
 * A merge on the GPU backend reads back nothing but its outputs (issue 9): for the task-vector
 * methods every selection, norm and rescale factor stays on the device, so the only buffers mapped
 * during a merge are the staging buffers of the merged tensors' encodes, one per tensor (each
 * tensor is one chunk here). Counted by spying on GPUBuffer.prototype.mapAsync, as
 * src/gpu/ops/select.test.ts does. The outputs are compared with the CPU reference backend so the
 * count cannot pass on a merge that skipped work.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeFloats } from '../src/core/dtype.ts';
import { parseRecipe } from '../src/core/recipe/parse.ts';
import { openModel } from '../src/core/safetensors/model.ts';
import { proceduralModelTree, type LlamaShape } from '../src/core/sources/procedural.ts';
import { MemoryOutputFolder } from '../src/core/sources/memory.ts';
import type { ModelSource } from '../src/core/source.ts';
import { GpuContext } from '../src/gpu/context.ts';
import { CpuBackend } from '../src/gpu/cpu-backend.ts';
import { runMerge } from '../src/gpu/engine.ts';
import { createGpuBackend, type GpuBackend } from '../src/gpu/gpu-backend.ts';
import { methodLookup } from '../src/gpu/methods/index.ts';
import { nodeGpu } from '../src/gpu/node-gpu.ts';
import { readSafetensorsBytes } from './helpers/safetensors-file.ts';

/** Odd sizes: no tensor is a multiple of 4 or 256 elements. */
const SHAPE: LlamaShape = { hidden: 36, intermediate: 52, layers: 2, vocab: 41, heads: 4, kvHeads: 2 };

let ctx: GpuContext;
let gpu: GpuBackend;
const sources = new Map<string, ModelSource>();

beforeAll(async () => {
  ctx = await GpuContext.create(nodeGpu());
  gpu = createGpuBackend(ctx);
  for (const [i, name] of ['base', 'expert1', 'expert2', 'expert3'].entries()) {
    sources.set(name, await openModel(proceduralModelTree(name, { shape: SHAPE, expert: i }), { id: name }));
  }
});

afterAll(() => {
  gpu?.destroy();
  ctx?.destroy();
});

function recipe(method: string, params: string, extra = ''): ReturnType<typeof parseRecipe> {
  const models = ['expert1', 'expert2', 'expert3'].map((m, i) => `  - model: ${m}\n    parameters: {weight: ${0.3 + 0.2 * i}${params}}\n`).join('');
  return parseRecipe(`models:\n${models}merge_method: ${method}\nbase_model: base\n${extra}`, methodLookup, { file: `${method}.yml` });
}

/** Runs `merge` counting the buffers mapped meanwhile. */
async function countingMaps<T>(merge: () => Promise<T>): Promise<{ result: T; maps: number }> {
  const mapAsync = GPUBuffer.prototype.mapAsync;
  let maps = 0;
  GPUBuffer.prototype.mapAsync = function (this: GPUBuffer, ...args: Parameters<GPUBuffer['mapAsync']>) {
    maps++;
    return mapAsync.apply(this, args);
  };
  try {
    return { result: await merge(), maps };
  } finally {
    GPUBuffer.prototype.mapAsync = mapAsync;
  }
}

const F32 = 'dtype: float32\n';
/** [label, method, per-model parameters after weight, recipe lines]; without dtype the math is BF16-emulated. */
const CASES: [string, string, string, string][] = [
  ['task_arithmetic (BF16 math)', 'task_arithmetic', '', ''],
  ['task_arithmetic (f32)', 'task_arithmetic', '', F32],
  ['ties (BF16 math)', 'ties', ', density: 0.4', ''],
  ['ties (f32)', 'ties', ', density: 0.4', F32],
  ['dare_ties, l1 rescale (BF16 math)', 'dare_ties', ', density: 0.5', ''],
  ['dare_ties, l1 rescale (f32)', 'dare_ties', ', density: 0.5', F32],
  ['dare_linear, l1 rescale (f32)', 'dare_linear', ', density: 0.6', `parameters: {rescale_mode: l1}\n${F32}`],
  ['della, l1 rescale (f32)', 'della', ', density: 0.5, epsilon: 0.1', F32],
];

describe('GPU merges read back only their outputs', () => {
  it.each(CASES)('%s: one read-back per merged tensor, outputs as the CPU reference', async (_label, method, params, extra) => {
    const r = recipe(method, params, extra);
    const out = new MemoryOutputFolder();
    const { maps } = await countingMaps(() => runMerge({ recipe: r, sources, backend: gpu, output: out, options: { seed: 3 } }));
    const got = readSafetensorsBytes(out.files.get('model.safetensors')!);
    expect(got.size).toBeGreaterThan(10);
    expect(maps).toBe(got.size);
    expect(gpu.liveTensors).toBe(0);

    const reference = new MemoryOutputFolder();
    await runMerge({ recipe: r, sources, backend: new CpuBackend(), output: reference, options: { seed: 3 } });
    const want = readSafetensorsBytes(reference.files.get('model.safetensors')!);
    for (const [name, w] of want) {
      const g = got.get(name)!;
      expect(g.dtype, name).toBe(w.dtype);
      const a = decodeFloats(g.bytes, g.dtype as 'BF16' | 'F32');
      const b = decodeFloats(w.bytes, w.dtype as 'BF16' | 'F32');
      // BF16 outputs: one unit in the last place (2^-7 relative); F32: the device's f32 factors (1e-5).
      const rel = g.dtype === 'BF16' ? 2 ** -7 : 1e-5;
      let changed = 0;
      for (let i = 0; i < b.length; i++) {
        expect(Math.abs(a[i] - b[i]), `${name}[${i}]`).toBeLessThanOrEqual(rel * Math.abs(b[i]) + 1e-6);
        if (b[i] !== 0) changed++;
      }
      expect(changed, `${name} is not all zeros`).toBeGreaterThan(0);
    }
  });
});
