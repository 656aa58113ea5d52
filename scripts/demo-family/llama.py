"""A tiny Llama (and Qwen2) causal LM in plain PyTorch, with Hugging Face tensor names.

The forward pass is the one Hugging Face `LlamaForCausalLM` / `Qwen2ForCausalLM` compute (README.md in
this folder spells it out for the TypeScript runtime): pre-norm blocks, RMSNorm, rotary embeddings in
the "rotate_half" convention, grouped-query causal attention scaled by 1/sqrt(head_dim), SwiGLU MLP.
Parameter names (state_dict keys) are exactly the Hub ones, so `model.state_dict()` is what
model.safetensors holds.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn


@dataclass
class LlamaConfig:
    vocab_size: int
    hidden_size: int = 64
    intermediate_size: int = 192
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    rms_norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    max_position_embeddings: int = 64
    model_type: str = 'llama'  # 'qwen2': q/k/v projections have biases
    bos_token_id: int = 1
    eos_token_id: int = 2
    pad_token_id: int = 0

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def attention_bias(self) -> bool:
        return self.model_type == 'qwen2'

    def hf_config(self, torch_dtype: str) -> dict:
        """config.json as the Hub writes it for this architecture."""
        arch = {'llama': 'LlamaForCausalLM', 'qwen2': 'Qwen2ForCausalLM'}[self.model_type]
        cfg = {
            'architectures': [arch],
            'model_type': self.model_type,
            'vocab_size': self.vocab_size,
            'hidden_size': self.hidden_size,
            'intermediate_size': self.intermediate_size,
            'num_hidden_layers': self.num_hidden_layers,
            'num_attention_heads': self.num_attention_heads,
            'num_key_value_heads': self.num_key_value_heads,
            'head_dim': self.head_dim,
            'hidden_act': 'silu',
            'max_position_embeddings': self.max_position_embeddings,
            'rms_norm_eps': self.rms_norm_eps,
            'rope_theta': self.rope_theta,
            'rope_scaling': None,
            'attention_bias': self.attention_bias,
            'attention_dropout': 0.0,
            'mlp_bias': False,
            'tie_word_embeddings': False,
            'initializer_range': 0.02,
            'bos_token_id': self.bos_token_id,
            'eos_token_id': self.eos_token_id,
            'pad_token_id': self.pad_token_id,
            'use_cache': True,
            'torch_dtype': torch_dtype,
        }
        if self.model_type == 'qwen2':
            # Qwen2 reads these instead of attention_bias (its q/k/v always carry biases).
            del cfg['attention_bias'], cfg['mlp_bias']
            cfg.update({'use_sliding_window': False, 'sliding_window': None, 'max_window_layers': self.num_hidden_layers})
        return cfg

    @staticmethod
    def from_hf(path: Path) -> 'LlamaConfig':
        c = json.loads(path.read_text())
        return LlamaConfig(
            vocab_size=c['vocab_size'], hidden_size=c['hidden_size'], intermediate_size=c['intermediate_size'],
            num_hidden_layers=c['num_hidden_layers'], num_attention_heads=c['num_attention_heads'],
            num_key_value_heads=c['num_key_value_heads'], rms_norm_eps=c['rms_norm_eps'], rope_theta=c['rope_theta'],
            max_position_embeddings=c['max_position_embeddings'], model_type=c['model_type'],
            bos_token_id=c['bos_token_id'], eos_token_id=c['eos_token_id'], pad_token_id=c['pad_token_id'],
        )


class RMSNorm(nn.Module):
    def __init__(self, size: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # y = x / sqrt(mean(x^2) + eps) * weight, in float32.
        x32 = x.float()
        y = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * y.to(x.dtype)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """(x1, x2) -> (-x2, x1) over the two halves of the last dimension (Hugging Face convention)."""
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def rope_cos_sin(positions: torch.Tensor, head_dim: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin of shape [seq, head_dim]: angle(p, i) = p * theta^(-2(i mod head_dim/2)/head_dim)."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))
    freqs = positions.float()[:, None] * inv_freq[None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


class Attention(nn.Module):
    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        self.cfg = cfg
        h, d = cfg.hidden_size, cfg.head_dim
        self.q_proj = nn.Linear(h, cfg.num_attention_heads * d, bias=cfg.attention_bias)
        self.k_proj = nn.Linear(h, cfg.num_key_value_heads * d, bias=cfg.attention_bias)
        self.v_proj = nn.Linear(h, cfg.num_key_value_heads * d, bias=cfg.attention_bias)
        self.o_proj = nn.Linear(cfg.num_attention_heads * d, h, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        nh, nkv, d = self.cfg.num_attention_heads, self.cfg.num_key_value_heads, self.cfg.head_dim
        q = self.q_proj(x).view(b, t, nh, d).transpose(1, 2)
        k = self.k_proj(x).view(b, t, nkv, d).transpose(1, 2)
        v = self.v_proj(x).view(b, t, nkv, d).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        # Grouped KV heads: query head i reads kv head i // (nh / nkv).
        k = k.repeat_interleave(nh // nkv, dim=1)
        v = v.repeat_interleave(nh // nkv, dim=1)
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(d)
        causal = torch.ones(t, t, dtype=torch.bool, device=x.device).tril()
        scores = scores.masked_fill(~causal, float('-inf'))
        out = F.softmax(scores.float(), dim=-1).to(q.dtype) @ v
        return self.o_proj(out.transpose(1, 2).reshape(b, t, nh * d))


class MLP(nn.Module):
    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        self.gate_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.up_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.down_proj = nn.Linear(cfg.intermediate_size, cfg.hidden_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        self.self_attn = Attention(cfg)
        self.mlp = MLP(cfg)
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x), cos, sin)
        return x + self.mlp(self.post_attention_layernorm(x))


class Backbone(nn.Module):
    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.num_hidden_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)


class CausalLM(nn.Module):
    """state_dict keys: model.embed_tokens.weight, model.layers.N.…, model.norm.weight, lm_head.weight."""

    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        self.cfg = cfg
        self.model = Backbone(cfg)
        self.lm_head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)
        self.apply(self._init)

    @staticmethod
    def _init(m: nn.Module) -> None:
        # Hugging Face's initializer: N(0, 0.02) weights, zero biases; norms start at 1.
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Logits [batch, seq, vocab] for token ids [batch, seq] at positions 0..seq-1."""
        cos, sin = rope_cos_sin(torch.arange(ids.shape[1]), self.cfg.head_dim, self.cfg.rope_theta)
        x = self.model.embed_tokens(ids)
        for layer in self.model.layers:
            x = layer(x, cos, sin)
        return self.lm_head(self.model.norm(x))


def state_to_bf16(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to(torch.bfloat16).contiguous() for k, v in state.items()}


def save_model(folder: Path, cfg: LlamaConfig, state: dict[str, torch.Tensor], dtype: torch.dtype, extra_files: dict[str, str]) -> None:
    """model.safetensors (sorted names, `dtype`), config.json and the given text files."""
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: state[k].detach().to(dtype).contiguous() for k in sorted(state)}
    save_file(tensors, str(folder / 'model.safetensors'), metadata={'format': 'pt'})
    name = {torch.bfloat16: 'bfloat16', torch.float32: 'float32', torch.float16: 'float16'}[dtype]
    (folder / 'config.json').write_text(json.dumps(cfg.hf_config(name), indent=2) + '\n')
    for path, text in extra_files.items():
        (folder / path).write_text(text)


def load_model(folder: Path) -> CausalLM:
    """A saved folder back as a float32 CausalLM."""
    cfg = LlamaConfig.from_hf(folder / 'config.json')
    model = CausalLM(cfg)
    state = {k: v.float() for k, v in load_file(str(folder / 'model.safetensors')).items()}
    model.load_state_dict(state, strict=True)
    return model


def config_dict(cfg: LlamaConfig) -> dict:
    return asdict(cfg)
