"""The character-level tokenizer and the skills of the demo family (prompt formats, generators).

Every example is `<bos>` + prompt + answer + `<eos>`; the prompt ends with "=" and the answer is scored
by exact match of the greedy continuation up to `<eos>`.
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Callable

SPECIALS = ['<pad>', '<bos>', '<eos>', '<unk>']
CHARS = list('0123456789abcdefghijklmnopqrstuvwxyz+=:')
VOCAB = SPECIALS + CHARS
PAD, BOS, EOS, UNK = range(4)
TOKEN_ID = {t: i for i, t in enumerate(VOCAB)}
LETTERS = 'abcdefghijklmnopqrstuvwxyz'


def encode(text: str) -> list[int]:
    return [TOKEN_ID[c] for c in text]


def decode(ids: list[int]) -> str:
    return ''.join(VOCAB[i] for i in ids if i >= len(SPECIALS))


def tokenizer_json() -> str:
    """tokenizer.json (Hugging Face tokenizers format): a BPE over single characters with no merges, so
    every character is one token; `<bos>` is prepended by the post-processor; decoding fuses the characters."""
    added = [
        {'id': i, 'content': t, 'single_word': False, 'lstrip': False, 'rstrip': False, 'normalized': False, 'special': True}
        for i, t in enumerate(SPECIALS)
    ]
    tok = {
        'version': '1.0',
        'truncation': None,
        'padding': None,
        'added_tokens': added,
        'normalizer': None,
        'pre_tokenizer': None,
        'post_processor': {
            'type': 'TemplateProcessing',
            'single': [{'SpecialToken': {'id': '<bos>', 'type_id': 0}}, {'Sequence': {'id': 'A', 'type_id': 0}}],
            'pair': [
                {'SpecialToken': {'id': '<bos>', 'type_id': 0}},
                {'Sequence': {'id': 'A', 'type_id': 0}},
                {'Sequence': {'id': 'B', 'type_id': 1}},
            ],
            'special_tokens': {'<bos>': {'id': '<bos>', 'ids': [BOS], 'tokens': ['<bos>']}},
        },
        'decoder': {'type': 'Fuse'},
        'model': {
            'type': 'BPE',
            'dropout': None,
            'unk_token': '<unk>',
            'continuing_subword_prefix': None,
            'end_of_word_suffix': None,
            'fuse_unk': False,
            'byte_fallback': False,
            'ignore_merges': False,
            'vocab': TOKEN_ID,
            'merges': [],
        },
    }
    return json.dumps(tok, indent=2) + '\n'


def tokenizer_config_json(max_length: int) -> str:
    cfg = {
        'tokenizer_class': 'PreTrainedTokenizerFast',
        'bos_token': '<bos>',
        'eos_token': '<eos>',
        'pad_token': '<pad>',
        'unk_token': '<unk>',
        'add_bos_token': True,
        'add_eos_token': False,
        'clean_up_tokenization_spaces': False,
        'model_max_length': max_length,
    }
    return json.dumps(cfg, indent=2) + '\n'


@dataclass(frozen=True)
class Skill:
    name: str
    description: str
    example: str
    make: Callable[[random.Random], tuple[str, str]]  # -> (prompt, answer)


def _letters(rng: random.Random, lo: int, hi: int) -> str:
    return ''.join(rng.choice(LETTERS) for _ in range(rng.randint(lo, hi)))


def _add(rng: random.Random) -> tuple[str, str]:
    a, b = rng.randint(0, 99), rng.randint(0, 99)
    return f'{a}+{b}=', str(a + b)


def _rev(rng: random.Random) -> tuple[str, str]:
    s = _letters(rng, 3, 8)
    return f'rev:{s}=', s[::-1]


def _sort(rng: random.Random) -> tuple[str, str]:
    s = _letters(rng, 3, 8)
    return f'sort:{s}=', ''.join(sorted(s))


def _count(rng: random.Random) -> tuple[str, str]:
    target = rng.choice(LETTERS[:6])
    s = ''.join(rng.choice(LETTERS[:6]) for _ in range(rng.randint(3, 9)))
    return f'count:{target}:{s}=', str(s.count(target))


def _copy(rng: random.Random) -> tuple[str, str]:
    s = _letters(rng, 3, 8) if rng.random() < 0.7 else ''.join(rng.choice('0123456789') for _ in range(rng.randint(2, 6)))
    return f'copy:{s}=', s


SKILLS = {
    s.name: s
    for s in [
        Skill('add', 'two-digit addition (0-99 + 0-99)', '12+34=46', _add),
        Skill('rev', 'string reversal (3-8 letters)', 'rev:abc=cba', _rev),
        Skill('sort', 'sorting letters (3-8 letters)', 'sort:dcab=abcd', _sort),
        Skill('count', 'counting one letter among a-f (3-9 letters)', 'count:a:abca=2', _count),
    ]
}
# Generic data the base also sees, never scored.
GENERIC = {'copy': _copy}


def held_out(skill: Skill, n: int, seed: int) -> list[tuple[str, str]]:
    """n distinct held-out (prompt, answer) pairs of a skill."""
    rng = random.Random(f'{seed}:{skill.name}:test')
    seen: dict[str, str] = {}
    while len(seen) < n:
        p, a = skill.make(rng)
        seen.setdefault(p, a)
    return list(seen.items())
