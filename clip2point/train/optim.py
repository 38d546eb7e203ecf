"""Optimizer and learning-rate schedule registry for the training loops (paper §5.2: LAMB, wd 1e-4)."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR


def param_groups(module: nn.Module, lr: float, weight_decay: float) -> list[dict]:
    """Two groups: matrices/convolutions with weight decay; biases, norms, embeddings, scalars without."""
    decay, no_decay = [], []
    for name, p in module.named_parameters():
        if not p.requires_grad:
            continue
        if p.ndim < 2 or "positional_embedding" in name or "class_embedding" in name or "logit_scale" in name:
            no_decay.append(p)
        else:
            decay.append(p)
    groups = [{"params": decay, "lr": lr, "weight_decay": weight_decay, "name": "decay"}]
    if no_decay:
        groups.append({"params": no_decay, "lr": lr, "weight_decay": 0.0, "name": "no_decay"})
    return groups


def build_optimizer(name: str, groups: Iterable[dict], lr: float) -> torch.optim.Optimizer:
    """``lamb`` (timm's LAMB, the paper's choice), ``adamw`` or ``sgd``; per-group lr/wd are kept."""
    groups = list(groups)
    name = name.lower()
    if name == "lamb":
        from timm.optim import Lamb

        return Lamb(groups, lr=lr)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=0.9)
    raise ValueError(f"unknown optimizer '{name}' (lamb | adamw | sgd)")


def cosine_with_warmup(
    optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int, min_ratio: float = 0.0
) -> LambdaLR:
    """Linear warm-up over ``warmup_steps`` then cosine decay to ``min_ratio`` at ``total_steps``."""
    warmup_steps = max(0, min(warmup_steps, total_steps - 1))

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + 1)
        t = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))

    return LambdaLR(optimizer, factor)
