/**
 * A Llama-family model's weights on a backend, decoded to f32 tensors, and the rule that decides
 * whether they all stay there:
 *
 *   resident  when 4 bytes × every parameter fits the weight budget;
 *   streamed  otherwise: the embeddings, the final norm and the LM head stay, and each decoder layer
 *             is read from the source, decoded when the forward pass reaches it and released right
 *             after (so a forward pass reads every layer once; greedy decoding, once per token);
 *   refused   when even the streamed minimum (embeddings + head + one layer) exceeds the budget
 *             (ModelTooLargeError, naming both numbers).
 */
import { isFloatDType } from '../../core/dtype.ts';
import { formatBytes } from '../../core/units.ts';
import type { ModelSource } from '../../core/source.ts';
import type { Backend, Tensor } from '../backend.ts';
import { parameterCounts, type LlamaConfig } from './config.ts';

export class ModelWeightsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ModelWeightsError';
  }
}

export class ModelTooLargeError extends Error {
  /** f32 bytes the model needs on the backend at least, and the budget it was given. */
  constructor(
    readonly needed: number,
    readonly limit: number,
    message: string,
  ) {
    super(message);
    this.name = 'ModelTooLargeError';
  }
}

export type Residency = 'resident' | 'streamed';

export interface LayerWeights {
  inputNorm: Tensor;
  q: Tensor;
  k: Tensor;
  v: Tensor;
  o: Tensor;
  oBias?: Tensor;
  qBias?: Tensor;
  kBias?: Tensor;
  vBias?: Tensor;
  postNorm: Tensor;
  gate: Tensor;
  up: Tensor;
  down: Tensor;
  gateBias?: Tensor;
  upBias?: Tensor;
  downBias?: Tensor;
}

type LayerKey = keyof LayerWeights;

/** Each layer tensor: its key, its name after `model.layers.N.`, its shape, whether present. */
function layerSpecs(c: LlamaConfig): { key: LayerKey; name: string; shape: number[]; present: boolean }[] {
  const h = c.hiddenSize;
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  const m = c.intermediateSize;
  return [
    { key: 'inputNorm', name: 'input_layernorm.weight', shape: [h], present: true },
    { key: 'q', name: 'self_attn.q_proj.weight', shape: [q, h], present: true },
    { key: 'k', name: 'self_attn.k_proj.weight', shape: [kv, h], present: true },
    { key: 'v', name: 'self_attn.v_proj.weight', shape: [kv, h], present: true },
    { key: 'o', name: 'self_attn.o_proj.weight', shape: [h, q], present: true },
    { key: 'qBias', name: 'self_attn.q_proj.bias', shape: [q], present: c.attentionBias },
    { key: 'kBias', name: 'self_attn.k_proj.bias', shape: [kv], present: c.attentionBias },
    { key: 'vBias', name: 'self_attn.v_proj.bias', shape: [kv], present: c.attentionBias },
    { key: 'oBias', name: 'self_attn.o_proj.bias', shape: [h], present: c.outputBias },
    { key: 'postNorm', name: 'post_attention_layernorm.weight', shape: [h], present: true },
    { key: 'gate', name: 'mlp.gate_proj.weight', shape: [m, h], present: true },
    { key: 'up', name: 'mlp.up_proj.weight', shape: [m, h], present: true },
    { key: 'down', name: 'mlp.down_proj.weight', shape: [h, m], present: true },
    { key: 'gateBias', name: 'mlp.gate_proj.bias', shape: [m], present: c.mlpBias },
    { key: 'upBias', name: 'mlp.up_proj.bias', shape: [m], present: c.mlpBias },
    { key: 'downBias', name: 'mlp.down_proj.bias', shape: [h], present: c.mlpBias },
  ];
}

export interface WeightLoadOptions {
  /** f32 bytes of weights the backend may hold at once. @default Infinity */
  weightBudget?: number;
  /** Force a residency (tests of streaming); `auto` applies the rule above. @default 'auto' */
  residency?: 'auto' | Residency;
  /** Whether a model over the budget may be streamed; if not it is refused (the studio's tab limit). @default true */
  streaming?: boolean;
  signal?: AbortSignal;
  /** Tensors decoded so far, of those loaded up front. */
  onProgress?: (done: number, total: number) => void;
}

/** Where the model's f32 weights live and how a layer is reached. */
export class ModelWeights implements Disposable {
  readonly residency: Residency;
  readonly embed: Tensor;
  readonly finalNorm: Tensor;
  readonly lmHead: Tensor;
  readonly #layers: LayerWeights[];
  readonly #backend: Backend;
  readonly #source: ModelSource;
  readonly #config: LlamaConfig;

  private constructor(backend: Backend, source: ModelSource, config: LlamaConfig, residency: Residency, embed: Tensor, finalNorm: Tensor, lmHead: Tensor, layers: LayerWeights[]) {
    this.#backend = backend;
    this.#source = source;
    this.#config = config;
    this.residency = residency;
    this.embed = embed;
    this.finalNorm = finalNorm;
    this.lmHead = lmHead;
    this.#layers = layers;
  }

  /** The residency the rule picks for `config` under `budget` bytes (or ModelTooLargeError). */
  static plan(config: LlamaConfig, id: string, budget: number, streaming = true): Residency {
    const p = parameterCounts(config);
    const total = 4 * p.total;
    if (total <= budget) return 'resident';
    if (!streaming) {
      throw new ModelTooLargeError(
        total,
        budget,
        `${id} is too large to run here: its f32 weights take ${formatBytes(total)}; the limit is ${formatBytes(budget)}`,
      );
    }
    const minimum = 4 * (p.embeddings + p.head + p.layer);
    if (minimum > budget) {
      throw new ModelTooLargeError(
        minimum,
        budget,
        `${id} is too large to run here: its f32 weights take ${formatBytes(total)}, and even layer by layer ` +
          `(embeddings, head and one layer at a time) ${formatBytes(minimum)}; the limit is ${formatBytes(budget)}`,
      );
    }
    return 'streamed';
  }

  static async load(backend: Backend, source: ModelSource, config: LlamaConfig, opts: WeightLoadOptions = {}): Promise<ModelWeights> {
    const residency = opts.residency && opts.residency !== 'auto' ? opts.residency : ModelWeights.plan(config, source.id, opts.weightBudget ?? Infinity, opts.streaming);
    const loaded: Tensor[] = [];
    const specs = layerSpecs(config).filter((s) => s.present);
    const total = 2 + (config.tieWordEmbeddings ? 0 : 1) + (residency === 'resident' ? config.numLayers * specs.length : 0);
    let done = 0;
    const load = async (name: string, shape: number[]) => {
      const t = await loadTensor(backend, source, name, shape, opts.signal);
      loaded.push(t);
      opts.onProgress?.(++done, total);
      return t;
    };
    try {
      const h = config.hiddenSize;
      const embed = await load('model.embed_tokens.weight', [config.vocabSize, h]);
      const finalNorm = await load('model.norm.weight', [h]);
      const lmHead = config.tieWordEmbeddings ? embed : await load('lm_head.weight', [config.vocabSize, h]);
      const layers: LayerWeights[] = [];
      if (residency === 'resident') {
        for (let i = 0; i < config.numLayers; i++) layers.push(await loadLayer(config, i, (name, shape) => load(name, shape)));
      }
      return new ModelWeights(backend, source, config, residency, embed, finalNorm, lmHead, layers);
    } catch (err) {
      for (const t of loaded) backend.release(t);
      throw err;
    }
  }

  /**
   * Layer i's weights for one use: resident ones as they are, streamed ones decoded now; the
   * returned Disposable releases what was decoded for this use.
   */
  async layer(i: number, signal?: AbortSignal): Promise<{ weights: LayerWeights } & Disposable> {
    if (this.residency === 'resident') return { weights: this.#layers[i], [Symbol.dispose]: () => undefined };
    const decoded: Tensor[] = [];
    try {
      const weights = await loadLayer(this.#config, i, async (name, shape) => {
        const t = await loadTensor(this.#backend, this.#source, name, shape, signal);
        decoded.push(t);
        return t;
      });
      return { weights, [Symbol.dispose]: () => decoded.forEach((t) => this.#backend.release(t)) };
    } catch (err) {
      decoded.forEach((t) => this.#backend.release(t));
      throw err;
    }
  }

  [Symbol.dispose](): void {
    const all = new Set<Tensor>([this.embed, this.finalNorm, this.lmHead]);
    for (const l of this.#layers) for (const t of Object.values(l)) if (t) all.add(t);
    for (const t of all) this.#backend.release(t);
    this.#layers.length = 0;
  }
}

async function loadLayer(config: LlamaConfig, i: number, load: (name: string, shape: number[]) => Promise<Tensor>): Promise<LayerWeights> {
  const out: Partial<LayerWeights> = {};
  for (const spec of layerSpecs(config)) {
    if (spec.present) out[spec.key] = await load(`model.layers.${i}.${spec.name}`, spec.shape);
  }
  return out as LayerWeights;
}

/** One tensor of the model decoded to f32 on the backend, after checking it against the config. */
async function loadTensor(backend: Backend, source: ModelSource, name: string, shape: number[], signal?: AbortSignal): Promise<Tensor> {
  const info = source.tensors.get(name);
  if (!info) throw new ModelWeightsError(`${source.id}: tensor ${name} is missing (config.json's architecture needs it)`);
  if (!isFloatDType(info.dtype)) throw new ModelWeightsError(`${source.id}: tensor ${name} is ${info.dtype}; the runtime reads F32, F16 or BF16 weights`);
  if (info.shape.length !== shape.length || info.shape.some((d, k) => d !== shape[k])) {
    throw new ModelWeightsError(`${source.id}: tensor ${name} has shape [${info.shape.join(', ')}]; config.json implies [${shape.join(', ')}]`);
  }
  const bytes = await source.readTensor(name, signal);
  return backend.decode(bytes, info.dtype, shape);
}
