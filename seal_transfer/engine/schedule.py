"""Optimiser and learning-rate schedule of the PySlowFast AVA recipe (linear warm-up, then cosine), per step."""

from __future__ import annotations

import math
from collections.abc import Callable
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
    start_ratio = min(optim.warmup_start_lr / optim.lr, 1.0)
    return step_schedule(optimizer, total_steps, steps_per_epoch, optim.warmup_epochs, start_ratio, optim.min_lr_ratio)


def step_schedule(optimizer: torch.optim.Optimizer, total_steps: int, steps_per_epoch: int, warmup_epochs: float,
                  start_ratio: float, min_ratio: float) -> Any:
    """Per-step LR multiplier: `warmup_epochs` of linear warm-up from `start_ratio`, then cosine to `min_ratio`."""
    warmup = int(round(warmup_epochs * steps_per_epoch))
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: warmup_cosine(step, total_steps, warmup, start_ratio, min_ratio)
    )


def lightning_optimizers(module: Any, optimizer: torch.optim.Optimizer,
                         schedule: Callable[[int, int], Any]) -> dict[str, Any]:
    """`configure_optimizers`' answer for a LightningModule: `schedule(total_steps, steps_per_epoch)` builds the
    per-step scheduler from the trainer's own step count (epochs x batches, after `limit_train_batches`)."""
    total = int(module.trainer.estimated_stepping_batches)
    per_epoch = max(total // max(module.trainer.max_epochs or 1, 1), 1)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule(total, per_epoch), "interval": "step"}}


def configure_recipe(module: Any, optim: Any) -> dict[str, Any]:
    """The project recipe (`optim.*`: SGD or AdamW, warm-up + cosine per step) for a LightningModule."""
    optimizer = build_optimizer(module.named_parameters(), optim)
    return lightning_optimizers(module, optimizer,
                                lambda total, per_epoch: build_scheduler(optimizer, optim, total, per_epoch))
