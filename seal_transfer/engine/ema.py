"""An exponential moving average of the weights being trained, as a Lightning callback (`adapt.teacher=ema`).

After every optimiser step: ema ← m · ema + (1 − m) · θ, for every floating-point entry of the model's
state_dict (parameters and BatchNorm statistics alike; integer counters are copied). The average starts from
`start` (the previous teacher) or from the weights at the first step, and is saved in Lightning checkpoints,
so a resumed job continues the same average. Mean Teacher (Tarvainen & Valpola, NeurIPS'17) labels with such
weights: they change slowly, so one round's pseudo labels cannot swing the next round's teacher far.
"""

from __future__ import annotations

from typing import Any, Optional

import lightning as L
import torch


class EmaWeights(L.Callback):
    """Keeps `average`: the EMA of `pl_module.model`'s state_dict over training steps, on the weights' device."""

    def __init__(self, momentum: float, start: Optional[dict[str, torch.Tensor]] = None) -> None:
        if not 0 <= momentum < 1:
            raise ValueError(f"EMA momentum must be in [0, 1), got {momentum}")
        self.momentum = float(momentum)
        self.average: Optional[dict[str, torch.Tensor]] = (
            {k: v.detach().clone().cpu() for k, v in start.items()} if start is not None else None
        )
        self.updates = 0

    def update(self, weights: dict[str, torch.Tensor]) -> None:
        """One EMA step towards `weights` (a state_dict)."""
        if self.average is None:
            self.average = {k: v.detach().clone() for k, v in weights.items()}
        m = self.momentum
        for key, value in weights.items():
            current = value.detach()
            average = self.average.get(key)
            if average is None or not torch.is_floating_point(current):
                self.average[key] = current.clone()
                continue
            if average.device != current.device:  # once: the average then lives beside the weights (no copies)
                average = self.average[key] = average.to(current.device)
            average.mul_(m).add_(current.to(average.dtype), alpha=1 - m)
        self.updates += 1

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        if self.average is None:  # no start given (and none restored from a checkpoint): the student's weights
            self.average = {k: v.detach().clone() for k, v in pl_module.model.state_dict().items()}

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if (batch_idx + 1) % max(int(trainer.accumulate_grad_batches), 1) == 0:  # after an optimiser step
            self.update(pl_module.model.state_dict())

    def state_dict(self) -> dict[str, Any]:
        return {"momentum": self.momentum, "updates": self.updates, "average": self.average}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.momentum = float(state_dict["momentum"])
        self.updates = int(state_dict["updates"])
        self.average = state_dict["average"]
