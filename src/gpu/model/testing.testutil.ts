/**
 * Tiny random Llama / Qwen2 checkpoints in memory for the runtime's tests: config.json and
 * model.safetensors as transformers writes them (Qwen2: q/k/v biases; grouped KV heads), with
 * weights large enough that every layer changes the logits.
 */
import { encodeFloats, type FloatDType } from '../../core/dtype.ts';
import { openModel } from '../../core/safetensors/model.ts';
import { serializeSafetensors, type InMemoryTensor } from '../../core/safetensors/writer.ts';
import type { ModelSource } from '../../core/source.ts';
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
}

/** The tensors and config.json of a random model. */
export function tinyModelFiles(spec: TinyModelSpec = {}): Record<string, Uint8Array> {
  const s = { modelType: 'llama', vocab: 37, hidden: 24, intermediate: 40, layers: 2, heads: 4, kvHeads: 2, tie: false, dtype: 'F32' as FloatDType, seed: 1, ...spec };
  const rnd = seeded(s.seed);
  const gauss = (scale: number) => (rnd() + rnd() + rnd() - 1.5) * 2 * scale;
  const d = s.hidden / s.heads;
  const tensors: InMemoryTensor[] = [];
  const add = (name: string, shape: number[], make: () => number) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const values = Float32Array.from({ length: n }, make);
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
  };
}

export async function tinyModel(spec: TinyModelSpec = {}, id = 'tiny'): Promise<ModelSource> {
  return openModel(memoryFileTree(id, tinyModelFiles(spec)), { id });
}
