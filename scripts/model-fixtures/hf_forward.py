"""Reference logits from Hugging Face transformers itself for the TypeScript runtime's tests
(src/gpu/model/forward-fixtures.test.ts), on tiny random models that cover what the demo family does not:
Llama with llama3 rope scaling, tied embeddings, an explicit head_dim (q width != hidden), attention and
MLP biases (BF16 weights); Mistral with a single KV head (F16 weights). Writes tests/fixtures/hf-forward/.

    python3 scripts/model-fixtures/hf_forward.py     # needs torch and transformers (not needed by the tests)
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
import transformers
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM

OUT = Path(__file__).resolve().parents[2] / 'tests' / 'fixtures' / 'hf-forward'
SEQUENCES = [[1, 7, 12, 40, 3, 3, 19, 52, 0, 8, 33, 21, 5, 17, 44, 2, 9, 30, 11, 6], [1, 50, 4, 4, 4, 28, 13, 36, 2, 10, 23, 7, 41, 15, 0, 31, 22, 8, 47, 3]]

MODELS = {
    'llama3-tied-bias': (
        LlamaForCausalLM,
        LlamaConfig(vocab_size=53, hidden_size=32, intermediate_size=56, num_hidden_layers=2, num_attention_heads=4,
                    num_key_value_heads=2, head_dim=12, rope_theta=500000.0, max_position_embeddings=64,
                    rope_scaling={'rope_type': 'llama3', 'factor': 8.0, 'low_freq_factor': 1.0, 'high_freq_factor': 4.0,
                                  'original_max_position_embeddings': 16},
                    tie_word_embeddings=True, attention_bias=True, mlp_bias=True, rms_norm_eps=1e-5,
                    bos_token_id=1, eos_token_id=2),
        torch.bfloat16,
    ),
    'mistral-mqa': (
        MistralForCausalLM,
        MistralConfig(vocab_size=53, hidden_size=40, intermediate_size=64, num_hidden_layers=2, num_attention_heads=5,
                      num_key_value_heads=1, rope_theta=10000.0, max_position_embeddings=64, sliding_window=None,
                      tie_word_embeddings=False, rms_norm_eps=1e-6, bos_token_id=1, eos_token_id=2),
        torch.float16,
    ),
}


def main() -> None:
    torch.manual_seed(11)
    logits, cases = {}, []
    for name, (cls, cfg, dtype) in MODELS.items():
        model = cls(cfg)
        with torch.no_grad():
            for pname, p in model.named_parameters():
                noise = torch.randn(p.shape) * (0.2 if 'norm' in pname or 'bias' in pname else 1.0 / p.shape[-1] ** 0.5)
                p.copy_(1 + noise if 'norm' in pname else noise)
        folder = OUT / name
        model.to(dtype).save_pretrained(folder, safe_serialization=True)
        # The logits of the stored weights, in float32 with eager attention.
        ref = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation='eager').eval()
        with torch.no_grad():
            logits[name] = ref(torch.tensor(SEQUENCES)).logits.float().contiguous()
        cases.append({'model': f'tests/fixtures/hf-forward/{name}', 'architecture': cls.__name__, 'logits': name})
    OUT.mkdir(parents=True, exist_ok=True)
    save_file(logits, str(OUT / 'logits.safetensors'), metadata={'format': 'pt'})
    doc = {
        'description': 'Float32 logits [sequences, tokens, vocab] of transformers ' + transformers.__version__ + ' (eager attention, '
                       'torch ' + torch.__version__ + ') over the stored weights, for the token id sequences below (no cache). '
                       'Regenerate with scripts/model-fixtures/hf_forward.py.',
        'sequences': SEQUENCES,
        'logits_file': 'logits.safetensors',
        'cases': cases,
    }
    (OUT / 'cases.json').write_text(json.dumps(doc, indent=2) + '\n')
    print(f'wrote {len(cases)} models to {OUT}')


if __name__ == '__main__':
    main()
