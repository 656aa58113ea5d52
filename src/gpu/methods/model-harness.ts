/**
 * Test support for whole-model methods (imported by *.test.ts only): small in-memory models merged
 * through the engine (runMerge, with its `prepare` passes), the output read back as f32 values, and
 * the progress reports kept. Tensors are given as plain arrays; every model shares names and shapes.
 */
import { decodeFloats, encodeFloats } from '../../core/dtype.ts';
import { parseRecipe } from '../../core/recipe/parse.ts';
import { openModel } from '../../core/safetensors/model.ts';
import { serializeSafetensors } from '../../core/safetensors/writer.ts';
import { memoryFileTree, MemoryOutputFolder } from '../../core/sources/memory.ts';
import type { ModelSource } from '../../core/source.ts';
import { readSafetensorsBytes } from '../../../tests/helpers/safetensors-file.ts';
import { afterAll, beforeAll, expect } from 'vitest';
import type { Backend } from '../backend.ts';
import { GpuContext } from '../context.ts';
import { CpuBackend } from '../cpu-backend.ts';
import { createGpuBackend } from '../gpu-backend.ts';
import { nodeGpu } from '../node-gpu.ts';
import { runMerge, type MergeProgress } from '../engine.ts';
import { methodLookup } from './index.ts';
import { fineTune, randomValues, seeded } from './test-harness.ts';

export interface TensorSpec {
  name: string;
  shape: number[];
}

/** One model: values per tensor name. */
export type ModelValues = ReadonlyMap<string, Float32Array>;

/** Elements of a tensor of `spec`'s shape. */
export const numelOf = (spec: TensorSpec) => spec.shape.reduce((a, b) => a * b, 1);

/**
 * A random base over `specs` (values of scale `baseScale`) and `count` fine-tunes of it, the k-th
 * (from 0) perturbed at scale `step`·(k + 1); the same models for the same seed.
 */
export function makeModels(
  specs: readonly TensorSpec[],
  seed: number,
  count: number,
  { baseScale = 1, step = 0.05 }: { baseScale?: number; step?: number } = {},
): { base: Map<string, Float32Array>; models: Map<string, Float32Array>[] } {
  const rand = seeded(seed);
  const base = new Map(specs.map((s) => [s.name, randomValues(numelOf(s), rand, baseScale)]));
  const models = Array.from({ length: count }, (_, k) => new Map(specs.map((s) => [s.name, fineTune(base.get(s.name)!, rand, step * (k + 1))])));
  return { base, models };
}

async function memoryModel(id: string, specs: readonly TensorSpec[], values: ModelValues, numLayers: number): Promise<ModelSource> {
  const tensors = specs.map((s) => ({ name: s.name, dtype: 'F32' as const, shape: s.shape, data: encodeFloats(values.get(s.name)!, 'F32') }));
  const config = new TextEncoder().encode(JSON.stringify({ model_type: 'llama', num_hidden_layers: numLayers }));
  return openModel(memoryFileTree(id, { 'model.safetensors': serializeSafetensors(tensors), 'config.json': config }), { id });
}

export interface ModelMerge {
  method: string;
  specs: readonly TensorSpec[];
  base: ModelValues;
  models: readonly ModelValues[];
  /** YAML for the top-level `parameters:` mapping, e.g. `{beta: 0.5}`. */
  params?: string;
  /** YAML for each model's `parameters:` mapping. */
  modelParams?: readonly (string | undefined)[];
  numLayers?: number;
  backend?: Backend;
  /** Called with every progress report (e.g. to cancel through `controller`). */
  onProgress?: (p: MergeProgress, controller: AbortController) => void;
}

export interface ModelMergeResult {
  tensors: Map<string, Float32Array>;
  progress: MergeProgress[];
  /** Times each model's tensors were read (passes + merge). */
  reads: number;
}

/** Merge in-memory models (`base`, `m0`, `m1`, …) with runMerge and return the output values. */
export async function mergeModels(spec: ModelMerge): Promise<ModelMergeResult> {
  const numLayers = spec.numLayers ?? 4;
  const sources = new Map<string, ModelSource>();
  let reads = 0;
  const counted = (m: ModelSource): ModelSource => ({
    id: m.id,
    tree: m.tree,
    tensors: m.tensors,
    config: m.config,
    metadata: m.metadata,
    readTensor: (name, signal) => ((reads += 1), m.readTensor(name, signal)),
    readTensorRange: (name, offset, length, signal) => ((reads += 1), m.readTensorRange(name, offset, length, signal)),
  });
  sources.set('base', counted(await memoryModel('base', spec.specs, spec.base, numLayers)));
  for (let i = 0; i < spec.models.length; i++) sources.set(`m${i}`, counted(await memoryModel(`m${i}`, spec.specs, spec.models[i], numLayers)));
  const modelLines = spec.models
    .map((_, i) => `  - model: m${i}\n` + (spec.modelParams?.[i] ? `    parameters: ${spec.modelParams[i]}\n` : ''))
    .join('');
  const yaml = `models:\n${modelLines}merge_method: ${spec.method}\nbase_model: base\n` + (spec.params ? `parameters: ${spec.params}\n` : '');
  const recipe = parseRecipe(yaml, methodLookup);
  const out = new MemoryOutputFolder();
  const progress: MergeProgress[] = [];
  const backend = spec.backend ?? new CpuBackend();
  const controller = new AbortController();
  const onProgress = (p: MergeProgress) => {
    progress.push(structuredClone(p));
    spec.onProgress?.(p, controller);
  };
  try {
    await runMerge({ recipe, sources, backend, output: out, options: { onProgress, signal: controller.signal } });
  } finally {
    // A failed or cancelled merge commits nothing.
    if (!out.files.has('model.safetensors')) expect(out.files.size).toBe(0);
  }
  const files = readSafetensorsBytes(out.files.get('model.safetensors')!);
  const tensors = new Map<string, Float32Array>();
  for (const [name, t] of files) tensors.set(name, decodeFloats(t.bytes, 'F32'));
  return { tensors, progress, reads };
}

/**
 * The backends a method test runs on: the CPU reference, and the GPU (Node's Dawn) with tensors
 * split into chunks of `chunkElements` (several buffers per tensor). Call at the top of a describe;
 * `get()` is valid inside tests. One device per file, destroyed after it.
 */
export function backendsUnderTest(chunkElements = 50): { name: string; get: () => Backend }[] {
  let ctx: GpuContext | undefined;
  let gpu: Backend | undefined;
  beforeAll(async () => {
    ctx = await GpuContext.create(nodeGpu());
    gpu = createGpuBackend(ctx, { maxChunkElements: chunkElements });
  });
  afterAll(() => {
    gpu?.destroy();
    ctx?.destroy();
  });
  return [
    { name: 'cpu', get: () => new CpuBackend() },
    { name: `gpu (chunks of ${chunkElements})`, get: () => gpu! },
  ];
}
