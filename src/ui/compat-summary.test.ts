import { describe, expect, it } from 'vitest';
import { configDifferences } from './compat-summary.ts';

describe('incompatibility from the configs', () => {
  const base = { id: './demo/base', config: { model_type: 'llama', hidden_size: 64, num_hidden_layers: 4, vocab_size: 259, architectures: ['LlamaForCausalLM'] } };

  it('names each shape-deciding key that differs, with both values and both models', () => {
    const other = { id: './x', config: { model_type: 'llama', hidden_size: 32, num_hidden_layers: 4, vocab_size: 300, architectures: ['LlamaForCausalLM'] } };
    expect(configDifferences(base, [other])).toEqual(['hidden_size 32 in ./x vs 64 in ./demo/base']);
  });

  it('says when a config is missing, and compares only keys both configs give', () => {
    const gpt = { id: 'org/tiny-gpt', config: { model_type: 'gpt2', num_hidden_layers: 1 } };
    expect(configDifferences(base, [gpt, { id: './bare', config: null }])).toEqual([
      'model_type gpt2 in org/tiny-gpt vs llama in ./demo/base',
      'num_hidden_layers 1 in org/tiny-gpt vs 4 in ./demo/base',
      './bare has no config.json: only its tensor names and shapes can be compared',
    ]);
  });

  it('says nothing for models whose configs agree (vocab differences are cut, not refused)', () => {
    expect(configDifferences(base, [{ id: './same', config: { ...base.config, vocab_size: 260 } }])).toEqual([]);
  });
});
