/**
 * The engine's overlap of tensors (issue 9): on a backend whose `overlapsTensors` is set (the GPU),
 * runMerge issues tensor i+1's decodes (uploads and decode kernels) once tensor i's encode is issued
 * and before it resolves, keeping at most two tensors' inputs alive; on the CPU backends (flag
 * absent) every tensor is decoded, merged, encoded and written before the next is decoded. A
 * stand-in backend (a Proxy over a real one) records the order of decode and encode calls and
 * slows each encode down by a timer, as a read-back would; the outputs of both orders must be the
 * same bytes, in the same file order, non-float tensors included.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeFloats } from '../src/core/dtype.ts';
import { parseRecipe } from '../src/core/recipe/parse.ts';
import { openModel } from '../src/core/safetensors/model.ts';
import { serializeSafetensors } from '../src/core/safetensors/writer.ts';
import { memoryFileTree, MemoryOutputFolder } from '../src/core/sources/memory.ts';
import type { ModelSource } from '../src/core/source.ts';
import { createBackend } from '../src/cli/backend.ts';
import type { Backend, Tensor } from '../src/gpu/backend.ts';
import { GpuContext } from '../src/gpu/context.ts';
import { CpuBackend } from '../src/gpu/cpu-backend.ts';
import { runMerge } from '../src/gpu/engine.ts';
import { createGpuBackend, type GpuBackend } from '../src/gpu/gpu-backend.ts';
import { methodLookup } from '../src/gpu/methods/index.ts';
import { nodeGpu } from '../src/gpu/node-gpu.ts';

const MODELS = ['base', 'm1', 'm2'];
/** Float tensors of odd sizes and, in the middle, an integer tensor the engine copies. */
const FLOATS = [
  { name: 'model.embed_tokens.weight', shape: [13, 7] },
  { name: 'model.layers.0.self_attn.q_proj.weight', shape: [7, 7] },
  { name: 'model.layers.0.mlp.up_proj.weight', shape: [11, 7] },
  { name: 'model.layers.1.self_attn.q_proj.weight', shape: [7, 7] },
  { name: 'model.layers.1.mlp.up_proj.weight', shape: [11, 7] },
  { name: 'model.norm.weight', shape: [7] },
];
const COPIED = 'model.position_ids';

async function memoryModel(id: string, k: number): Promise<ModelSource> {
  const floats = FLOATS.map((s, j) => {
    const numel = s.shape.reduce((a, b) => a * b, 1);
    const values = Float32Array.from({ length: numel }, (_, i) => Math.sin(i * 0.37 + j) + 0.01 * (k + 1) * Math.cos(i * 1.3 + 7 * k));
    return { name: s.name, dtype: 'F32' as const, shape: s.shape, data: encodeFloats(values, 'F32') };
  });
  const ids = { name: COPIED, dtype: 'I64' as const, shape: [5], data: new Uint8Array(BigInt64Array.from([0n, 1n, 2n, 3n, 4n]).buffer) };
  const tensors = [...floats.slice(0, 3), ids, ...floats.slice(3)];
  const config = new TextEncoder().encode(JSON.stringify({ model_type: 'llama', num_hidden_layers: 2 }));
  return openModel(memoryFileTree(id, { 'model.safetensors': serializeSafetensors(tensors), 'config.json': config }), { id });
}

const RECIPE = parseRecipe(
  'models:\n  - model: m1\n    parameters: {weight: 0.7}\n  - model: m2\n    parameters: {weight: 0.4}\nmerge_method: task_arithmetic\nbase_model: base\ndtype: float32\nout_dtype: bfloat16\n',
  methodLookup,
);

interface Recorded {
  backend: Backend;
  /** "decode <k>" (k: the merged tensor it belongs to), "encode <k> start", "encode <k> end". */
  log: string[];
  /** Most decoded inputs alive at once. */
  maxInputs: number;
}

/** `target` behind a recorder; `overlaps` overrides its flag (undefined: the target's own). */
function recorded(target: Backend, overlaps?: boolean): Recorded {
  const rec: Recorded = { backend: target, log: [], maxInputs: 0 };
  const inputs = new Set<Tensor>();
  let decodes = 0;
  let encodes = 0;
  rec.backend = new Proxy(target, {
    get(obj, prop) {
      if (prop === 'overlapsTensors') return overlaps ?? obj.overlapsTensors;
      if (prop === 'decode') {
        return async (...args: Parameters<Backend['decode']>) => {
          rec.log.push(`decode ${Math.floor(decodes++ / MODELS.length)}`);
          const t = await obj.decode(...args);
          inputs.add(t);
          rec.maxInputs = Math.max(rec.maxInputs, inputs.size);
          return t;
        };
      }
      if (prop === 'encode') {
        return async (...args: Parameters<Backend['encode']>) => {
          const k = encodes++;
          rec.log.push(`encode ${k} start`);
          const bytes = await obj.encode(...args);
          await new Promise((resolve) => setTimeout(resolve, 5)); // a slow read-back
          rec.log.push(`encode ${k} end`);
          return bytes;
        };
      }
      if (prop === 'release') return (t: Tensor) => (inputs.delete(t), obj.release(t));
      const value = Reflect.get(obj, prop, obj);
      return typeof value === 'function' ? value.bind(obj) : value;
    },
  });
  return rec;
}

async function merge(backend: Backend): Promise<ReadonlyMap<string, Uint8Array>> {
  const sources = new Map<string, ModelSource>();
  for (const [k, id] of MODELS.entries()) sources.set(id, await memoryModel(id, k));
  const output = new MemoryOutputFolder();
  await runMerge({ recipe: RECIPE, sources, backend, output });
  return output.files;
}

/** For every merged tensor k but the last: where its encode started and ended, and tensor k+1's first decode. */
function windows(log: readonly string[]) {
  return FLOATS.slice(1).map((_, k) => ({
    start: log.indexOf(`encode ${k} start`),
    end: log.indexOf(`encode ${k} end`),
    nextDecode: log.indexOf(`decode ${k + 1}`),
  }));
}

function expectAllPresent(log: readonly string[]) {
  for (const [k] of FLOATS.entries()) {
    expect(log.filter((e) => e === `decode ${k}`)).toHaveLength(MODELS.length);
    expect(log).toContain(`encode ${k} end`);
  }
  expect(log).not.toContain(`decode ${FLOATS.length}`);
}

describe('runMerge overlaps tensors only where the backend says so', () => {
  it('issues tensor i+1 decodes before tensor i encode resolves (overlapsTensors), two tensors inputs at most, same bytes', async () => {
    const overlapping = recorded(new CpuBackend(), true);
    const sequential = recorded(new CpuBackend(), false);
    const a = await merge(overlapping.backend);
    const b = await merge(sequential.backend);
    expectAllPresent(overlapping.log);
    for (const w of windows(overlapping.log)) {
      expect(w.start).toBeLessThan(w.nextDecode); // issued after tensor i's encode is issued...
      expect(w.nextDecode).toBeLessThan(w.end); // ...and before it resolves
    }
    expect(overlapping.maxInputs).toBe(2 * MODELS.length);
    expect([...a.keys()]).toEqual([...b.keys()]);
    for (const [file, bytes] of b) expect(a.get(file), file).toEqual(bytes);
    expect(a.get('model.safetensors')!.byteLength).toBeGreaterThan(0);
  });

  it('keeps one tensor at a time on the CPU backends (flag absent): each encode resolves before the next decode', async () => {
    const reference: Backend = new CpuBackend();
    const fast = await createBackend('cpu', { threads: 1 });
    try {
      expect(reference.overlapsTensors).toBeFalsy();
      expect(fast.overlapsTensors).toBeFalsy();
      for (const target of [reference, fast]) {
        const rec = recorded(target);
        await merge(rec.backend);
        expectAllPresent(rec.log);
        for (const w of windows(rec.log)) expect(w.end).toBeLessThan(w.nextDecode);
        expect(rec.maxInputs).toBe(MODELS.length);
      }
    } finally {
      reference.destroy();
      fast.destroy();
    }
  });
});

describe('runMerge on the GPU backend', () => {
  let ctx: GpuContext;
  let gpu: GpuBackend;
  beforeAll(async () => {
    ctx = await GpuContext.create(nodeGpu());
    gpu = createGpuBackend(ctx);
  });
  afterAll(() => {
    gpu?.destroy();
    ctx?.destroy();
  });

  it('overlaps tensors (the flag is set) and writes the same bytes as one tensor at a time', async () => {
    expect(gpu.overlapsTensors).toBe(true);
    const overlapping = recorded(gpu);
    const a = await merge(overlapping.backend);
    for (const w of windows(overlapping.log)) expect(w.nextDecode).toBeLessThan(w.end);
    const b = await merge(recorded(gpu, false).backend);
    for (const [file, bytes] of b) expect(a.get(file), file).toEqual(bytes);
    expect(gpu.liveTensors).toBe(0);
  });
});
