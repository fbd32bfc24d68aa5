"""Temporal detection mAP over tIoU thresholds with ActivityNet `eval_detection.py` semantics, vectorised.

Per class, predictions in descending score order each take the not-yet-matched GT segment of the same video (or
tube) with the highest tIoU, if that tIoU >= threshold; otherwise they are false positives. AP per class and
threshold is VOC-interpolated; mAP@t is the mean over the classes that have GT; average-mAP the mean over t.
Details the official code fixes and we keep: classes are those present in the GT subset; a class without
predictions has AP 0; predictions on videos without GT of their class (including videos outside the subset) are
false positives; a NaN tIoU (two zero-length segments) sorts first and passes every threshold, as NumPy's argsort
and `<` make it do there. Predictions whose label is not a GT class are ignored and counted (the official code
raises KeyError). Ties: equal scores rank by input order (earlier first); equal tIoU prefers the GT listed first.

The greedy matching is sequential only within one (video, class) group, so it runs as a loop over the rank of a
prediction inside its group (max predictions per group iterations), each step vectorised across all groups and
all thresholds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from seal_transfer.data.formats.activitynet import TadSegments
from seal_transfer.evaluation.frame_map import descending_rank, factorize_strings

DEFAULT_TIOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)


@dataclass
class TadResult:
    """Average-mAP, mAP per threshold and AP per (threshold, class)."""

    average_mAP: float
    mAP_at: dict[float, float]
    ap: np.ndarray  # (n_thresholds, n_classes)
    class_names: list[str]
    tiou_thresholds: np.ndarray
    num_gt: int
    num_predictions: int
    num_predictions_evaluated: int
    num_ignored_label: int  # predictions whose label is not a class of the GT (subset)
    warnings: list[str] = field(default_factory=list)

    def per_class(self) -> dict[str, float]:
        """AP of each class averaged over the thresholds."""
        return {name: float(v) for name, v in zip(self.class_names, self.ap.mean(axis=0))} if self.ap.size else {}

    def to_json(self) -> dict[str, Any]:
        def clean(value: float) -> float | None:
            return None if math.isnan(value) else float(value)

        return {
            "average_mAP": clean(self.average_mAP),
            "mAP_at": {f"{t:.2f}": clean(v) for t, v in self.mAP_at.items()},
            "per_class": {k: clean(v) for k, v in self.per_class().items()},
            "tiou_thresholds": [float(t) for t in self.tiou_thresholds],
            "num_gt": self.num_gt,
            "num_classes": len(self.class_names),
            "num_predictions": self.num_predictions,
            "num_predictions_evaluated": self.num_predictions_evaluated,
            "num_ignored_label": self.num_ignored_label,
            "warnings": list(self.warnings),
        }


def _segment_iou(p_start: np.ndarray, p_end: np.ndarray, g_start: np.ndarray, g_end: np.ndarray) -> np.ndarray:
    """Official `segment_iou` arithmetic (same op order), broadcasting."""
    inter = (np.minimum(p_end, g_end) - np.maximum(p_start, g_start)).clip(0)
    union = (g_end - g_start) + (p_end - p_start) - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return inter / union


def _interpolated_ap_rows(tp: np.ndarray, npos: float) -> np.ndarray:
    """VOC-interpolated AP of each row of a (n_thr, n) TP matrix already in ranking order."""
    n_thr, n = tp.shape
    if n == 0:
        return np.zeros(n_thr)
    tp_cum = np.cumsum(tp, axis=1).astype(np.float64)
    fp_cum = np.cumsum(~tp, axis=1).astype(np.float64)
    recall = tp_cum / npos
    precision = tp_cum / (tp_cum + fp_cum)
    envelope = np.maximum.accumulate(precision[:, ::-1], axis=1)[:, ::-1]
    previous = np.concatenate([np.zeros((n_thr, 1)), recall[:, :-1]], axis=1)
    out = np.zeros(n_thr)
    for t in range(n_thr):  # thresholds (10), not predictions
        steps = recall[t] != previous[t]
        terms = (recall[t][steps] - previous[t][steps]) * envelope[t][steps]
        if recall[t, -1] != 1.0:
            terms = np.append(terms, (1.0 - recall[t, -1]) * 0.0)
        out[t] = np.sum(terms)
    return out


def _match_segments(
    p_group: np.ndarray, p_start: np.ndarray, p_end: np.ndarray,
    g_group: np.ndarray, g_start: np.ndarray, g_end: np.ndarray, thresholds: np.ndarray,
) -> np.ndarray:
    """(n_thr, n_pred) TP flags; predictions sorted by (group, rank), GT in any order."""
    n_thr = thresholds.size
    tp = np.zeros((n_thr, p_group.size), dtype=bool)
    if p_group.size == 0 or g_group.size == 0:
        return tp
    g_order = np.argsort(g_group, kind="stable")
    g_group, g_start, g_end = g_group[g_order], g_start[g_order], g_end[g_order]
    change = np.empty(g_group.size, dtype=bool)
    change[0] = True
    np.not_equal(g_group[1:], g_group[:-1], out=change[1:])
    g_starts = np.flatnonzero(change)
    g_ids = g_group[g_starts]
    g_sizes = np.diff(np.append(g_starts, g_group.size))
    slot = np.searchsorted(g_ids, p_group)
    ok = slot < g_ids.size
    found = np.zeros(p_group.size, dtype=bool)
    found[ok] = g_ids[slot[ok]] == p_group[ok]
    # Position of each prediction within its group (predictions are sorted by group, then rank).
    p_change = np.empty(p_group.size, dtype=bool)
    p_change[0] = True
    np.not_equal(p_group[1:], p_group[:-1], out=p_change[1:])
    run_starts = np.flatnonzero(p_change)
    position = np.arange(p_group.size) - np.repeat(run_starts, np.diff(np.append(run_starts, p_group.size)))
    cand = np.flatnonzero(found)
    if cand.size == 0:
        return tp
    cand = cand[np.argsort(position[cand], kind="stable")]
    step_bounds = np.searchsorted(position[cand], np.arange(int(position[cand].max()) + 2))
    cand_start = g_starts[slot[cand]]
    cand_size = g_sizes[slot[cand]]
    locked = np.zeros((n_thr, g_group.size), dtype=bool)
    thr = thresholds[:, None, None]
    for step in range(step_bounds.size - 1):
        lo, hi = step_bounds[step], step_bounds[step + 1]
        if lo == hi:
            continue
        preds = cand[lo:hi]
        sizes = cand_size[lo:hi]
        width = int(sizes.max())
        cols = np.arange(width)[None, :]
        valid = cols < sizes[:, None]
        gt_index = np.where(valid, cand_start[lo:hi, None] + cols, 0)
        tiou = _segment_iou(p_start[preds, None], p_end[preds, None], g_start[gt_index], g_end[gt_index])
        tiou = np.where(np.isnan(tiou), np.inf, tiou)  # official: NaN sorts first and is never "< threshold"
        tiou = np.where(valid, tiou, -np.inf)
        eligible = (tiou[None] >= thr) & valid[None] & ~locked[:, gt_index]
        best = np.argmax(np.where(eligible, tiou[None], -np.inf), axis=2)  # first max: GT listed first
        t_idx, a_idx = np.nonzero(eligible.any(axis=2))
        chosen = gt_index[a_idx, best[t_idx, a_idx]]
        locked[t_idx, chosen] = True
        tp[t_idx, preds[a_idx]] = True
    return tp


def average_map(
    gt: TadSegments,
    predictions: TadSegments,
    tiou_thresholds: Sequence[float] | np.ndarray = DEFAULT_TIOU_THRESHOLDS,
) -> TadResult:
    """ActivityNet detection mAP at each tIoU threshold and their mean (`average_mAP`)."""
    thresholds = np.asarray(tiou_thresholds, dtype=np.float64).reshape(-1)
    if thresholds.size == 0:
        raise ValueError("tiou_thresholds is empty")
    notes: list[str] = []
    # Classes in first-seen GT order (the official activity_index).
    gt_label_codes, gt_label_uniques = factorize_strings(gt.labels) if len(gt) else (np.zeros(0, np.int64), [])
    if len(gt):
        first_seen = np.unique(gt_label_codes, return_index=True)[1]
        order = np.argsort(first_seen, kind="stable")
        class_names = [str(gt_label_uniques[i]) for i in order]
        remap = np.empty(len(gt_label_uniques), dtype=np.int64)
        remap[order] = np.arange(order.size)
        gt_cls = remap[gt_label_codes]
    else:
        class_names, gt_cls = [], np.zeros(0, np.int64)
    n_classes = len(class_names)
    name_to_class = {name: i for i, name in enumerate(class_names)}
    if len(predictions):
        p_codes, p_uniques = factorize_strings(predictions.labels)
        lookup = np.asarray([name_to_class.get(str(u), -1) for u in p_uniques], dtype=np.int64)
        p_cls_all = lookup[p_codes]
    else:
        p_cls_all = np.zeros(0, np.int64)
    known = p_cls_all >= 0
    num_ignored = int((~known).sum())
    if num_ignored:
        notes.append(f"{num_ignored} predictions have a label that is not a ground-truth class and were ignored")
    if n_classes == 0:
        notes.append("no ground-truth segments: mAP is undefined (NaN)")
        nan = float("nan")
        return TadResult(nan, {float(t): nan for t in thresholds}, np.zeros((thresholds.size, 0)), [], thresholds,
                         0, len(predictions), 0, num_ignored, notes)
    rows = np.flatnonzero(known)
    p_cls = p_cls_all[rows]
    # Video (or tube) codes shared by GT and predictions.
    all_videos = np.concatenate([gt.video_ids.astype(str), predictions.video_ids[rows].astype(str)])
    video_codes, _ = factorize_strings(all_videos)
    g_video, p_video = video_codes[: len(gt)], video_codes[len(gt):]
    g_group = g_video * n_classes + gt_cls
    p_group = p_video * n_classes + p_cls
    rank = descending_rank(predictions.scores[rows])
    span = max(rows.size, 1)
    by_group = np.argsort(p_group * span + rank, kind="stable")
    p_group, p_cls, rank = p_group[by_group], p_cls[by_group], rank[by_group]
    p_rows = rows[by_group]
    tp = _match_segments(p_group, predictions.starts[p_rows], predictions.ends[p_rows],
                         g_group, gt.starts, gt.ends, thresholds)
    # Per class: rank order, then interpolated AP at every threshold.
    by_class = np.argsort(p_cls * span + rank, kind="stable")
    cls_sorted, tp_sorted = p_cls[by_class], tp[:, by_class]
    bounds = np.searchsorted(cls_sorted, np.arange(n_classes + 1))
    npos = np.bincount(gt_cls, minlength=n_classes).astype(np.float64)
    ap = np.zeros((thresholds.size, n_classes))
    for c in range(n_classes):
        ap[:, c] = _interpolated_ap_rows(tp_sorted[:, bounds[c]:bounds[c + 1]], float(npos[c]))
    map_at = ap.mean(axis=1)
    return TadResult(
        average_mAP=float(map_at.mean()),
        mAP_at={float(t): float(m) for t, m in zip(thresholds, map_at)},
        ap=ap,
        class_names=class_names,
        tiou_thresholds=thresholds,
        num_gt=len(gt),
        num_predictions=len(predictions),
        num_predictions_evaluated=int(rows.size),
        num_ignored_label=num_ignored,
        warnings=notes,
    )


def tube_keys(video_ids: np.ndarray | Sequence[str], tube_ids: np.ndarray | Sequence[Any]) -> np.ndarray:
    """One key per (video, tube): a tube plays the role of a video in per-tube temporal detection."""
    videos = np.asarray(video_ids, dtype=str)
    tubes = np.asarray([str(t) for t in tube_ids], dtype=str) if len(tube_ids) else np.zeros(0, "U1")
    if videos.size == 0:
        return np.zeros(0, "U1")
    return np.char.add(np.char.add(videos, "\x1f"), tubes)  # unit separator: cannot occur in ids we read


def average_map_per_tube(
    gt: TadSegments,
    gt_tube_ids: np.ndarray | Sequence[Any],
    predictions: TadSegments,
    prediction_tube_ids: np.ndarray | Sequence[Any],
    tiou_thresholds: Sequence[float] | np.ndarray = DEFAULT_TIOU_THRESHOLDS,
) -> TadResult:
    """`average_map` where segments match only within the same (video, tube) (SEAL Tubes, paper Table 4)."""
    return average_map(
        gt.with_video_ids(tube_keys(gt.video_ids, gt_tube_ids)),
        predictions.with_video_ids(tube_keys(predictions.video_ids, prediction_tube_ids)),
        tiou_thresholds,
    )
