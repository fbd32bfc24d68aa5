"""Clip classification with the same SlowFast backbone: the generic-clip pretraining row of Table 5 (the
synthetic world's stand-in for Kinetics). Its exported weights initialise a detector's backbone."""

from __future__ import annotations

import csv
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F

from seal_transfer.data.datamodules import KeyframeDataModule
from seal_transfer.data.datasets import ClipClassificationDataset, collate_clips
from seal_transfer.data.domains import synthetic_root
from seal_transfer.data.transforms import ClipTransform
from seal_transfer.engine.detection import _Namespace, _set_epoch
from seal_transfer.engine.fit import (
    build_trainer,
    export_weights,
    quiet_lightning,
    resume_checkpoint,
    run_fit,
)
from seal_transfer.engine.schedule import configure_recipe
from seal_transfer.errors import UserError, located
from seal_transfer.models.config import ModelConfig, clip_spec
from seal_transfer.models.slowfast import build_classifier
from seal_transfer.rundir import WEIGHTS


class ClassificationModule(L.LightningModule):
    def __init__(self, model_cfg: dict[str, Any], optim_cfg: dict[str, Any], num_classes: int) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.model = build_classifier(ModelConfig(**model_cfg), num_classes)
        self.optim_cfg = _Namespace(optim_cfg)
        self._correct = 0
        self._seen = 0

    def forward(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        return self.model(inputs)

    def on_train_epoch_start(self) -> None:
        _set_epoch(self.trainer.train_dataloader, self.current_epoch)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        loss = F.cross_entropy(self(batch["inputs"]).float(), batch["labels"])
        if not torch.isfinite(loss):
            raise FloatingPointError(f"training loss is {loss.item()} at step {self.global_step}; stopping")
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["labels"]))
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        pred = self(batch["inputs"]).argmax(1)
        acc = (pred == batch["labels"]).float().mean()
        self.log("val/accuracy", acc, prog_bar=True, sync_dist=True, batch_size=len(batch["labels"]))

    def configure_optimizers(self) -> Any:
        return configure_recipe(self, self.optim_cfg)


def read_clip_list(path: Path, video_root: Path, num_classes: int) -> list[tuple[Path, int]]:
    """`video_path,label_index` rows (header optional); paths are relative to the list's folder."""
    if not path.is_file():
        raise UserError(f"{path}: file not found")
    items: list[tuple[Path, int]] = []
    with path.open(newline="") as handle:
        for lineno, row in enumerate(csv.reader(handle), start=1):
            if not row or row[0].startswith("#") or (lineno == 1 and not row[-1].strip().lstrip("-").isdigit()):
                continue
            if len(row) != 2:
                raise located(path, lineno, f"expected 2 columns (video_path,label_index), found {len(row)}")
            try:
                label = int(row[1])
            except ValueError:
                raise located(path, lineno, f"label_index '{row[1]}' is not an integer") from None
            if not 0 <= label < num_classes:
                raise located(path, lineno, f"label_index {label} outside [0, {num_classes})")
            rel = Path(row[0])
            if rel.is_absolute() or ".." in rel.parts:
                raise located(path, lineno, f"video path '{row[0]}' must stay inside {video_root}")
            items.append((video_root / rel, label))
    return items


def run_classification_pretrain(cfg: Any, out_dir: Path) -> dict[str, Any]:
    quiet_lightning()
    L.seed_everything(int(cfg.seed), workers=True, verbose=False)
    g = cfg.data.generic
    root = Path(g.root).expanduser() if g.root is not None else synthetic_root(cfg, "generic") / "generic"
    classes_path = root / g.classes
    if not classes_path.is_file():
        raise UserError(f"{classes_path}: file not found (config key 'data.generic.classes')")
    classes = [c.strip() for c in classes_path.read_text().splitlines() if c.strip()]
    train_items = read_clip_list(root / g.train_list, root, len(classes))
    val_items = read_clip_list(root / g.val_list, root, len(classes))
    spec = clip_spec(cfg.model)
    aug = cfg.data.augment
    train = ClipClassificationDataset(train_items, spec, ClipTransform(aug, train=True), train=True, seed=int(cfg.seed))
    val = ClipClassificationDataset(val_items, spec, ClipTransform(aug, train=False), train=False, seed=int(cfg.seed))
    module = ClassificationModule(
        asdict(cfg.model), asdict(cfg.optim), len(classes)
    )
    datamodule = KeyframeDataModule(train, val, int(cfg.data.batch_size), int(cfg.data.num_workers),
                                    collate_fn=collate_clips)
    trainer = build_trainer(cfg, out_dir, monitor="val/accuracy")
    resume = resume_checkpoint(out_dir, announce="pretrain")
    started = time.time()
    result = run_fit(trainer, module, datamodule, out_dir, resume, validate=True)
    accuracy = float(result[0]["val/accuracy"]) if result else float("nan")
    if trainer.is_global_zero:
        export_weights(
            module,
            out_dir / WEIGHTS,
            {"task": "classification", "classes": classes, "model": asdict(cfg.model)},
        )
    return {
        "stage": "pretrain",
        "task": "classification",
        "accuracy": accuracy,
        "num_classes": len(classes),
        "train_clips": len(train),
        "val_clips": len(val),
        "epochs": int(trainer.current_epoch),
        "wall_time_s": round(time.time() - started, 1),
    }
