import { describe, expect, it } from 'vitest';
import { isEmbeddingName, isInputEmbeddingName, isMatrixTensor } from './tensor-names.ts';

describe('tensor names', () => {
  it('knows the vocabulary tables of Llama, GPT-2 and GPT-NeoX', () => {
    for (const name of ['model.embed_tokens.weight', 'lm_head.weight', 'transformer.wte.weight', 'gpt_neox.embed_in.weight', 'embed_out.weight']) {
      expect(isEmbeddingName(name), name).toBe(true);
    }
    for (const name of ['model.layers.0.mlp.up_proj.weight', 'model.norm.weight', 'model.my_embed_tokens_proj.weight', 'transformer.wpe.weight']) {
      expect(isEmbeddingName(name), name).toBe(false);
    }
  });

  it('tells input embeddings from LM heads', () => {
    expect(isInputEmbeddingName('model.embed_tokens.weight')).toBe(true);
    expect(isInputEmbeddingName('transformer.wte.weight')).toBe(true);
    expect(isInputEmbeddingName('gpt_neox.embed_in.weight')).toBe(true);
    expect(isInputEmbeddingName('lm_head.weight')).toBe(false);
    expect(isInputEmbeddingName('embed_out.weight')).toBe(false);
  });

  it('calls 2-D non-embedding tensors matrices', () => {
    expect(isMatrixTensor('model.layers.1.self_attn.q_proj.weight', [64, 64])).toBe(true);
    expect(isMatrixTensor('model.layers.1.input_layernorm.weight', [64])).toBe(false);
    expect(isMatrixTensor('lm_head.weight', [259, 64])).toBe(false);
    expect(isMatrixTensor('model.layers.1.experts.weight', [2, 3, 4])).toBe(false);
  });
});
