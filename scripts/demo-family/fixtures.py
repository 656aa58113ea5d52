"""Reference logits for the TypeScript runtime's tests, computed once with llama.py (float32 math on the
stored weights): the demo base and expert-1 on a few prompts, and a randomly initialised tiny Qwen2
(q/k/v biases, 6 query heads over 2 KV heads) saved beside them. Writes tests/fixtures/demo-forward/.

    python3 scripts/demo-family/fixtures.py     # after train.py (reads public/demo)
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).parent))
from llama import CausalLM, LlamaConfig, load_model, save_model  # noqa: E402
from tasks import BOS, EOS, VOCAB, decode, encode, tokenizer_config_json, tokenizer_json  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / 'public' / 'demo'
OUT = ROOT / 'tests' / 'fixtures' / 'demo-forward'
PROMPTS = ['12+34=', 'rev:hello=', 'sort:dcab=abcd']
QWEN_PROMPT = 'count:a:banana=3'
QWEN_SEED = 7


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@torch.no_grad()
def greedy(model: CausalLM, ids: list[int], max_new: int = 12) -> str:
    out = list(ids)
    for _ in range(max_new):
        nxt = int(model(torch.tensor([out]))[0, -1].argmax())
        if nxt == EOS:
            break
        out.append(nxt)
    return decode(out[len(ids):])


def random_qwen2() -> tuple[LlamaConfig, dict[str, torch.Tensor]]:
    """Weights N(0, 0.2) (large enough that the logits vary a lot), biases N(0, 0.2), norms 1 + N(0, 0.2)."""
    cfg = LlamaConfig(vocab_size=len(VOCAB), hidden_size=48, intermediate_size=80, num_hidden_layers=2,
                      num_attention_heads=6, num_key_value_heads=2, rms_norm_eps=1e-6, rope_theta=1000000.0,
                      max_position_embeddings=32, model_type='qwen2')
    gen = torch.Generator().manual_seed(QWEN_SEED)
    model = CausalLM(cfg)
    state = {}
    for name, p in sorted(model.state_dict().items()):
        noise = torch.randn(p.shape, generator=gen) * 0.2
        state[name] = (1 + noise) if 'norm' in name else noise
    # Round to bfloat16 now: the logits below are those of the stored weights.
    return cfg, {k: v.to(torch.bfloat16) for k, v in state.items()}


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    logits: dict[str, torch.Tensor] = {}
    cases = []
    for name in ['base', 'expert-1']:
        folder = DEMO / name
        model = load_model(folder).eval()
        for i, prompt in enumerate(PROMPTS):
            ids = [BOS] + encode(prompt)
            key = f'{name}.{i}'
            with torch.no_grad():
                logits[key] = model(torch.tensor([ids]))[0].float().contiguous()
            cases.append({'model': f'public/demo/{name}', 'model_sha256': sha256(folder / 'model.safetensors'),
                          'prompt': prompt, 'ids': ids, 'logits': key, 'greedy': greedy(model, ids)})

    qcfg, qstate = random_qwen2()
    qfolder = OUT / 'qwen2-random'
    save_model(qfolder, qcfg, qstate, torch.bfloat16, {'tokenizer.json': tokenizer_json(),
                                                        'tokenizer_config.json': tokenizer_config_json(qcfg.max_position_embeddings)})
    qmodel = CausalLM(qcfg)
    qmodel.load_state_dict({k: v.float() for k, v in qstate.items()})
    qmodel.eval()
    ids = [BOS] + encode(QWEN_PROMPT)
    with torch.no_grad():
        logits['qwen2-random.0'] = qmodel(torch.tensor([ids]))[0].float().contiguous()
    cases.append({'model': 'tests/fixtures/demo-forward/qwen2-random', 'model_sha256': sha256(qfolder / 'model.safetensors'),
                  'prompt': QWEN_PROMPT, 'ids': ids, 'logits': 'qwen2-random.0', 'greedy': greedy(qmodel, ids)})

    save_file(logits, str(OUT / 'logits.safetensors'), metadata={'format': 'pt'})
    doc = {
        'description': 'Float32 logits [tokens, vocab] of plain-PyTorch forward passes (scripts/demo-family/llama.py) over the '
                       'stored weights widened to float32, one row per input position (positions 0..n-1, no cache). '
                       'Token ids come from the character-level tokenizer.json (<bos> first). model_sha256 is the '
                       'weights file the logits were computed from: regenerate with scripts/demo-family/fixtures.py '
                       'after retraining the demo family.',
        'logits_file': 'logits.safetensors',
        'cases': cases,
    }
    (OUT / 'cases.json').write_text(json.dumps(doc, indent=2) + '\n')
    print(f'wrote {len(cases)} cases to {OUT.relative_to(ROOT)}')


if __name__ == '__main__':
    main()
