"""Optional cross-check (needs `pip install transformers`): load the fixture models with Hugging Face's own
LlamaForCausalLM / Qwen2ForCausalLM and compare their logits and tokenizer with tests/fixtures/demo-forward.

    python3 scripts/demo-family/check_hf.py
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / 'tests' / 'fixtures' / 'demo-forward'


def main() -> None:
    doc = json.loads((FIXTURES / 'cases.json').read_text())
    want = load_file(str(FIXTURES / doc['logits_file']))
    worst = 0.0
    for case in doc['cases']:
        folder = ROOT / case['model']
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation='eager').eval()
        tok = AutoTokenizer.from_pretrained(folder if (folder / 'tokenizer.json').exists() else ROOT / 'public/demo/base')
        ids = tok(case['prompt']).input_ids
        assert ids == case['ids'], f"{case['model']}: tokenizer gives {ids}, fixture has {case['ids']}"
        with torch.no_grad():
            got = model(torch.tensor([ids])).logits[0]
        diff = (got - want[case['logits']]).abs().max().item()
        worst = max(worst, diff)
        print(f"{type(model).__name__:20} {case['model']:45} {case['prompt']!r:20} max |Δlogit| = {diff:.2e}")
    assert worst < 1e-4, f'transformers and llama.py disagree by {worst}'
    print('transformers agrees with the fixtures')


if __name__ == '__main__':
    main()
