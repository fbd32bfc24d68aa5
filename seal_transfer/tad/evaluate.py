"""Temporal detection evaluation: the trained detector's per-tube predictions and their tIoU mAP (overall and per
class-frequency bucket), written as ActivityNet-layout predictions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from seal_transfer.data.formats.activitynet import TadSegments, write_activitynet_predictions
from seal_transfer.evaluation.clip_map import bucket_classes, bucketed_map
from seal_transfer.models.tad import TemporalDetector
from seal_transfer.rundir import METRICS, WEIGHTS
from seal_transfer.tad.config import Experiment, TubesConfig
from seal_transfer.tad.dataset import TaskSplit, TubeCollate, TubeDataset
from seal_transfer.tad.train import load_detector
from seal_transfer.utils.fileio import write_json

# --------------------------------------------------------------------------------------------- evaluation


def predict(model: TemporalDetector, dataset: TubeDataset, batch_size: int, device: str
            ) -> tuple[TadSegments, np.ndarray]:
    """Detections of every tube in seconds (video ids = video, plus tube ids), longest tubes batched together."""
    model = model.to(device)
    order = sorted(range(len(dataset)), key=lambda k: dataset.lengths[k])
    collate = TubeCollate(model.length_multiple)
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
