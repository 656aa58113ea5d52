/**
 * What a tensor is, from its name, for views that split attention from MLP. Names follow the
 * Hugging Face conventions (Llama `self_attn.q_proj`, `mlp.up_proj`; GPT-2 `attn.c_attn`, `mlp.c_fc`;
 * MoE `experts`); norms are tested first since `post_attention_layernorm` contains "attention".
 */
import type { TensorKind } from './types.ts';

const NORM = /(norm|(^|\.)ln_?[a-z0-9]*\.)/i;
const EMBEDDING = /(^|\.)(embed_tokens|embed_positions|embed_in|embed_out|wte|wpe|lm_head|word_embeddings|position_embeddings)(\.|$)/i;
const ATTENTION = /(attn|attention|(^|\.)(q|k|v|o|qkv)_proj(\.|$))/i;
const MLP = /((^|\.)(mlp|feed_forward|ffn|experts|gate|router)(\.|$)|(gate|up|down)_proj|(^|\.)(fc1|fc2|c_fc|w1|w2|w3)(\.|$))/i;

export function tensorKindOf(name: string): TensorKind {
  if (NORM.test(name)) return 'norm';
  if (EMBEDDING.test(name)) return 'embedding';
  if (ATTENTION.test(name)) return 'attention';
  if (MLP.test(name)) return 'mlp';
  return 'other';
}
