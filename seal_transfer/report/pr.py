"""Precision/recall points of AVA frame-mAP, per class, under exactly the rules `frame_map` scores with.

`frame_map` returns one number per class; a PR curve needs the ranked true-positive flags behind it. The filters
(label map, exclusions, unscored keyframes, top-k per keyframe, empty boxes) are applied here with the evaluation
module's own helpers, so the area under each curve is the AP `frame_map` reports (the tests check this).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from seal_transfer.data.formats.ava import AvaTable
from seal_transfer.evaluation.frame_map import (
    PROTOCOLS,
    descending_order,
    exact_float64,
    keyframe_codes,
    match_detections,
    voc_average_precision,
)


@dataclass
class PRCurve:
    """One class's detections in ranking order: precision/recall after each, and the VOC AP of the curve."""

    class_id: int
    precision: np.ndarray  # (D,)
    recall: np.ndarray  # (D,)
    scores: np.ndarray  # (D,) descending
    num_gt: int
    ap: float  # NaN without GT, 0 without detections (as frame_map)


def _class_index(class_list: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    ids = np.asarray(class_list, dtype=np.int64)
    order = np.argsort(ids)
    return ids[order], order.astype(np.int64)


def _lookup(ids: np.ndarray, sorted_ids: np.ndarray, sorted_index: np.ndarray) -> np.ndarray:
    ids = np.asarray(ids, dtype=np.int64)
    pos = np.clip(np.searchsorted(sorted_ids, ids), 0, sorted_ids.size - 1)
    return np.where(sorted_ids[pos] == ids, sorted_index[pos], -1)


def precision_recall_curves(
    gt: AvaTable,
    detections: AvaTable,
    class_ids: Sequence[int],
    *,
    exclusions: Iterable[tuple[str, float]] = (),
    iou_threshold: float = 0.5,
    protocol: str = "2020",
    top_k: int = 50,
) -> dict[int, PRCurve]:
    """PR curve of every class in `class_ids` (the evaluated label map), the same detections `frame_map` ranks."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    class_list = [int(c) for c in class_ids]
    if not class_list:
        raise ValueError("class_ids is empty: nothing to evaluate")
    n_classes = len(class_list)
    excluded_list = list(exclusions)
    ex_videos = np.asarray([v for v, _ in excluded_list], dtype=str) if excluded_list else np.zeros(0, "U1")
    ex_ts = np.asarray([t for _, t in excluded_list], dtype=np.float64)
    (gt_key, det_key, ex_key), n_keys = keyframe_codes(
        [gt.video_ids, detections.video_ids, ex_videos], [gt.timestamps, detections.timestamps, ex_ts]
    )
    size = max(n_keys, 1)
    sorted_ids, sorted_index = _class_index(class_list)
    gt_cls = _lookup(gt.action_ids, sorted_ids, sorted_index)
    det_cls = _lookup(detections.action_ids, sorted_ids, sorted_index)

    excluded = np.zeros(size, dtype=bool)
    excluded[ex_key] = True
    gt_keep = (gt_cls >= 0) & ~excluded[gt_key]
    if protocol == "2020":
        scored = np.zeros(size, dtype=bool)
        scored[gt_key] = True
        scored &= ~excluded
    else:
        scored = np.zeros(size, dtype=bool)
        scored[gt_key[gt_keep]] = True

    keep = (det_cls >= 0) & ~excluded[det_key]
    if protocol == "2020":
        keep &= scored[det_key]
    rows = np.flatnonzero(keep)
    scores = np.asarray(detections.scores)[rows]
    dk = det_key[rows]
    by_score = descending_order(scores)
    dropped = np.zeros(rows.size, dtype=bool)
    if top_k and top_k > 0 and rows.size:
        by_key = by_score[np.argsort(dk[by_score], kind="stable")]  # per keyframe, best first
        sorted_keys = dk[by_key]
        starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
        sizes = np.diff(np.r_[starts, sorted_keys.size])
        within = np.arange(by_key.size) - np.repeat(starts, sizes)
        dropped[by_key[within >= top_k]] = True
    raw = np.asarray(detections.boxes)[rows]
    dropped |= ~((raw[:, 1] < raw[:, 3]) & (raw[:, 0] < raw[:, 2]))

    kept = ~dropped
    selected = rows[kept]
    ranking = descending_order(np.asarray(detections.scores)[selected])
    d_cls = det_cls[selected]
    g_cls = gt_cls[gt_keep]
    tp = match_detections(
        det_key[selected] * n_classes + d_cls,
        exact_float64(np.asarray(detections.boxes)[selected]),
        gt_key[gt_keep] * n_classes + g_cls,
        exact_float64(np.asarray(gt.boxes)[gt_keep]),
        iou_threshold,
        ranking,
    )
    num_gt = np.bincount(g_cls, minlength=n_classes)
    cls_ranked, tp_ranked = d_cls[ranking], tp[ranking]
    score_ranked = np.asarray(detections.scores)[selected][ranking]
    curves: dict[int, PRCurve] = {}
    for i, cid in enumerate(class_list):
        mine = cls_ranked == i
        flags = tp_ranked[mine]
        tp_cum = np.cumsum(flags, dtype=np.int64)
        precision = tp_cum / np.arange(1, flags.size + 1, dtype=np.float64)
        recall = tp_cum / num_gt[i] if num_gt[i] > 0 else np.zeros(flags.size)
        curves[cid] = PRCurve(
            class_id=cid,
            precision=precision,
            recall=recall.astype(np.float64),
            scores=score_ranked[mine].astype(np.float64),
            num_gt=int(num_gt[i]),
            ap=voc_average_precision(flags, int(num_gt[i])),
        )
    return curves
