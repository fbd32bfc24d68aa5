"""Two-view pseudo-labelling: score every target box under two random views, apply the selection rule, and
write the kept samples as AVA-layout rows (+ score) in the source label space, with statistics."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from seal_transfer.data.datamodules import KeyframeSplit
from seal_transfer.data.datasets import collate_keyframes
from seal_transfer.data.formats.ava import AvaTable, LabelMap
from seal_transfer.data.workers import decode_worker_init
from seal_transfer.pseudo.selection import Selection, select


@dataclass
class TwoViewScores:
    box_ids: np.ndarray  # (N,) ids into the split's box arrays, ascending
    view1: np.ndarray  # (N, C)
    view2: np.ndarray  # (N, C)
    seconds: float


@torch.inference_mode()
def score_two_views(
    module: Any,
    split: KeyframeSplit,
    *,
    batch_size: int,
    num_workers: int = 0,
    shard: tuple[int, int] = (0, 1),
    progress: bool = True,
    device: Optional[torch.device] = None,
) -> TwoViewScores:
    """Score all boxes of `split` (a two-view dataset) with `module.scores`.

    One backbone pass per keyframe per view; all boxes of a keyframe go through the RoI head together. `shard`
    = (rank, world_size) labels every world_size-th keyframe starting at rank, so shards are disjoint and their
    union (sorted by box id) equals a single-process run.
    """
    rank, world = shard
    dataset = split.dataset
    indices = list(range(rank, len(dataset), world))
    loader = DataLoader(
        Subset(dataset, indices),
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=collate_keyframes,
        worker_init_fn=decode_worker_init,
    )
    device = device or next(module.parameters()).device
    was_training = module.training
    module.eval()
    ids: list[np.ndarray] = []
    v1: list[np.ndarray] = []
    v2: list[np.ndarray] = []
    started = time.time()
    boxes_done = 0
    bar = tqdm(total=len(indices), desc="pseudo-label", unit="kf", disable=not progress, dynamic_ncols=True)
    try:
        for batch in loader:
            views = []
            for inputs, boxes in batch["views"]:
                views.append(module.scores([x.to(device) for x in inputs], boxes.to(device)).float().cpu().numpy())
            ids.append(batch["box_ids"].numpy())
            v1.append(views[0])
            v2.append(views[1])
            boxes_done += len(batch["box_ids"])
            bar.update(len(batch["index"]))
            elapsed = max(time.time() - started, 1e-9)
            bar.set_postfix(boxes_per_s=f"{boxes_done / elapsed:.1f}")
    finally:
        bar.close()
        module.train(was_training)
    num_classes = int(module.hparams.num_classes)
    box_ids = np.concatenate(ids) if ids else np.zeros(0, np.int64)
    order = np.argsort(box_ids, kind="stable")

    def stacked(parts: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(parts)[order] if parts else np.zeros((0, num_classes), np.float32)

    return TwoViewScores(box_ids[order], stacked(v1), stacked(v2), time.time() - started)


def pseudo_label_rows(
    split: KeyframeSplit, scores: TwoViewScores, selection: Selection, source_labelmap: LabelMap
) -> AvaTable:
    """Kept samples as `pseudo`-layout rows (one per kept class), ordered by box id then class column."""
    labels = selection.labels.numpy()
    box_rows, class_cols = np.nonzero(labels)
    if len(box_rows) == 0:
        return AvaTable.empty()
    base = split.boxes_table(scores.box_ids[box_rows])
    ids = np.asarray(source_labelmap.ids, dtype=np.int64)
    chosen_scores = (scores.view1[box_rows, class_cols] + scores.view2[box_rows, class_cols]) / 2
    return AvaTable(
        base.video_ids, base.timestamps, base.boxes, ids[class_cols], base.person_ids, chosen_scores.astype(np.float32)
    )


def _iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    ix1 = np.maximum(box[0], others[:, 0])
    iy1 = np.maximum(box[1], others[:, 1])
    ix2 = np.minimum(box[2], others[:, 2])
    iy2 = np.minimum(box[3], others[:, 3])
    inter = np.clip(ix2 - ix1, 0, None) * np.clip(iy2 - iy1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-12)


def truth_for_boxes(boxes: AvaTable, truth: AvaTable, iou_threshold: float = 0.5) -> list[set[int]]:
    """Hidden true source-space actions of each box: those of the truth box with the highest IoU ≥ threshold."""
    by_key: dict[tuple[str, float], list[int]] = {}
    for i, key in enumerate(zip(truth.video_ids.tolist(), truth.timestamps.tolist())):
        by_key.setdefault(key, []).append(i)
    out: list[set[int]] = []
    for i, key in enumerate(zip(boxes.video_ids.tolist(), boxes.timestamps.tolist())):
        rows = by_key.get(key)
        if not rows:
            out.append(set())
            continue
        rows_arr = np.asarray(rows)
        ious = _iou(boxes.boxes[i].astype(np.float64), truth.boxes[rows_arr].astype(np.float64))
        best = ious.max()
        if best < iou_threshold:
            out.append(set())
            continue
        match = rows_arr[np.isclose(ious, best)]
        out.append({int(a) for a in truth.action_ids[match]})
    return out


def selection_stats(
    split: KeyframeSplit,
    scores: TwoViewScores,
    selection: Selection,
    source_labelmap: LabelMap,
    truth: Optional[AvaTable],
) -> dict[str, Any]:
    """What a researcher checks after each round: how much was kept, how often views agreed, and — where the
    hidden truth exists (synthetic target) — how precise the kept pseudo labels are."""
    n = int(len(scores.box_ids))
    keep = selection.keep.numpy()
    kept = int(keep.sum())
    labels = selection.labels.numpy()
    per_class = {str(source_labelmap.ids[c]): int(v) for c, v in enumerate(labels.sum(0)) if v > 0}
    stats: dict[str, Any] = {
        "samples_seen": n,
        "keyframes_seen": int(len(np.unique(split.box_keyframes()[scores.box_ids]))) if n else 0,
        "kept": kept,
        "kept_fraction": kept / n if n else 0.0,
        "view_agreement_rate": float(selection.agree.float().mean()) if n else 0.0,
        "confident_fraction": float(selection.confident.float().mean()) if n else 0.0,
        "mean_score_kept": float(selection.score[selection.keep].mean()) if kept else None,
        "mean_max_score_all": float(np.maximum(scores.view1.max(1), scores.view2.max(1)).mean()) if n else None,
        "per_class_counts": per_class,
        "labelling_seconds": round(scores.seconds, 2),
        "boxes_per_second": round(n / scores.seconds, 2) if scores.seconds > 0 else None,
    }
    if truth is not None and kept:
        kept_rows = np.flatnonzero(keep)
        boxes = split.boxes_table(scores.box_ids[kept_rows])
        truths = truth_for_boxes(boxes, truth)
        ids = np.asarray(source_labelmap.ids)
        hits = 0
        total = 0
        for row, truth_set in zip(kept_rows, truths):
            for col in np.flatnonzero(labels[row]):
                total += 1
                hits += int(ids[col]) in truth_set
        stats["pseudo_label_precision"] = hits / total if total else None
        stats["precision_note"] = (
            "fraction of kept (box, class) labels that are true source-space actions (hidden truth)"
        )
    elif truth is not None:
        stats["pseudo_label_precision"] = None
    return stats


def run_selection(scores: TwoViewScores, lambda_c: float, score_views: str, multi_label: bool) -> Selection:
    return select(torch.from_numpy(scores.view1), torch.from_numpy(scores.view2), lambda_c, score_views, multi_label)
