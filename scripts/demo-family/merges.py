"""Task-vector merges in PyTorch, as Merge Studio and mergekit define them (shared/METHODS.md), for the
score table only: task arithmetic (base + Σ w_i·δ_i) and TIES (magnitude top-k per tensor, sign election
on w_i·δ_i, disjoint mean), computed in float32 and rounded to bfloat16 like a studio export."""
from __future__ import annotations

import torch


def _topk_mask(delta: torch.Tensor, density: float) -> torch.Tensor:
    if density >= 1:
        return torch.ones_like(delta, dtype=torch.bool)
    k = int(density * delta.numel())
    if k == 0:
        raise ValueError(f'density {density} keeps no entry of a tensor of {delta.numel()}')
    flat = delta.abs().flatten()
    keep = torch.zeros_like(flat, dtype=torch.bool)
    keep[torch.topk(flat, k, sorted=False).indices] = True
    return keep.view_as(delta)


def merge(
    base: dict[str, torch.Tensor],
    experts: list[dict[str, torch.Tensor]],
    weights: list[float],
    method: str,
    densities: list[float] | None = None,
    lam: float = 1.0,
    normalize: bool | None = None,
) -> dict[str, torch.Tensor]:
    if normalize is None:
        normalize = method == 'ties'
    densities = densities or [1.0] * len(experts)
    out = {}
    for name, b in base.items():
        b32 = b.float()
        wd = []
        for e, w, d in zip(experts, weights, densities):
            delta = e[name].float() - b32
            if method == 'ties':
                delta = delta * _topk_mask(delta, d)
            wd.append(w * delta)
        wd_t = torch.stack(wd)
        w_t = torch.tensor(weights, dtype=torch.float32).view(-1, *[1] * b.dim())
        if method == 'ties':
            majority = torch.where(wd_t.sum(0) >= 0, 1.0, -1.0)
            mask = (torch.sign(wd_t) == majority).float()
            mixed = (wd_t * mask).sum(0)
            divisor = (w_t * mask).sum(0)
        elif method == 'task_arithmetic':
            mixed = wd_t.sum(0)
            divisor = w_t.sum(0).expand_as(mixed)
        else:
            raise ValueError(f'unknown method {method}')
        if normalize:
            divisor = torch.where(divisor.abs() < 1e-8, torch.ones_like(divisor), divisor)
            mixed = mixed / divisor
        out[name] = (b32 + lam * mixed).to(torch.bfloat16).float()
    return out
