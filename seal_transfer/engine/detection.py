"""LightningModule for keyframe action detection (SlowFast + RoI head): SEAL Clips pretraining, AVA finetuning
and the adaptation rounds all train through this one module; only the data and the label space change."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Optional

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F

from seal_transfer.engine.schedule import configure_recipe
from seal_transfer.errors import UserError
from seal_transfer.models.config import ModelConfig
from seal_transfer.models.slowfast import build_detector


def detection_loss(
    logits: torch.Tensor, targets: torch.Tensor, pose_columns: Optional[torch.Tensor], loss: str
) -> torch.Tensor:
    """Multi-label BCE on sigmoid scores, or AVA's variant: softmax over the mutually exclusive pose classes.

    With `bce_softmax_pose`, boxes that carry a pose label get a cross-entropy over the pose columns (targets
    renormalised, so a box with two pose labels splits the mass); every other column keeps BCE.
    """
    if loss == "bce" or pose_columns is None or pose_columns.numel() == 0:
        return F.binary_cross_entropy_with_logits(logits, targets)
    other = torch.ones(logits.shape[1], dtype=torch.bool, device=logits.device)
    other[pose_columns] = False
    bce = F.binary_cross_entropy_with_logits(logits[:, other], targets[:, other]) if other.any() else logits.sum() * 0
    pose_t = targets[:, pose_columns]
    has_pose = pose_t.sum(1) > 0
    if not has_pose.any():
        return bce
    pose_t = pose_t[has_pose] / pose_t[has_pose].sum(1, keepdim=True)
    ce = -(pose_t * F.log_softmax(logits[has_pose][:, pose_columns], dim=1)).sum(1).mean()
    return bce + ce


def detection_scores(logits: torch.Tensor, pose_columns: Optional[torch.Tensor], loss: str) -> torch.Tensor:
    """Per-class scores consistent with the loss: sigmoid, with softmax over pose columns for `bce_softmax_pose`."""
    scores = torch.sigmoid(logits.float())
    if loss == "bce_softmax_pose" and pose_columns is not None and pose_columns.numel():
        scores[:, pose_columns] = torch.softmax(logits.float()[:, pose_columns], dim=1)
    return scores


class DetectionModule(L.LightningModule):
    """Trains `model([slow, fast], boxes) -> logits` with multi-label targets; validation collects per-box scores.

    Validation results are handed to `on_validation_result(box_ids, scores)` (set by the stage), which turns them
    into frame-mAP and a detection CSV; the module itself stays free of file formats.
    """

    def __init__(
        self,
        model_cfg: dict[str, Any],
        optim_cfg: dict[str, Any],
        num_classes: int,
        pose_columns: Sequence[int] = (),
        class_ids: Sequence[int] = (),
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.model = build_detector(ModelConfig(**model_cfg), num_classes)
        self.optim_cfg = _Namespace(optim_cfg)
        self.register_buffer("pose_columns", torch.as_tensor(list(pose_columns), dtype=torch.long), persistent=False)
        self.on_validation_result: Optional[Callable[[torch.Tensor, torch.Tensor], dict[str, float]]] = None
        self._val_box_ids: list[torch.Tensor] = []
        self._val_scores: list[torch.Tensor] = []

    def forward(self, inputs: list[torch.Tensor], boxes: torch.Tensor) -> torch.Tensor:
        return self.model(inputs, boxes)

    def scores(self, inputs: list[torch.Tensor], boxes: torch.Tensor) -> torch.Tensor:
        return detection_scores(self(inputs, boxes), self.pose_columns, self.optim_cfg.loss)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        inputs, boxes = batch["views"][0]
        logits = self(inputs, boxes)
        loss = detection_loss(logits.float(), batch["labels"].float(), self.pose_columns, self.optim_cfg.loss)
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"training loss is {loss.item()} at epoch {self.current_epoch}, step {self.global_step}; stopping "
                "(the last saved checkpoint is intact). Lower optim.lr or check the inputs."
            )
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["index"]))
        self.log("train/lr", self.trainer.optimizers[0].param_groups[0]["lr"], batch_size=len(batch["index"]))
        return loss

    def on_train_epoch_start(self) -> None:
        _set_epoch(self.trainer.train_dataloader, self.current_epoch)

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        inputs, boxes = batch["views"][0]
        self._val_box_ids.append(batch["box_ids"].detach())
        self._val_scores.append(self.scores(inputs, boxes).detach().float())

    def on_validation_epoch_start(self) -> None:
        self._val_box_ids, self._val_scores = [], []

    def on_validation_epoch_end(self) -> None:
        num_classes = self.hparams.num_classes
        box_ids = torch.cat(self._val_box_ids) if self._val_box_ids else torch.zeros(0, dtype=torch.long)
        scores = torch.cat(self._val_scores) if self._val_scores else torch.zeros(0, num_classes)
        box_ids, scores = gather_unique(self, box_ids.to(self.device), scores.to(self.device))
        self._val_box_ids, self._val_scores = [], []
        if self.on_validation_result is None:
            return
        metrics = self.on_validation_result(box_ids.cpu(), scores.cpu())
        for name, value in metrics.items():
            self.log(name, float(value), prog_bar=name.endswith("mAP"), sync_dist=False, rank_zero_only=False)

    def configure_optimizers(self) -> Any:
        return configure_recipe(self, self.optim_cfg)


def gather_unique(
    module: L.LightningModule, ids: torch.Tensor, values: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """All-gather variable-length (ids, values) from every rank and keep the first copy of each id.

    A DistributedSampler pads the last batches with repeats; dropping repeated ids counts every sample once.
    The result is sorted by id, so it is identical however the data was sharded.
    """
    if module.trainer is not None and module.trainer.world_size > 1:
        n = torch.tensor([ids.numel()], device=ids.device)
        sizes = module.all_gather(n).flatten()
        longest = int(sizes.max())
        pad_ids = torch.full((longest,), -1, dtype=ids.dtype, device=ids.device)
        pad_ids[: ids.numel()] = ids
        pad_vals = torch.zeros((longest, values.shape[1]), dtype=values.dtype, device=values.device)
        pad_vals[: values.shape[0]] = values
        all_ids = module.all_gather(pad_ids).reshape(-1)
        all_vals = module.all_gather(pad_vals).reshape(-1, values.shape[1])
        keep = all_ids >= 0
        ids, values = all_ids[keep], all_vals[keep]
    if ids.numel() == 0:
        return ids, values
    order = torch.argsort(ids, stable=True)
    ids, values = ids[order], values[order]
    first = torch.ones_like(ids, dtype=torch.bool)
    first[1:] = ids[1:] != ids[:-1]
    return ids[first], values[first]


def _set_epoch(loaders: Any, epoch: int) -> None:
    """Tell keyframe datasets the epoch so their augmentation seeds follow (seed, epoch, index)."""
    for loader in loaders if isinstance(loaders, (list, tuple)) else [loaders]:
        dataset = getattr(loader, "dataset", None)
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(epoch)


class _Namespace:
    """Attribute access over a plain dict, so hyper-parameters saved in checkpoints stay plain data."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)


def require_finite(values: np.ndarray, what: str) -> None:
    if not np.all(np.isfinite(values)):
        raise UserError(f"{what}: contains NaN or inf")
