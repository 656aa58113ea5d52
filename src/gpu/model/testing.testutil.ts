/**
 * Tiny random Llama / Qwen2 checkpoints in memory for the runtime's tests: config.json and
 * model.safetensors as transformers writes them (Qwen2: q/k/v biases; grouped KV heads), with
 * weights large enough that every layer changes the logits.
 */
import { encodeFloats, type FloatDType } from '../../core/dtype.ts';
import { openModel } from '../../core/safetensors/model.ts';
import { serializeSafetensors, type InMemoryTensor } from '../../core/safetensors/writer.ts';
import type { ModelSource } from '../../core/source.ts';
import type { CausalLM } from './causal-lm.ts';
import { memoryFileTree } from '../../core/sources/memory.ts';
import { seeded } from '../../../tests/helpers/seeded.ts';

export interface TinyModelSpec {
  modelType?: 'llama' | 'qwen2' | 'mistral';
  vocab?: number;
  hidden?: number;
  intermediate?: number;
  layers?: number;
  heads?: number;
  kvHeads?: number;
  tie?: boolean;
  dtype?: FloatDType;
  seed?: number;
  ropeScaling?: Record<string, unknown> | null;
  maxPositions?: number;
  /** Extra config.json keys (overrides). */
  config?: Record<string, unknown>;
  /** Add the demo family's character-level tokenizer (vocab must then be CHAR_VOCAB.length). */
  tokenizer?: boolean;
  /** A fine-tune of the `seed` model: every weight plus N(0, scale²)-ish noise drawn from `delta.seed`. */
  delta?: { seed: number; scale: number };
}

/** The demo family's vocabulary (scripts/demo-family/tasks.py): 4 specials, digits, letters, + = :. */
export const CHAR_VOCAB = ['<pad>', '<bos>', '<eos>', '<unk>', ...'0123456789abcdefghijklmnopqrstuvwxyz+=:'];

/** tokenizer.json and tokenizer_config.json as tasks.py writes them (one token per character, <bos> first). */
export function charTokenizerFiles(): Record<string, Uint8Array> {
  const specials = CHAR_VOCAB.slice(0, 4);
  const tokenizer = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: specials.map((content, id) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: null,
    pre_tokenizer: null,
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<bos>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [{ SpecialToken: { id: '<bos>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: { '<bos>': { id: '<bos>', ids: [1], tokens: ['<bos>'] } },
    },
    decoder: { type: 'Fuse' },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: '<unk>',
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab: Object.fromEntries(CHAR_VOCAB.map((t, i) => [t, i])),
      merges: [],
    },
  };
  const config = { tokenizer_class: 'PreTrainedTokenizerFast', bos_token: '<bos>', eos_token: '<eos>', pad_token: '<pad>', unk_token: '<unk>', add_bos_token: true, add_eos_token: false };
  const enc = new TextEncoder();
  return { 'tokenizer.json': enc.encode(JSON.stringify(tokenizer)), 'tokenizer_config.json': enc.encode(JSON.stringify(config)) };
}

/** The tensors and config.json of a random model. */
export function tinyModelFiles(spec: TinyModelSpec = {}): Record<string, Uint8Array> {
  const s = { modelType: 'llama', vocab: 37, hidden: 24, intermediate: 40, layers: 2, heads: 4, kvHeads: 2, tie: false, dtype: 'F32' as FloatDType, seed: 1, ...spec };
  const rnd = seeded(s.seed);
  const gauss = (scale: number) => (rnd() + rnd() + rnd() - 1.5) * 2 * scale;
  const d = s.hidden / s.heads;
  const tensors: InMemoryTensor[] = [];
  const noise = s.delta ? seeded(s.delta.seed) : null;
  const add = (name: string, shape: number[], make: () => number) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const values = Float32Array.from({ length: n }, make);
    if (noise) for (let i = 0; i < n; i++) values[i] += (noise() + noise() + noise() - 1.5) * 2 * s.delta!.scale;
    tensors.push({ name, dtype: s.dtype, shape, data: encodeFloats(values, s.dtype) });
  };
  const w = (rows: number, cols: number) => () => gauss(1 / Math.sqrt(cols));
  add('model.embed_tokens.weight', [s.vocab, s.hidden], () => gauss(1));
  for (let l = 0; l < s.layers; l++) {
    const p = `model.layers.${l}.`;
    add(`${p}input_layernorm.weight`, [s.hidden], () => 1 + gauss(0.2));
    add(`${p}self_attn.q_proj.weight`, [s.heads * d, s.hidden], w(s.heads * d, s.hidden));
    add(`${p}self_attn.k_proj.weight`, [s.kvHeads * d, s.hidden], w(s.kvHeads * d, s.hidden));
    add(`${p}self_attn.v_proj.weight`, [s.kvHeads * d, s.hidden], w(s.kvHeads * d, s.hidden));
    if (s.modelType === 'qwen2') {
      add(`${p}self_attn.q_proj.bias`, [s.heads * d], () => gauss(0.3));
      add(`${p}self_attn.k_proj.bias`, [s.kvHeads * d], () => gauss(0.3));
      add(`${p}self_attn.v_proj.bias`, [s.kvHeads * d], () => gauss(0.3));
    }
    add(`${p}self_attn.o_proj.weight`, [s.hidden, s.heads * d], w(s.hidden, s.heads * d));
    add(`${p}post_attention_layernorm.weight`, [s.hidden], () => 1 + gauss(0.2));
    add(`${p}mlp.gate_proj.weight`, [s.intermediate, s.hidden], w(s.intermediate, s.hidden));
    add(`${p}mlp.up_proj.weight`, [s.intermediate, s.hidden], w(s.intermediate, s.hidden));
    add(`${p}mlp.down_proj.weight`, [s.hidden, s.intermediate], w(s.hidden, s.intermediate));
  }
  add('model.norm.weight', [s.hidden], () => 1 + gauss(0.2));
  if (!s.tie) add('lm_head.weight', [s.vocab, s.hidden], w(s.vocab, s.hidden));
  const config = {
    architectures: [s.modelType === 'qwen2' ? 'Qwen2ForCausalLM' : s.modelType === 'mistral' ? 'MistralForCausalLM' : 'LlamaForCausalLM'],
    model_type: s.modelType,
    vocab_size: s.vocab,
    hidden_size: s.hidden,
    intermediate_size: s.intermediate,
    num_hidden_layers: s.layers,
    num_attention_heads: s.heads,
    num_key_value_heads: s.kvHeads,
    hidden_act: 'silu',
    max_position_embeddings: s.maxPositions ?? 128,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    rope_scaling: s.ropeScaling ?? null,
    tie_word_embeddings: s.tie,
    bos_token_id: 1,
    eos_token_id: 2,
    ...(s.config ?? {}),
  };
  return {
    'config.json': new TextEncoder().encode(JSON.stringify(config)),
    'model.safetensors': serializeSafetensors(tensors, { format: 'pt' }),
    ...(s.tokenizer ? charTokenizerFiles() : {}),
  };
}

export async function tinyModel(spec: TinyModelSpec = {}, id = 'tiny'): Promise<ModelSource> {
  return openModel(memoryFileTree(id, tinyModelFiles(spec)), { id });
}

/** The logits of one forward pass over `tokens` (a batch of sequences), read to the host. */
export async function logitsOf(model: CausalLM, tokens: number[][]): Promise<Float32Array> {
  const { logits } = await model.forward(tokens);
  try {
    return await model.backend.read(logits);
  } finally {
    model.backend.release(logits);
  }
}
