/**
 * Procedural checkpoints: Llama-shaped model folders whose tensor bytes are made on demand, so a
 * merge of 7B-shaped models can run (benchmarks, memory tests) without 60 GB of disk or memory.
 *
 * Values come from pools of precomputed BF16/F16/F32 values: element i of tensor t is
 * pool[(i + offset_t) mod P] with an odd pool length P and a per-tensor offset, so producing a range
 * is a few copies (as fast as reading a cached file). An expert's pool is the base pool plus a small
 * delta of its own, rounded to the dtype, so task vectors are small, dense and differ per expert,
 * like real fine-tunes. Reads of the same range always give the same bytes.
 */
import { byteLength, encodeFloats, type FloatDType } from '../dtype.ts';
import { encodeSafetensorsHeader } from '../safetensors/header.ts';
import type { ByteSource, FileTree } from '../source.ts';
import { checkRange } from './memory.ts';

/** A Llama-family shape (tensor names as Hugging Face's LlamaForCausalLM). */
export interface LlamaShape {
  hidden: number;
  intermediate: number;
  layers: number;
  vocab: number;
  heads: number;
  kvHeads: number;
  /** lm_head shares embed_tokens (no lm_head tensor). @default false */
  tiedEmbeddings?: boolean;
}

/** Named shapes used by the benchmark and tests. */
export const LLAMA_SHAPES = {
  /** The mergekit comparison set of issue 9: 337 M parameters. */
  mk: { hidden: 2048, intermediate: 5632, layers: 4, vocab: 32000, heads: 32, kvHeads: 32 },
  /** TinyLlama-1.1B. */
  '1b': { hidden: 2048, intermediate: 5632, layers: 22, vocab: 32000, heads: 32, kvHeads: 4 },
  /** Llama-3-8B's shape (7B-class: 32 layers, 4096, 14336, vocab 128256). */
  '7b': { hidden: 4096, intermediate: 14336, layers: 32, vocab: 128256, heads: 32, kvHeads: 8 },
} as const satisfies Record<string, LlamaShape>;

/** Tensor names and shapes of a Llama model, in file order. */
export function llamaTensors(shape: LlamaShape): { name: string; shape: number[] }[] {
  const { hidden, intermediate, vocab } = shape;
  const kv = (hidden / shape.heads) * shape.kvHeads;
  const list = [{ name: 'model.embed_tokens.weight', shape: [vocab, hidden] }];
  for (let l = 0; l < shape.layers; l++) {
    const p = `model.layers.${l}.`;
    list.push(
      { name: `${p}self_attn.q_proj.weight`, shape: [hidden, hidden] },
      { name: `${p}self_attn.k_proj.weight`, shape: [kv, hidden] },
      { name: `${p}self_attn.v_proj.weight`, shape: [kv, hidden] },
      { name: `${p}self_attn.o_proj.weight`, shape: [hidden, hidden] },
      { name: `${p}mlp.gate_proj.weight`, shape: [intermediate, hidden] },
      { name: `${p}mlp.up_proj.weight`, shape: [intermediate, hidden] },
      { name: `${p}mlp.down_proj.weight`, shape: [hidden, intermediate] },
      { name: `${p}input_layernorm.weight`, shape: [hidden] },
      { name: `${p}post_attention_layernorm.weight`, shape: [hidden] },
    );
  }
  list.push({ name: 'model.norm.weight', shape: [hidden] });
  if (!shape.tiedEmbeddings) list.push({ name: 'lm_head.weight', shape: [vocab, hidden] });
  return list;
}

/** Parameters of a Llama shape. */
export function llamaParams(shape: LlamaShape): number {
  return llamaTensors(shape).reduce((s, t) => s + t.shape.reduce((a, b) => a * b, 1), 0);
}

/** Values in the pool: an odd length, so rows of power-of-two widths do not line up with it. */
const POOL_LENGTH = (1 << 20) + 7;

/** Deterministic pseudo-normal values (sum of three uniforms from xorshift32). */
export function pseudoNormal(n: number, seed: number, scale: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    let acc = 0;
    for (let k = 0; k < 3; k++) {
      s ^= s << 13;
      s ^= s >>> 17;
      s ^= s << 5;
      acc += (s >>> 0) / 4294967296;
    }
    out[i] = (acc - 1.5) * scale;
  }
  return out;
}

export interface ProceduralModelOptions {
  shape: LlamaShape;
  dtype?: FloatDType;
  /** 0 for the base; experts 1, 2, … add their own delta to the base's values. */
  expert?: number;
  /** Scale of the base's values and of an expert's delta. @default 0.05, 0.002 */
  scale?: number;
  deltaScale?: number;
}

/**
 * A model folder (config.json + model.safetensors) whose tensor bytes are generated per read.
 * The header is real, so the folder opens with openModel like any other.
 */
export function proceduralModelTree(name: string, opts: ProceduralModelOptions): FileTree {
  const dtype = opts.dtype ?? 'BF16';
  const expert = opts.expert ?? 0;
  const basePool = pseudoNormal(POOL_LENGTH, 0x5eed, opts.scale ?? 0.05);
  if (expert > 0) {
    const delta = pseudoNormal(POOL_LENGTH, 0x5eed + 7919 * expert, opts.deltaScale ?? 0.002);
    for (let i = 0; i < POOL_LENGTH; i++) basePool[i] += delta[i];
  }
  const pool = encodeFloats(basePool, dtype);
  const width = byteLength(dtype, 1);
  const tensors = llamaTensors(opts.shape).map((t, i) => ({
    ...t,
    dtype,
    byteLength: byteLength(dtype, t.shape.reduce((a, b) => a * b, 1)),
    // Where in the pool this tensor starts (differs per tensor, the same for base and experts).
    poolOffset: (i * 104729) % POOL_LENGTH,
  }));
  const header = encodeSafetensorsHeader(tensors, { format: 'pt' });
  const starts: number[] = [];
  let dataBytes = 0;
  for (const t of tensors) {
    starts.push(dataBytes);
    dataBytes += t.byteLength;
  }
  const size = header.byteLength + dataBytes;

  /** Copy `length` bytes of tensor data starting at data offset `at` into out[o..]. */
  function fill(out: Uint8Array, o: number, at: number, length: number): void {
    let k = upperBound(starts, at) - 1;
    while (length > 0) {
      const t = tensors[k];
      const within = at - starts[k];
      const take = Math.min(length, t.byteLength - within);
      // Element-aligned copies from the pool, wrapping around it.
      let done = 0;
      while (done < take) {
        const byteInTensor = within + done;
        const element = Math.floor(byteInTensor / width);
        const byteInElement = byteInTensor - element * width;
        const poolByte = ((element + t.poolOffset) % POOL_LENGTH) * width + byteInElement;
        const n = Math.min(take - done, pool.byteLength - poolByte);
        out.set(pool.subarray(poolByte, poolByte + n), o + done);
        done += n;
      }
      o += take;
      at += take;
      length -= take;
      k++;
    }
  }

  const model: ByteSource = {
    name: `${name}/model.safetensors`,
    size,
    async read(offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array> {
      signal?.throwIfAborted();
      checkRange(model.name, size, offset, length);
      const out = new Uint8Array(length);
      const headerPart = Math.max(0, Math.min(length, header.byteLength - offset));
      if (headerPart > 0) out.set(header.subarray(offset, offset + headerPart));
      if (length > headerPart) fill(out, headerPart, offset + headerPart - header.byteLength, length - headerPart);
      return out;
    },
  };
  const config = new TextEncoder().encode(
    JSON.stringify({
      architectures: ['LlamaForCausalLM'],
      model_type: 'llama',
      hidden_size: opts.shape.hidden,
      intermediate_size: opts.shape.intermediate,
      num_hidden_layers: opts.shape.layers,
      num_attention_heads: opts.shape.heads,
      num_key_value_heads: opts.shape.kvHeads,
      vocab_size: opts.shape.vocab,
      tie_word_embeddings: opts.shape.tiedEmbeddings ?? false,
      torch_dtype: { BF16: 'bfloat16', F16: 'float16', F32: 'float32' }[dtype],
    }),
  );
  const configSource: ByteSource = {
    name: `${name}/config.json`,
    size: config.byteLength,
    async read(offset, length) {
      checkRange(configSource.name, config.byteLength, offset, length);
      return config.slice(offset, offset + length);
    },
  };
  return {
    name,
    async list() {
      return ['config.json', 'model.safetensors'];
    },
    async open(path) {
      return path === 'model.safetensors' ? model : path === 'config.json' ? configSource : null;
    },
  };
}

/** Index of the first element of the sorted `xs` greater than `v`. */
function upperBound(xs: readonly number[], v: number): number {
  let lo = 0;
  let hi = xs.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (xs[mid] <= v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
