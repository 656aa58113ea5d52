/**
 * The architecture of a Llama-family causal LM (Llama 2/3, Mistral, Qwen2) read from its
 * config.json, with the defaults transformers applies. Anything the runtime cannot run (another
 * architecture, another activation, YaRN rope scaling, a sliding window shorter than the context)
 * is refused here with a message naming the file and the key.
 */

export type RopeScaling =
  | { type: 'default' }
  | { type: 'linear'; factor: number }
  | { type: 'llama3'; factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPositions: number };

export interface LlamaConfig {
  modelType: 'llama' | 'mistral' | 'qwen2';
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  rmsNormEps: number;
  ropeTheta: number;
  ropeScaling: RopeScaling;
  maxPositions: number;
  tieWordEmbeddings: boolean;
  /** q, k and v projections carry biases (Qwen2 always; Llama with attention_bias). */
  attentionBias: boolean;
  /** The output projection carries a bias (Llama with attention_bias; never Qwen2). */
  outputBias: boolean;
  /** gate, up and down projections carry biases (Llama's mlp_bias). */
  mlpBias: boolean;
  /** Keys a query may see at most (Mistral's sliding_window), or null for the whole context. */
  slidingWindow: number | null;
  bosTokenId: number | null;
  eosTokenIds: number[];
}

export class ModelConfigError extends Error {
  constructor(where: string, reason: string) {
    super(`${where}: ${reason}`);
    this.name = 'ModelConfigError';
  }
}

const MODEL_TYPES = ['llama', 'mistral', 'qwen2'] as const;

/** Parse config.json of model `id`. */
export function parseLlamaConfig(raw: Record<string, unknown> | null, id: string): LlamaConfig {
  const where = `${id}/config.json`;
  if (!raw) throw new ModelConfigError(id, 'has no config.json (the runtime needs the architecture to run the model)');
  const fail = (key: string, reason: string) => new ModelConfigError(where, `${key}: ${reason}`);
  const int = (key: string, fallback?: number): number => {
    const v = raw[key] ?? fallback;
    if (v === undefined || v === null) throw fail(key, 'missing');
    if (!(typeof v === 'number' && Number.isInteger(v) && v > 0)) throw fail(key, `must be a positive integer, not ${JSON.stringify(v)}`);
    return v;
  };
  const num = (key: string, fallback: number): number => {
    const v = raw[key] ?? fallback;
    if (!(typeof v === 'number' && Number.isFinite(v) && v > 0)) throw fail(key, `must be a positive number, not ${JSON.stringify(v)}`);
    return v;
  };
  const bool = (key: string, fallback: boolean): boolean => {
    const v = raw[key] ?? fallback;
    if (typeof v !== 'boolean') throw fail(key, `must be true or false, not ${JSON.stringify(v)}`);
    return v;
  };

  const modelType = raw.model_type;
  if (!MODEL_TYPES.includes(modelType as (typeof MODEL_TYPES)[number])) {
    throw fail('model_type', `${JSON.stringify(modelType)} is not one the runtime runs (${MODEL_TYPES.join(', ')})`);
  }
  const type = modelType as LlamaConfig['modelType'];
  const act = raw.hidden_act ?? 'silu';
  if (act !== 'silu') throw fail('hidden_act', `${JSON.stringify(act)}: only silu (SwiGLU) is supported`);

  const hiddenSize = int('hidden_size');
  const numHeads = int('num_attention_heads');
  const numKvHeads = int('num_key_value_heads', numHeads);
  if (numHeads % numKvHeads !== 0) throw fail('num_key_value_heads', `${numKvHeads} does not divide num_attention_heads ${numHeads}`);
  const headDim = raw.head_dim === undefined || raw.head_dim === null ? hiddenSize / numHeads : int('head_dim');
  if (!Number.isInteger(headDim) || headDim % 2 !== 0) throw fail('head_dim', `${headDim} (hidden_size / num_attention_heads) must be an even integer`);

  const maxPositions = int('max_position_embeddings', 2048);
  const window = type === 'qwen2' ? (raw.use_sliding_window === true ? raw.sliding_window : null) : raw.sliding_window;
  if (window !== undefined && window !== null && !(typeof window === 'number' && Number.isInteger(window) && window > 0)) {
    throw fail('sliding_window', `must be a positive integer or null, not ${JSON.stringify(window)}`);
  }
  const eos = raw.eos_token_id;
  const eosTokenIds = eos === undefined || eos === null ? [] : Array.isArray(eos) ? eos : [eos];
  if (!eosTokenIds.every((t) => Number.isInteger(t) && t >= 0)) throw fail('eos_token_id', `must be a token id or a list of them, not ${JSON.stringify(eos)}`);
  const bos = raw.bos_token_id;
  if (bos !== undefined && bos !== null && !(Number.isInteger(bos) && (bos as number) >= 0)) throw fail('bos_token_id', `must be a token id, not ${JSON.stringify(bos)}`);

  return {
    modelType: type,
    vocabSize: int('vocab_size'),
    hiddenSize,
    intermediateSize: int('intermediate_size'),
    numLayers: int('num_hidden_layers'),
    numHeads,
    numKvHeads,
    headDim,
    rmsNormEps: num('rms_norm_eps', 1e-6),
    ...parseRope(raw, maxPositions, fail),
    maxPositions,
    tieWordEmbeddings: bool('tie_word_embeddings', false),
    attentionBias: type === 'qwen2' ? true : type === 'llama' && bool('attention_bias', false),
    outputBias: type === 'llama' && bool('attention_bias', false),
    mlpBias: type === 'llama' && bool('mlp_bias', false),
    slidingWindow: (window as number | null | undefined) ?? null,
    bosTokenId: (bos as number | null | undefined) ?? null,
    eosTokenIds: eosTokenIds as number[],
  };
}

/**
 * rope_theta and rope_scaling (transformers 4), or rope_parameters holding both (transformers 5:
 * `{rope_type, rope_theta, factor, ...}`).
 */
function parseRope(raw: Record<string, unknown>, maxPositions: number, fail: (key: string, reason: string) => Error): { ropeTheta: number; ropeScaling: RopeScaling } {
  const params = raw.rope_parameters;
  const key = params === undefined || params === null ? 'rope_scaling' : 'rope_parameters';
  const scaling = key === 'rope_parameters' ? params : raw.rope_scaling;
  const theta = (key === 'rope_parameters' ? (params as Record<string, unknown>).rope_theta : undefined) ?? raw.rope_theta ?? 10000;
  if (!(typeof theta === 'number' && Number.isFinite(theta) && theta > 0)) throw fail('rope_theta', `must be a positive number, not ${JSON.stringify(theta)}`);
  return { ropeTheta: theta, ropeScaling: parseRopeScaling(scaling, maxPositions, (reason) => fail(key, reason)) };
}

function parseRopeScaling(raw: unknown, maxPositions: number, fail: (reason: string) => Error): RopeScaling {
  if (raw === undefined || raw === null) return { type: 'default' };
  if (typeof raw !== 'object') throw fail(`must be an object or null, not ${JSON.stringify(raw)}`);
  const r = raw as Record<string, unknown>;
  const type = r.rope_type ?? r.type;
  const positive = (key: string, fallback?: number): number => {
    const v = r[key] ?? fallback;
    if (!(typeof v === 'number' && Number.isFinite(v) && v > 0)) throw fail(`${key} must be a positive number, not ${JSON.stringify(v)}`);
    return v;
  };
  switch (type) {
    case 'default':
      return { type: 'default' };
    case 'linear':
      return { type: 'linear', factor: positive('factor') };
    case 'llama3': {
      const s = {
        type: 'llama3' as const,
        factor: positive('factor'),
        lowFreqFactor: positive('low_freq_factor'),
        highFreqFactor: positive('high_freq_factor'),
        originalMaxPositions: positive('original_max_position_embeddings', maxPositions),
      };
      if (s.highFreqFactor <= s.lowFreqFactor) throw fail(`high_freq_factor ${s.highFreqFactor} must exceed low_freq_factor ${s.lowFreqFactor}`);
      return s;
    }
    default:
      throw fail(`type ${JSON.stringify(type)} is not supported (default, linear, llama3)`);
  }
}

/** f32 parameters of the model, by part (for the memory budget). */
export function parameterCounts(c: LlamaConfig): { embeddings: number; head: number; layer: number; total: number } {
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  const attn = c.hiddenSize * q + 2 * c.hiddenSize * kv + q * c.hiddenSize + (c.attentionBias ? q + 2 * kv : 0) + (c.outputBias ? c.hiddenSize : 0);
  const mlp = 3 * c.hiddenSize * c.intermediateSize + (c.mlpBias ? 2 * c.intermediateSize + c.hiddenSize : 0);
  const layer = attn + mlp + 2 * c.hiddenSize;
  const embeddings = c.vocabSize * c.hiddenSize;
  const head = (c.tieWordEmbeddings ? 0 : c.vocabSize * c.hiddenSize) + c.hiddenSize;
  return { embeddings, head, layer, total: embeddings + head + c.numLayers * layer };
}
