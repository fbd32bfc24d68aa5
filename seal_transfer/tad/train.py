"""Temporal detector training for the SEAL Tubes stage (paper §4, Table 4): one experiment per
"task:stream[+stream]" (`tubes.experiments`), trained per tube on stored features, resumable, exported as model.pt.

The stage's layout under RUN/tubes/: config.yaml, features/{slowfast,second}/{vid}__{tid}.{npy,json},
{aa,ca}/{streams}/{checkpoints/, logs/, model.pt, predictions_val.json, metrics.json}, and metrics.json (written by
`evaluate`/`all` only: it marks the stage finished). Data: `tad/dataset.py`; evaluation: `tad/evaluate.py`.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import lightning as L
import torch

from seal_transfer.engine.config import OptimConfig
from seal_transfer.engine.schedule import build_optimizer, lightning_optimizers, step_schedule
from seal_transfer.errors import UserError
from seal_transfer.models.config import TadConfig
from seal_transfer.models.tad import TemporalDetector
from seal_transfer.rundir import WEIGHTS
from seal_transfer.tad.config import Experiment, TadTrainConfig, TubesConfig
from seal_transfer.tad.dataset import TaskSplit, TubeCollate, TubeDataset

# --------------------------------------------------------------------------------------------- training


class TadModule(L.LightningModule):
    """Per-tube training of the temporal detector with its multi-task loss."""

    def __init__(self, in_channels: int, num_classes: int, multilabel: bool, tad: dict[str, Any],
                 train: dict[str, Any]) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.model = TemporalDetector(in_channels, num_classes, multilabel, TadConfig(**tad))
        self.train_cfg = TadTrainConfig(**train)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        targets = [{k: v.to(self.device) for k, v in t.items()} for t in batch["targets"]]
        losses = self.model.loss(batch["x"], batch["mask"], targets)
        if not torch.isfinite(losses["loss"]):
            raise FloatingPointError(f"TAD training loss is {losses['loss'].item()} at step {self.global_step}")
        n = len(batch["index"])
        self.log("train/loss", losses["loss"], prog_bar=True, batch_size=n)
        for key in ("actionness", "boundary", "classification", "refinement"):
            self.log(f"train/{key}", losses[key], batch_size=n)
        return losses["loss"]

    def configure_optimizers(self) -> Any:
        # AdamW with decay on weights only, warm-up from 1 % then cosine: the project's optimiser builder and
        # step schedule with the temporal detector's own knobs (tubes.train.*).
        cfg = self.train_cfg
        optimizer = build_optimizer(self.named_parameters(),
                                    OptimConfig(name="adamw", lr=cfg.lr, weight_decay=cfg.weight_decay))
        return lightning_optimizers(self, optimizer, lambda total, per_epoch: step_schedule(
            optimizer, total, per_epoch, cfg.warmup_epochs, 0.01, cfg.min_lr_ratio))



def train_experiment(cfg: Any, tc: TubesConfig, exp: Experiment, split: TaskSplit, feature_root: Path,
                     out_dir: Path) -> dict[str, Any]:
    """Train one experiment (resumes from checkpoints/last.ckpt); exports out_dir/model.pt."""
    from seal_transfer.data.datamodules import KeyframeDataModule
    from seal_transfer.engine.fit import build_trainer, export_weights, quiet_lightning, resume_checkpoint, run_fit

    quiet_lightning()
    dataset = TubeDataset(split, feature_root, exp.streams, train=True, max_length=tc.train.max_length, seed=cfg.seed)
    if len(dataset) == 0:
        raise UserError(f"{exp.name}: no training tube has features in {feature_root} (run tubes.step=extract)")
    in_channels = int(dataset[0]["x"].shape[0])
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    module = TadModule(in_channels, len(split.class_names), split.multilabel, asdict(tc.tad), asdict(tc.train))
    # The epoch-seeded data module (shared with the keyframe stages) makes shuffle order and crops a function of
    # (seed, epoch), so a run resumed from last.ckpt trains exactly as an uninterrupted one.
    data = KeyframeDataModule(dataset, None, tc.train.batch_size, num_workers=0,
                              collate_fn=TubeCollate(module.model.length_multiple))
    trainer = build_trainer(cfg, out_dir, monitor=None, max_epochs=tc.train.epochs,
                            gradient_clip_val=tc.train.gradient_clip, limit_val_batches=0,
                            num_sanity_val_steps=0, precision="32-true")
    started = time.time()
    resume = resume_checkpoint(out_dir, announce=f"tubes {exp.name}")
    run_fit(trainer, module, data, out_dir, resume)
    meta = {"task": exp.task, "streams": list(exp.streams), "in_channels": in_channels,
            "num_classes": len(split.class_names), "multilabel": split.multilabel, "class_names": split.class_names,
            "tad": asdict(tc.tad)}
    export_weights(module, out_dir / WEIGHTS, meta)
    return {"train_tubes": len(dataset), "train_tubes_without_features": dataset.missing,
            "train_seconds": round(time.time() - started, 1), "in_channels": in_channels}


def load_detector(path: Path) -> tuple[TemporalDetector, dict[str, Any]]:
    if not path.is_file():
        raise UserError(f"{path}: no trained temporal detector (run tubes.step=train first)")
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    meta = ckpt["seal_transfer"]
    model = TemporalDetector(int(meta["in_channels"]), int(meta["num_classes"]), bool(meta["multilabel"]),
                             TadConfig(**meta["tad"]))
    state = {k[len("model."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
    model.load_state_dict(state)
    return model.eval(), meta


def resolve_device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"config key 'tubes.device': '{name}' asked for but no CUDA device is available")
    return name
