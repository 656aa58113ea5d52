/**
 * LoRA extraction: a PEFT adapter that turns `base` into (approximately) `model`. For each linear
 * module (a 2-D float `*.weight` inside the layers, the same shape in both models), the difference
 * D = W_model − W_base [out, in] is factored by truncated SVD (src/gpu/linalg/svd.ts) on the backend,
 * D ≈ U_k·S_k·V_kᵀ with k = min(rank, out, in); the adapter stores B = U_k·S_k [out, k] and
 * A = V_kᵀ [k, in] with lora_alpha = r, so PEFT's scale is 1 and W_base + B·A reproduces W_model up to
 * the discarded singular values (exactly, within f32 rounding, at full rank). The relative error
 * ‖D − B·A‖_F / ‖D‖_F is measured per module from the factors actually written.
 *
 * Modules whose full rank is below `rank` (grouped-query k/v projections) get their own r through
 * PEFT's rank_pattern and alpha_pattern. Tensors a LoRA cannot carry (norms, embeddings, LM head)
 * that differ between the models are reported, not silently dropped.
 */
import { isFloatDType, type FloatDType } from '../../core/dtype.ts';
import { layerIndexOf } from '../../core/recipe/resolve.ts';
import { SafetensorsModelWriter, SINGLE_FILE_NAME, type OutputFolder, type OutputTensorSpec } from '../../core/safetensors/writer.ts';
import type { ModelSource, TensorInfo } from '../../core/source.ts';
import { isEmbeddingName } from '../../core/tensor-names.ts';
import type { Backend, Tensor } from '../backend.ts';
import { frobeniusSquared } from '../linalg/host.ts';
import { truncatedSvd } from '../linalg/svd.ts';

export const ADAPTER_WEIGHTS = 'adapter_model.safetensors';

export interface ExtractLoraOptions {
  model: ModelSource;
  base: ModelSource;
  rank: number;
  backend: Backend;
  output: OutputFolder;
  /** Written as base_model_name_or_path. */
  baseName: string;
  signal?: AbortSignal;
  onModule?: (report: ModuleReport, done: number, total: number) => void;
}

export interface ModuleReport {
  /** The module, e.g. model.layers.0.self_attn.q_proj. */
  module: string;
  shape: [number, number];
  /** Rank of its factors: min(rank, out, in). */
  rank: number;
  /** ‖D − B·A‖_F / ‖D‖_F (0 when the module did not change). */
  relativeError: number;
}

export interface ExtractLoraResult {
  modules: ModuleReport[];
  /** Tensors outside the linear modules that differ: ‖x − b‖_F / ‖b‖_F (not in the adapter). */
  notCaptured: { tensor: string; relativeChange: number }[];
  files: string[];
}

export class LoraExtractError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LoraExtractError';
  }
}

/** The linear modules a LoRA can adapt: 2-D float weights inside the layers, not vocabulary tables. */
export function loraTargets(model: ModelSource, base: ModelSource): TensorInfo[] {
  const out: TensorInfo[] = [];
  for (const info of base.tensors.values()) {
    if (info.shape.length !== 2 || !isFloatDType(info.dtype) || !info.name.endsWith('.weight')) continue;
    if (layerIndexOf(info.name) === undefined || isEmbeddingName(info.name)) continue;
    const other = model.tensors.get(info.name);
    if (!other || other.shape.join() !== info.shape.join() || !isFloatDType(other.dtype)) continue;
    out.push(info);
  }
  return out;
}

export async function extractLora(opts: ExtractLoraOptions): Promise<ExtractLoraResult> {
  const { model, base, backend, rank, output, signal } = opts;
  if (!Number.isInteger(rank) || rank < 1) throw new LoraExtractError(`rank must be a positive integer, got ${rank}`);
  const targets = loraTargets(model, base);
  if (targets.length === 0) throw new LoraExtractError(`${model.id} and ${base.id} share no linear layer weights (2-D *.weight tensors in layers.<k>.)`);
  const moduleOf = (name: string) => name.slice(0, -'.weight'.length);
  const rankOf = (info: TensorInfo) => Math.min(rank, info.shape[0], info.shape[1]);
  const specs: OutputTensorSpec[] = targets.flatMap((info) => [
    { name: `base_model.model.${moduleOf(info.name)}.lora_A.weight`, dtype: 'F32' as const, shape: [rankOf(info), info.shape[1]] },
    { name: `base_model.model.${moduleOf(info.name)}.lora_B.weight`, dtype: 'F32' as const, shape: [info.shape[0], rankOf(info)] },
  ]);
  try {
    const writer = new SafetensorsModelWriter(renamed(output, SINGLE_FILE_NAME, ADAPTER_WEIGHTS), specs, { maxShardBytes: Number.MAX_SAFE_INTEGER, metadata: { format: 'pt' } });
    const modules: ModuleReport[] = [];
    for (const info of targets) {
      signal?.throwIfAborted();
      const k = rankOf(info);
      using d = await difference(backend, model, base, info.name, signal);
      const svd = await truncatedSvd(backend, d, k);
      using u = svd.U;
      using v = svd.V;
      using b = await backend.scaleColumns(u, Float32Array.from(svd.S));
      using a = await backend.transpose(v);
      // What the adapter adds is B·A exactly as written (f32): measure the error of those factors.
      using residual = await backend.matmul(b, a, { alpha: -1, addend: d, beta: 1 });
      const total = await frobeniusSquared(backend, d);
      const relativeError = total > 0 ? Math.sqrt((await frobeniusSquared(backend, residual)) / total) : 0;
      await writer.writeTensor(specs[2 * modules.length].name, await backend.encode(a, 'F32'));
      await writer.writeTensor(specs[2 * modules.length + 1].name, await backend.encode(b, 'F32'));
      const report: ModuleReport = { module: moduleOf(info.name), shape: [info.shape[0], info.shape[1]], rank: k, relativeError };
      modules.push(report);
      opts.onModule?.(report, modules.length, targets.length);
    }
    const files = await writer.finish();
    const notCaptured = await uncaptured(opts, new Set(targets.map((t) => t.name)));
    const config = adapterConfig(opts, targets, moduleOf, rankOf);
    const sink = await output.create('adapter_config.json');
    await sink.write(new TextEncoder().encode(JSON.stringify(config, null, 2) + '\n'));
    await sink.close();
    await output.commit();
    return { modules, notCaptured, files: [...files.map((f) => (f === SINGLE_FILE_NAME ? ADAPTER_WEIGHTS : f)), 'adapter_config.json'] };
  } catch (err) {
    await output.abort().catch(() => undefined);
    throw err;
  }
}

/** model − base for one tensor, in f32 on the backend. */
export async function difference(backend: Backend, model: ModelSource, base: ModelSource, name: string, signal?: AbortSignal): Promise<Tensor> {
  const decode = async (m: ModelSource) => {
    const info = m.tensors.get(name)!;
    return backend.decode(await m.readTensor(name, signal), info.dtype as FloatDType, info.shape);
  };
  using x = await decode(model);
  using b = await decode(base);
  return await backend.lincomb([
    { x, coef: 1 },
    { x: b, coef: -1 },
  ]);
}

/** Tensors outside the adapted modules whose values differ, with their relative change. */
async function uncaptured(opts: ExtractLoraOptions, adapted: ReadonlySet<string>): Promise<ExtractLoraResult['notCaptured']> {
  const { model, base, backend, signal } = opts;
  const out: ExtractLoraResult['notCaptured'] = [];
  for (const info of base.tensors.values()) {
    const other = model.tensors.get(info.name);
    if (adapted.has(info.name) || !other || !isFloatDType(info.dtype) || !isFloatDType(other.dtype) || other.shape.join() !== info.shape.join()) continue;
    const [xb, bb] = await Promise.all([model.readTensor(info.name, signal), base.readTensor(info.name, signal)]);
    if (other.dtype === info.dtype && xb.byteLength === bb.byteLength && xb.every((v, i) => v === bb[i])) continue;
    using d = await difference(backend, model, base, info.name, signal);
    using b = await backend.decode(bb, info.dtype, info.shape);
    const [dd, bn] = await backend.gram([d, b]).then((g) => [g[0], g[3]]);
    out.push({ tensor: info.name, relativeChange: bn > 0 ? Math.sqrt(dd / bn) : Infinity });
  }
  return out;
}

/** PEFT's adapter_config.json: one r for all, rank_pattern/alpha_pattern for modules of lower full rank. */
function adapterConfig(opts: ExtractLoraOptions, targets: TensorInfo[], moduleOf: (n: string) => string, rankOf: (i: TensorInfo) => number) {
  const rankPattern: Record<string, number> = {};
  for (const info of targets) if (rankOf(info) !== opts.rank) rankPattern[moduleOf(info.name)] = rankOf(info);
  const leafNames = [...new Set(targets.map((t) => moduleOf(t.name).split('.').pop()!))].sort();
  return {
    peft_type: 'LORA',
    task_type: 'CAUSAL_LM',
    base_model_name_or_path: opts.baseName,
    r: opts.rank,
    lora_alpha: opts.rank,
    target_modules: leafNames,
    rank_pattern: rankPattern,
    // alpha = r everywhere: every module's scale alpha/r is 1.
    alpha_pattern: rankPattern,
    lora_dropout: 0,
    bias: 'none',
    fan_in_fan_out: false,
    use_rslora: false,
    modules_to_save: null,
    inference_mode: true,
    init_lora_weights: true,
  };
}

/** `folder` with one file name written as another (the writer's model.safetensors as adapter_model.safetensors). */
function renamed(folder: OutputFolder, from: string, to: string): OutputFolder {
  return {
    name: folder.name,
    create: (path) => folder.create(path === from ? to : path),
    commit: () => folder.commit(),
    abort: () => folder.abort(),
  };
}
