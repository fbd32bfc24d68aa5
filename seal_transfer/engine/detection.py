"""LightningModule for keyframe action detection (SlowFast + RoI head): SEAL Clips pretraining, AVA finetuning
and the adaptation rounds all train through this one module; only the data and the label space change."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional, Protocol

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F

from seal_transfer.engine.schedule import configure_recipe
from seal_transfer.errors import UserError
from seal_transfer.models.config import ModelConfig
from seal_transfer.models.slowfast import build_detector


def detection_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    pose_columns: Optional[torch.Tensor],
    loss: str,
    box_weights: Optional[torch.Tensor] = None,
    label_mask: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Multi-label BCE on sigmoid scores, or AVA's variant: softmax over the mutually exclusive pose classes.

    With `bce_softmax_pose`, boxes that carry a pose label get a cross-entropy over the pose columns (targets
    renormalised, so a box with two pose labels splits the mass); every other column keeps BCE. `box_weights`
    (N,) weighs each box's terms (`adapt.loss_weight=score`), normalised to mean 1 over the batch so that only
    the boxes' relative weights change, not the loss scale the learning rate was set for. `label_mask` (N, C)
    drops the BCE terms where it is 0 (`adapt.negatives=confident`: classes neither labelled nor confidently
    absent) and averages over the terms that remain; the pose cross-entropy, a distribution over exclusive
    classes, ignores it.
    """
    if box_weights is None:
        w = None
    else:
        w = box_weights.to(logits.dtype)
        w = w / w.mean().clamp_min(1e-12)
    use_pose = loss != "bce" and pose_columns is not None and pose_columns.numel() > 0
    if label_mask is not None:
        bce = _masked_bce(logits, targets, pose_columns if use_pose else None, w, label_mask)
    elif not use_pose:
        return F.binary_cross_entropy_with_logits(logits, targets, weight=None if w is None else w[:, None])
    else:
        other = _non_pose(logits, pose_columns)
        bce = (F.binary_cross_entropy_with_logits(logits[:, other], targets[:, other],
                                                  weight=None if w is None else w[:, None])
               if other.any() else logits.sum() * 0)
    if not use_pose:
        return bce
    assert pose_columns is not None
    pose_t = targets[:, pose_columns]
    has_pose = pose_t.sum(1) > 0
    if not has_pose.any():
        return bce
    pose_t = pose_t[has_pose] / pose_t[has_pose].sum(1, keepdim=True)
    per_box = -(pose_t * F.log_softmax(logits[has_pose][:, pose_columns], dim=1)).sum(1)
    ce = per_box.mean() if w is None else (per_box * w[has_pose]).sum() / w[has_pose].sum().clamp_min(1e-12)
    return bce + ce


def _non_pose(logits: torch.Tensor, pose_columns: Optional[torch.Tensor]) -> torch.Tensor:
    other = torch.ones(logits.shape[1], dtype=torch.bool, device=logits.device)
    if pose_columns is not None:
        other[pose_columns] = False
    return other


def _masked_bce(logits: torch.Tensor, targets: torch.Tensor, pose_columns: Optional[torch.Tensor],
                w: Optional[torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
    """BCE over the non-pose columns where `mask` is 1, each term times its box's weight, averaged over the terms
    counted (a box whose every class is ignored adds nothing)."""
    other = _non_pose(logits, pose_columns)
    if not other.any():
        return logits.sum() * 0
    m = mask[:, other].to(logits.dtype)
    weight = m if w is None else m * w[:, None]
    terms = F.binary_cross_entropy_with_logits(logits[:, other], targets[:, other], reduction="none")
    return (terms * weight).sum() / m.sum().clamp_min(1.0)


def detection_scores(logits: torch.Tensor, pose_columns: Optional[torch.Tensor], loss: str) -> torch.Tensor:
    """Per-class scores consistent with the loss: sigmoid, with softmax over pose columns for `bce_softmax_pose`."""
    scores = torch.sigmoid(logits.float())
    if loss == "bce_softmax_pose" and pose_columns is not None and pose_columns.numel():
        scores[:, pose_columns] = torch.softmax(logits.float()[:, pose_columns], dim=1)
    return scores


class ValidationSink(Protocol):
    """Where validation scores go (e.g. `engine.supervised.FrameMapValidation`): fed per batch on every rank,
    computed once per validation epoch over all ranks."""

    def reset(self) -> None: ...

    def update(self, box_ids: torch.Tensor, scores: torch.Tensor) -> None: ...

    def compute(self) -> dict[str, float]: ...


class DetectionModule(L.LightningModule):
    """Trains `model([slow, fast], boxes) -> logits` with multi-label targets; validation collects per-box scores.

    Validation hands each batch's (box ids, scores) to `validation` (a `ValidationSink` the stage sets: frame-mAP
    and a detection CSV); the module itself stays free of metrics and file formats.
    """

    def __init__(
        self,
        model_cfg: dict[str, Any],
        optim_cfg: dict[str, Any],
        num_classes: int,
        pose_columns: Sequence[int] = (),
        class_ids: Sequence[int] = (),
        loss_weight: str = "hard",
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.model = build_detector(ModelConfig(**model_cfg), num_classes)
        self.optim_cfg = _Namespace(optim_cfg)
        self.register_buffer("pose_columns", torch.as_tensor(list(pose_columns), dtype=torch.long), persistent=False)
        self.validation: Optional[ValidationSink] = None

    def forward(self, inputs: list[torch.Tensor], boxes: torch.Tensor) -> torch.Tensor:
        return self.model(inputs, boxes)

    def scores(self, inputs: list[torch.Tensor], boxes: torch.Tensor) -> torch.Tensor:
        return detection_scores(self(inputs, boxes), self.pose_columns, self.optim_cfg.loss)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        inputs, boxes = batch["views"][0]
        logits = self(inputs, boxes)
        weights = batch["box_scores"] if self.hparams.loss_weight == "score" else None
        loss = detection_loss(logits.float(), batch["labels"].float(), self.pose_columns, self.optim_cfg.loss, weights,
                              batch.get("label_mask"))
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
        if self.validation is None:
            return
        inputs, boxes = batch["views"][0]
        self.validation.update(batch["box_ids"].detach(), self.scores(inputs, boxes).detach().float())

    def on_validation_epoch_start(self) -> None:
        if self.validation is not None:
            self.validation.reset()

    def on_validation_epoch_end(self) -> None:
        if self.validation is None:
            return
        for name, value in self.validation.compute().items():  # every rank gets the same gathered numbers
            self.log(name, float(value), prog_bar=name.endswith("mAP"), sync_dist=False, rank_zero_only=False)

    def configure_optimizers(self) -> Any:
        return configure_recipe(self, self.optim_cfg)


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
