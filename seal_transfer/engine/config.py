"""The engine's config sections (torch-free): the optimiser and schedule (`optim`) and the Lightning Trainer's
keyword arguments (`trainer`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from seal_transfer.errors import UserError

OPTIMIZERS = ("sgd", "adamw")
LOSSES = ("bce", "bce_softmax_pose")


@dataclass
class OptimConfig:
    """PySlowFast AVA recipe: SGD, linear warm-up then cosine; AdamW optional."""

    name: str = "sgd"  # sgd | adamw
    lr: float = 0.1  # base learning rate (PySlowFast AVA: 0.1 for batch 64)
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 1e-7  # PySlowFast AVA: 1e-7
    warmup_epochs: float = 1.0
    warmup_start_lr: float = 0.001
    min_lr_ratio: float = 0.01  # cosine floor as a fraction of lr
    loss: str = "bce"  # bce (multi-label sigmoid) | bce_softmax_pose (softmax over the pose classes, sigmoid else)
    pose_label_type: str = "PERSON_MOVEMENT"  # label_type whose classes are mutually exclusive (AVA) ; SEAL: POSE

    def validate(self, key: str = "optim") -> None:
        for name, allowed in (("name", OPTIMIZERS), ("loss", LOSSES)):
            value = getattr(self, name)
            if value not in allowed:
                raise UserError(f"config key '{key}.{name}': '{value}' is not one of {', '.join(allowed)}")
        if self.lr <= 0:
            raise UserError(f"config key '{key}.lr': must be > 0, got {self.lr}")


@dataclass
class TrainerConfig:
    """Passed to lightning.Trainer as keyword arguments."""

    accelerator: str = "auto"
    devices: str = "auto"  # 'auto', a count ('2') or a list ('[0,1]')
    num_nodes: int = 1
    strategy: str = "auto"  # e.g. ddp, ddp_find_unused_parameters_true
    precision: str = "32-true"  # e.g. bf16-mixed, 16-mixed
    max_epochs: int = 10
    gradient_clip_val: Optional[float] = None
    accumulate_grad_batches: int = 1
    limit_train_batches: float = 1.0
    limit_val_batches: float = 1.0
    check_val_every_n_epoch: int = 1
    log_every_n_steps: int = 10
    deterministic: bool = False
    enable_progress_bar: bool = True
    enable_model_summary: bool = True
    num_sanity_val_steps: int = 0

    def validate(self, key: str = "trainer") -> None:
        if self.max_epochs <= 0:
            raise UserError(f"config key '{key}.max_epochs': must be > 0, got {self.max_epochs}")
