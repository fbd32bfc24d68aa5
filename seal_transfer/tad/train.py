"""SEAL Tubes source-domain stage (paper §4, Table 4): tubelet features, per-tube temporal detection, tIoU mAP.

Steps (`tubes.step`): extract → train → evaluate (`all` runs the three). Layout under RUN/tubes/:
  config.yaml, features/{slowfast,second}/{vid}__{tid}.{npy,json}, {aa,ca}/{streams}/{checkpoints/, logs/, model.pt,
  predictions_val.json, metrics.json}, metrics.json (written by `evaluate`/`all` only: it marks the stage finished).

Experiments (`tubes.experiments`, "task:stream[+stream]"): the paper's Table 4 rows are `aa:slowfast` (atomic
actions on Slowfast-T), `ca:second` (complex activities on TSP-T) and `ca:second+slowfast` (two-stream). The tube
plays the role of the video: ground truth is each tube's own segments, matched only within the tube.
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from torch.utils.data import Dataset

from seal_transfer.data.formats.activitynet import TadSegments, write_activitynet_predictions
from seal_transfer.data.formats.seal import SealTubes
from seal_transfer.engine.config import OptimConfig
from seal_transfer.engine.schedule import build_optimizer, lightning_optimizers, step_schedule
from seal_transfer.errors import UserError
from seal_transfer.evaluation.clip_map import bucket_classes, bucketed_map
from seal_transfer.models.config import TadConfig
from seal_transfer.models.tad import TemporalDetector
from seal_transfer.tad.config import TASK_TITLES, Experiment, TadTrainConfig, TubesConfig, parse_experiment
from seal_transfer.tad.features import (
    TubeFeatures,
    TubeRef,
    concat_streams,
    feature_stem,
    load_tube_features,
)

__all__ = ["TASK_TITLES", "Experiment", "TubesConfig", "evaluate_experiment", "parse_experiment", "resolve_device",
           "task_split", "train_experiment", "tube_refs"]
from seal_transfer.rundir import METRICS, WEIGHTS
from seal_transfer.utils.fileio import write_json

# --------------------------------------------------------------------------------------------- annotations


@dataclass
class TubeLabels:
    """One tube's ground truth for one task: segments in seconds and class indices."""

    video_id: str
    tube_id: str
    segments: np.ndarray  # (G, 2) seconds
    labels: np.ndarray  # (G,) class index


@dataclass
class TaskSplit:
    class_names: list[str]
    tubes: list[TubeLabels]
    multilabel: bool

    def gt_segments(self) -> tuple[TadSegments, np.ndarray]:
        """All GT as TadSegments (video ids = video) + tube ids, for per-tube mAP."""
        vids, tids, starts, ends, labels = [], [], [], [], []
        for t in self.tubes:
            vids += [t.video_id] * len(t.labels)
            tids += [t.tube_id] * len(t.labels)
            starts += t.segments[:, 0].tolist()
            ends += t.segments[:, 1].tolist()
            labels += [self.class_names[i] for i in t.labels]
        return TadSegments.from_columns(vids, starts, ends, labels), np.asarray(tids, dtype=str)

    def class_counts(self) -> dict[int, int]:
        counts = Counter(int(c) for t in self.tubes for c in t.labels)
        return dict(counts)


def task_split(tubes: SealTubes, task: str) -> TaskSplit:
    """Atomic actions (ids of the label map, multi-label) or complex activities (names, one per instant)."""
    if task == "aa":
        ids = list(tubes.atomic_classes.ids)
        column = {cid: i for i, cid in enumerate(ids)}
        names = [tubes.atomic_classes.names[c] for c in ids]
    else:
        names = list(tubes.activity_classes)
        column = {n: i for i, n in enumerate(names)}
    out = []
    for vid, video in tubes.videos.items():
        for tid, tube in video.tubes.items():
            segs = tube.atomic_actions if task == "aa" else tube.activities
            arr = np.asarray([[s.start, s.end] for s in segs], dtype=np.float64).reshape(-1, 2)
            out.append(TubeLabels(vid, tid, arr, np.asarray([column[s.label] for s in segs], dtype=np.int64)))
    return TaskSplit(names, out, multilabel=task == "aa")


def tube_refs(tubes: SealTubes, video_paths: dict[str, Path]) -> list[TubeRef]:
    return [TubeRef(vid, tid, video_paths[vid], float(video.fps), tube.frames, tube.boxes)
            for vid, video in tubes.videos.items() for tid, tube in video.tubes.items()]


# --------------------------------------------------------------------------------------------- TAD data


def load_streams(feature_root: Path, streams: tuple[str, ...], video_id: str, tube_id: str) -> Optional[TubeFeatures]:
    parts = [load_tube_features(feature_root / s, video_id, tube_id) for s in streams]
    if any(p is None for p in parts):
        return None
    return concat_streams(parts)  # type: ignore[arg-type]


class TubeDataset(Dataset):
    """Item = one tube's feature sequence (C, T) and its GT in feature steps; training crops long tubes."""

    def __init__(self, split: TaskSplit, feature_root: Path, streams: tuple[str, ...], *, train: bool,
                 max_length: int, seed: int = 0) -> None:
        self.split = split
        self.feature_root = feature_root
        self.streams = streams
        self.train = train
        self.max_length = max_length
        self.seed = seed
        self.epoch = 0
        self.items: list[int] = []
        self.lengths: list[int] = []  # feature steps per item (from the grid file), for length-sorted batching
        for i, tube in enumerate(split.tubes):
            if all((feature_root / s / f"{_stem(tube)}.npy").is_file() for s in streams):
                self.items.append(i)
                grid_file = feature_root / streams[0] / f"{_stem(tube)}.json"
                self.lengths.append(int(json.loads(grid_file.read_text())["num"]))
        self.missing = len(split.tubes) - len(self.items)

    def set_epoch(self, epoch: int) -> None:
        """Crop offsets are drawn from (seed, epoch, tube): a resumed run crops as an uninterrupted one."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, k: int) -> dict[str, Any]:
        i = self.items[k]
        tube = self.split.tubes[i]
        feats = load_streams(self.feature_root, self.streams, tube.video_id, tube.tube_id)
        assert feats is not None
        x, grid = feats.features, feats.grid
        steps = grid.to_steps(tube.segments).reshape(-1, 2) if len(tube.segments) else np.zeros((0, 2))
        labels = tube.labels
        offset = 0
        if self.train and len(x) > self.max_length:
            rng = np.random.default_rng([self.seed, self.epoch, i])
            offset = int(rng.integers(0, len(x) - self.max_length + 1))
            x = x[offset:offset + self.max_length]
            steps = steps - offset
        steps = np.clip(steps, 0, len(x))
        keep = steps[:, 1] - steps[:, 0] > 1e-3
        if self.train and len(tube.segments):
            # A crop that cuts away most of a segment must not teach a boundary there.
            full = (tube.segments[:, 1] - tube.segments[:, 0]) / grid.step
            keep &= (steps[:, 1] - steps[:, 0]) >= 0.5 * np.maximum(full, 1e-6)
        return {"x": torch.from_numpy(np.ascontiguousarray(x.T)), "segments": torch.from_numpy(steps[keep]).float(),
                "labels": torch.from_numpy(labels[keep]), "index": i, "offset": offset, "grid": grid}


def _stem(tube: TubeLabels) -> str:
    return feature_stem(tube.video_id, tube.tube_id)


def collate_tubes(items: list[dict[str, Any]], multiple: int) -> dict[str, Any]:
    """Pad to the longest tube (rounded up to `multiple`, the pyramid's total stride) with a validity mask."""
    length = max(it["x"].shape[1] for it in items)
    length = max(multiple, int(math.ceil(length / multiple)) * multiple)
    channels = items[0]["x"].shape[0]
    x = torch.zeros(len(items), channels, length)
    mask = torch.zeros(len(items), length, dtype=torch.bool)
    for b, it in enumerate(items):
        n = it["x"].shape[1]
        x[b, :, :n] = it["x"]
        mask[b, :n] = True
    targets = [{"segments": it["segments"], "labels": it["labels"]} for it in items]
    return {"x": x, "mask": mask, "targets": targets, "index": [it["index"] for it in items],
            "grids": [it["grid"] for it in items]}


class _Collate:
    def __init__(self, multiple: int) -> None:
        self.multiple = multiple

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        return collate_tubes(items, self.multiple)


# --------------------------------------------------------------------------------------------- training


_TAD_MODULE: Any = None


def tad_module_class() -> Any:
    """The LightningModule class, defined on first use so importing the config schema never imports Lightning."""
    global _TAD_MODULE
    if _TAD_MODULE is not None:
        return _TAD_MODULE
    import lightning as L

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

    _TAD_MODULE = TadModule
    return TadModule


def train_experiment(cfg: Any, tc: TubesConfig, exp: Experiment, split: TaskSplit, feature_root: Path,
                     out_dir: Path) -> dict[str, Any]:
    """Train one experiment (resumes from checkpoints/last.ckpt); exports out_dir/model.pt."""
    import lightning as L

    from seal_transfer.data.datamodules import KeyframeDataModule
    from seal_transfer.engine.fit import build_trainer, export_weights, quiet_lightning, resume_checkpoint, run_fit

    quiet_lightning()
    dataset = TubeDataset(split, feature_root, exp.streams, train=True, max_length=tc.train.max_length, seed=cfg.seed)
    if len(dataset) == 0:
        raise UserError(f"{exp.name}: no training tube has features in {feature_root} (run tubes.step=extract)")
    in_channels = int(dataset[0]["x"].shape[0])
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    module = tad_module_class()(in_channels, len(split.class_names), split.multilabel, asdict(tc.tad), asdict(tc.train))
    # The epoch-seeded data module (shared with the keyframe stages) makes shuffle order and crops a function of
    # (seed, epoch), so a run resumed from last.ckpt trains exactly as an uninterrupted one.
    data = KeyframeDataModule(dataset, None, tc.train.batch_size, num_workers=0,
                              collate_fn=_Collate(module.model.length_multiple))
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


# --------------------------------------------------------------------------------------------- evaluation


def predict(model: TemporalDetector, dataset: TubeDataset, batch_size: int, device: str
            ) -> tuple[TadSegments, np.ndarray]:
    """Detections of every tube in seconds (video ids = video, plus tube ids), longest tubes batched together."""
    model = model.to(device)
    order = sorted(range(len(dataset)), key=lambda k: dataset.lengths[k])
    collate = _Collate(model.length_multiple)
    vids: list[str] = []
    tids: list[str] = []
    starts: list[np.ndarray] = []
    ends: list[np.ndarray] = []
    labels: list[str] = []
    scores: list[np.ndarray] = []
    names = dataset.split.class_names
    for lo in range(0, len(order), batch_size):
        batch = collate([dataset[k] for k in order[lo:lo + batch_size]])
        detections = model.detect(batch["x"].to(device), batch["mask"].to(device))
        for det, index, grid in zip(detections, batch["index"], batch["grids"]):
            tube = dataset.split.tubes[index]
            seconds = grid.to_seconds(det.segments.cpu().numpy().reshape(-1, 2))
            n = len(seconds)
            vids += [tube.video_id] * n
            tids += [tube.tube_id] * n
            starts.append(seconds[:, 0])
            ends.append(seconds[:, 1])
            labels += [names[int(c)] for c in det.labels.cpu().tolist()]
            scores.append(det.scores.cpu().numpy())
    cat = (lambda parts: np.concatenate(parts) if parts else np.zeros(0))  # noqa: E731
    return TadSegments.from_columns(vids, cat(starts), cat(ends), labels, cat(scores)), np.asarray(tids, dtype=str)


def evaluate_experiment(tc: TubesConfig, exp: Experiment, train: TaskSplit, val: TaskSplit, feature_root: Path,
                        out_dir: Path, device: str) -> dict[str, Any]:
    """Per-tube temporal mAP (tIoU 0.5:0.05:0.95) overall and per frequency bucket; writes predictions_val.json."""
    from seal_transfer.evaluation.temporal_map import average_map_per_tube

    model, _ = load_detector(out_dir / WEIGHTS)
    dataset = TubeDataset(val, feature_root, exp.streams, train=False, max_length=tc.train.max_length)
    preds, pred_tids = predict(model, dataset, tc.train.eval_batch_size, device)
    write_activitynet_predictions(out_dir / "predictions_val.json",
                                  preds.with_video_ids(np.char.add(np.char.add(preds.video_ids, "/"), pred_tids)
                                                       if len(preds) else preds.video_ids))
    gt, gt_tids = val.gt_segments()
    result = average_map_per_tube(gt, gt_tids, preds, pred_tids, tc.tiou_thresholds)
    per_class_name = result.per_class()
    per_class = {i: per_class_name[n] for i, n in enumerate(val.class_names) if n in per_class_name}
    bucket_cfg = tc.aa_buckets if exp.task == "aa" else tc.ca_buckets
    buckets = bucket_classes(train.class_counts(), bucket_cfg)
    metrics: dict[str, Any] = {"all": result.average_mAP, **bucketed_map(per_class, buckets)}
    metrics.update({
        "mAP_at": {f"{t:.2f}": v for t, v in result.mAP_at.items()},
        "bucket_sizes": {name: len(ids) for name, ids in buckets.items()},
        "val_tubes": len(val.tubes), "val_tubes_without_features": dataset.missing,
        "num_gt": result.num_gt, "num_predictions": result.num_predictions,
        "per_class": {k: v for k, v in result.to_json()["per_class"].items()},
        "warnings": result.warnings,
    })
    write_json(out_dir / METRICS, metrics)
    return metrics


def resolve_device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"config key 'tubes.device': '{name}' asked for but no CUDA device is available")
    return name
