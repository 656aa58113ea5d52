/**
 * PEFT LoRA adapters (a folder with adapter_config.json and adapter_model.safetensors) as models:
 * mergekit's `base+adapter` reference reads as the base with W + s·B·A for each adapted module
 * (s = lora_alpha/r, or lora_alpha/√r with use_rslora; per-module r and alpha from rank_pattern and
 * alpha_pattern). This module reads the adapter and says, per base tensor, which factors adapt it;
 * the product is taken on the backend when the tensor is loaded (src/gpu/plan/lora.ts).
 *
 * Keys: `base_model.model.<module>.lora_A.weight` [r, in] and `.lora_B.weight` [out, r] (also with
 * an adapter name before `.weight`); embeddings' `lora_embedding_A` [r, rows] and
 * `lora_embedding_B` [dim, r]; other keys that name a base tensor replace it (modules_to_save).
 */
import { openModel } from '../safetensors/model.ts';
import type { FileTree, ModelSource } from '../source.ts';

export const ADAPTER_CONFIG = 'adapter_config.json';

export class LoraAdapterError extends Error {
  constructor(
    readonly adapter: string,
    reason: string,
  ) {
    super(`LoRA adapter ${adapter}: ${reason}`);
    this.name = 'LoraAdapterError';
  }
}

/** How one base tensor is adapted: W + scale·(B·A), or its transpose. */
export interface LoraFactors {
  /** Adapter tensors: A [r, in] and B [out, r] (embeddings: A [r, rows], B [dim, r]). */
  a: string;
  b: string;
  scale: number;
  /** The delta is (B·A)ᵀ: fan_in_fan_out layers (GPT-2 Conv1D) and embeddings. */
  transpose: boolean;
}

export interface LoraAdapter {
  id: string;
  /** The opened adapter_model.safetensors. */
  weights: ModelSource;
  config: Record<string, unknown>;
  /** Base tensor name → its factors. */
  factors: Map<string, LoraFactors>;
  /** Base tensor name → the adapter tensor that replaces it (modules_to_save). */
  replacements: Map<string, string>;
}

const PREFIX = 'base_model.model.';
const FACTOR = /^(.*)\.(lora_A|lora_B|lora_embedding_A|lora_embedding_B)(?:\.[^.]+)?(?:\.weight)?$/;

export async function openLoraAdapter(tree: FileTree, id: string, signal?: AbortSignal): Promise<LoraAdapter> {
  const configFile = await tree.open(ADAPTER_CONFIG, signal);
  if (!configFile) throw new LoraAdapterError(id, `has no ${ADAPTER_CONFIG}`);
  let config: Record<string, unknown>;
  try {
    config = JSON.parse(new TextDecoder().decode(await configFile.read(0, configFile.size, signal))) as Record<string, unknown>;
  } catch (e) {
    throw new LoraAdapterError(id, `${ADAPTER_CONFIG} is not valid JSON (${(e as Error).message})`);
  }
  const type = config.peft_type ?? 'LORA';
  if (type !== 'LORA') throw new LoraAdapterError(id, `peft_type ${JSON.stringify(type)} is not supported (only LORA)`);
  const weights = await openModel(tree, { id, signal });
  const r = positive(config.r, 'r', id);
  const alpha = config.lora_alpha === undefined ? r : positive(config.lora_alpha, 'lora_alpha', id);
  const rslora = config.use_rslora === true;
  const rankPattern = (config.rank_pattern ?? {}) as Record<string, number>;
  const alphaPattern = (config.alpha_pattern ?? {}) as Record<string, number>;
  const fanInFanOut = config.fan_in_fan_out === true;

  const parts = new Map<string, { a?: string; b?: string; embedding: boolean }>();
  const replacements = new Map<string, string>();
  for (const key of weights.tensors.keys()) {
    const name = key.startsWith(PREFIX) ? key.slice(PREFIX.length) : key;
    const m = FACTOR.exec(name);
    if (!m) {
      replacements.set(name, key);
      continue;
    }
    const [, module, kind] = m;
    const entry = parts.get(module) ?? { embedding: kind.startsWith('lora_embedding') };
    if (kind.endsWith('A')) entry.a = key;
    else entry.b = key;
    parts.set(module, entry);
  }
  const factors = new Map<string, LoraFactors>();
  for (const [module, p] of parts) {
    if (!p.a || !p.b) throw new LoraAdapterError(id, `module ${module} has lora_${p.a ? 'A' : 'B'} but not lora_${p.a ? 'B' : 'A'}`);
    const rank = patternValue(rankPattern, module) ?? r;
    const moduleAlpha = patternValue(alphaPattern, module) ?? alpha;
    const [ra] = weights.tensors.get(p.a)!.shape;
    const rb = weights.tensors.get(p.b)!.shape[1];
    if (ra !== rank || rb !== rank) throw new LoraAdapterError(id, `module ${module}: lora_A has ${ra} rows and lora_B ${rb} columns, the config says r = ${rank}`);
    const scale = rslora ? moduleAlpha / Math.sqrt(rank) : moduleAlpha / rank;
    // An embedding module's tensor is `<module>.weight` too.
    factors.set(`${module}.weight`, { a: p.a, b: p.b, scale, transpose: p.embedding || fanInFanOut });
  }
  return { id, weights, config, factors, replacements };
}

/** PEFT's pattern lookup: a key that is the module's name or a dotted suffix of it. */
function patternValue(pattern: Record<string, number>, module: string): number | undefined {
  for (const [key, value] of Object.entries(pattern)) {
    if (module === key || module.endsWith(`.${key}`)) return value;
  }
  return undefined;
}

function positive(v: unknown, key: string, id: string): number {
  if (typeof v !== 'number' || !(v > 0)) throw new LoraAdapterError(id, `${ADAPTER_CONFIG}: ${key} must be a positive number, got ${JSON.stringify(v)}`);
  return v;
}

/** A base model with an adapter: the base's files and tensor list, adapted when loaded. */
export interface AdaptedModel extends ModelSource {
  readonly base: ModelSource;
  readonly adapter: LoraAdapter;
}

/**
 * `base+adapter` as one model. Its bytes are the base's; the adapter is applied on the backend
 * when a tensor is loaded. Checks every factor against the base tensor's shape.
 */
export function adaptedModel(base: ModelSource, adapter: LoraAdapter): AdaptedModel {
  for (const [name, f] of adapter.factors) {
    const info = base.tensors.get(name);
    if (!info) throw new LoraAdapterError(adapter.id, `adapts ${name}, which ${base.id} does not have`);
    const [out, r] = adapter.weights.tensors.get(f.b)!.shape;
    const inDim = adapter.weights.tensors.get(f.a)!.shape[1];
    const want = f.transpose ? [inDim, out] : [out, inDim];
    if (info.shape.length !== 2 || info.shape[0] !== want[0] || info.shape[1] !== want[1]) {
      throw new LoraAdapterError(adapter.id, `${name}: factors of rank ${r} make [${want}], ${base.id} has [${info.shape}]`);
    }
  }
  for (const [name, key] of adapter.replacements) {
    const info = base.tensors.get(name);
    const own = adapter.weights.tensors.get(key)!;
    if (!info) throw new LoraAdapterError(adapter.id, `has tensor ${key}, which is neither a LoRA factor nor a tensor of ${base.id}`);
    if (info.shape.join() !== own.shape.join()) throw new LoraAdapterError(adapter.id, `${key} has shape [${own.shape}], ${base.id}'s ${name} [${info.shape}]`);
  }
  // Replaced tensors are read from the adapter, with its dtype.
  const tensors = new Map(base.tensors);
  for (const [name, key] of adapter.replacements) tensors.set(name, { ...adapter.weights.tensors.get(key)!, name });
  const replaced = (name: string) => adapter.replacements.get(name);
  return {
    id: `${base.id}+${adapter.id}`,
    tree: base.tree,
    tensors,
    config: base.config,
    metadata: base.metadata,
    readTensor: (name, signal) => {
      const key = replaced(name);
      return key ? adapter.weights.readTensor(key, signal) : base.readTensor(name, signal);
    },
    readTensorRange: (name, offset, length, signal) => {
      const key = replaced(name);
      return key ? adapter.weights.readTensorRange(key, offset, length, signal) : base.readTensorRange(name, offset, length, signal);
    },
    base,
    adapter,
  };
}

export function isAdaptedModel(m: ModelSource): m is AdaptedModel {
  return 'adapter' in m && typeof (m as AdaptedModel).adapter === 'object';
}
