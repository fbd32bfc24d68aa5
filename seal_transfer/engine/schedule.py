"""Optimiser and learning-rate schedule of the PySlowFast AVA recipe (linear warm-up, then cosine), per step."""

from __future__ import annotations

import math
from typing import Any

import torch


def warmup_cosine(step: int, total_steps: int, warmup_steps: int, start_ratio: float, min_ratio: float) -> float:
    """LR multiplier at `step`: linear from `start_ratio` to 1 over the warm-up, then cosine down to `min_ratio`."""
    if warmup_steps > 0 and step < warmup_steps:
        return start_ratio + (1.0 - start_ratio) * step / warmup_steps
    span = max(total_steps - warmup_steps, 1)
    progress = min(max(step - warmup_steps, 0) / span, 1.0)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_optimizer(params: Any, optim: Any) -> torch.optim.Optimizer:
    """SGD (Nesterov momentum) as in PySlowFast's AVA configs, or AdamW; weight decay skips norms and biases."""
    decay, no_decay = [], []
    for name, p in params:
        if not p.requires_grad:
            continue
        (no_decay if p.ndim <= 1 or name.endswith(".bias") else decay).append(p)
    groups = [{"params": decay, "weight_decay": optim.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if optim.name == "sgd":
        return torch.optim.SGD(
            groups, lr=optim.lr, momentum=optim.momentum, nesterov=optim.nesterov and optim.momentum > 0
        )
    return torch.optim.AdamW(groups, lr=optim.lr)


def build_scheduler(optimizer: torch.optim.Optimizer, optim: Any, total_steps: int, steps_per_epoch: int) -> Any:
    warmup = int(round(optim.warmup_epochs * steps_per_epoch))
    start_ratio = min(optim.warmup_start_lr / optim.lr, 1.0)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: warmup_cosine(step, total_steps, warmup, start_ratio, optim.min_lr_ratio)
    )
