/**
 * Which backend is faster on this machine, measured: the same small analysis (TIES over three
 * synthetic experts, a few Llama-shaped tensors) on each backend, timed as a slider move re-runs it
 * in the worker (model statistics cached, inputs resident, one expert's density changed): what a
 * user waits for most often. The studio runs it where the GPU is a software adapter (its shaders
 * run on the CPU, so either may win) and remembers the answer per adapter.
 */
import { openModel } from '../../core/safetensors/model.ts';
import { serializeSafetensors } from '../../core/safetensors/writer.ts';
import type { ModelSource } from '../../core/source.ts';
import { memoryFileTree } from '../../core/sources/memory.ts';
import type { Recipe } from '../../core/recipe/types.ts';
import { analyzeMerge } from '../../gpu/analysis/analyze.ts';
import { AnalysisCache, ResidentTensors } from '../../gpu/analysis/cache.ts';
import type { AnalysisOps } from '../../gpu/analysis/ops.ts';

/**
 * Tensors of each synthetic model: a Llama layer and the tensors around it, small (19 k parameters)
 * but as many as a small model has per layer, since a software adapter's cost is mostly per tensor
 * (dispatches, readbacks) and the CPU's mostly per element.
 */
const SHAPES: readonly { name: string; shape: number[] }[] = [
  { name: 'model.embed_tokens.weight', shape: [97, 32] },
  ...['q_proj', 'k_proj', 'v_proj', 'o_proj'].map((p) => ({ name: `model.layers.0.self_attn.${p}.weight`, shape: [32, 32] })),
  { name: 'model.layers.0.mlp.gate_proj.weight', shape: [86, 32] },
  { name: 'model.layers.0.mlp.up_proj.weight', shape: [86, 32] },
  { name: 'model.layers.0.mlp.down_proj.weight', shape: [32, 86] },
  { name: 'model.layers.0.input_layernorm.weight', shape: [32] },
  { name: 'model.layers.0.post_attention_layernorm.weight', shape: [32] },
  { name: 'model.norm.weight', shape: [32] },
  { name: 'lm_head.weight', shape: [97, 32] },
];

/** Deterministic values in (−0.1, 0.1) (xorshift), so every run times the same work. */
function values(numel: number, seed: number): Float32Array {
  const out = new Float32Array(numel);
  let s = seed * 2654435761 || 1;
  for (let i = 0; i < numel; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = ((s >>> 0) / 4294967296 - 0.5) * 0.2;
  }
  return out;
}

async function syntheticModel(id: string, seed: number): Promise<ModelSource> {
  const bytes = serializeSafetensors(
    SHAPES.map((t, k) => {
      const data = values(t.shape.reduce((a, b) => a * b, 1), seed * 31 + k + 1);
      return { name: t.name, dtype: 'F32' as const, shape: t.shape, data: new Uint8Array(data.buffer) };
    }),
  );
  const config = new TextEncoder().encode(JSON.stringify({ model_type: 'llama', num_hidden_layers: 1 }));
  return openModel(memoryFileTree(id, { 'model.safetensors': bytes, 'config.json': config }), { id });
}

/** TIES over the three experts; `density` is the first one's (the slider). */
function recipe(density: number): Recipe {
  return {
    mergeMethod: 'ties',
    baseModel: 'base',
    models: ['a', 'b', 'c'].map((model, i) => ({ model, parameters: { weight: 1 - 0.2 * i, density: i === 0 ? density : 0.4 + 0.1 * i } })),
    parameters: {},
  };
}

let models: Promise<Map<string, ModelSource>> | null = null;

/**
 * Milliseconds of a slider's re-run of the synthetic set's analysis on `ops`: an untimed run fills
 * the worker's caches (and builds pipelines), then the first expert's density moves. The resident
 * tensors are released after.
 */
export async function timeAnalysis(ops: AnalysisOps, now: () => number = () => performance.now()): Promise<number> {
  models ??= Promise.all(['base', 'a', 'b', 'c'].map((id, i) => syntheticModel(id, i))).then((list) => new Map(list.map((m) => [m.id, m])));
  const sources = await models;
  const options = { cache: new AnalysisCache(), resident: new ResidentTensors(ops.backend) };
  try {
    await analyzeMerge({ recipe: recipe(0.5), sources, ops, options });
    const t0 = now();
    await analyzeMerge({ recipe: recipe(0.3), sources, ops, options });
    return now() - t0;
  } finally {
    options.resident.clear();
  }
}
