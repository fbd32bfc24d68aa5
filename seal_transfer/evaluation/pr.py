"""Precision/recall points of AVA frame-mAP, per class: the ranked true-positive flags `frame_map` itself computes.

`frame_map` returns one number per class; a PR curve needs the ranking behind it. Rather than re-applying the
evaluator's filters (label map, exclusions, unscored keyframes, top-k per keyframe, empty boxes), the curves are
read from `frame_map(..., keep_ranking=True)`, so each curve's area is by construction the AP it reports.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from seal_transfer.data.formats.ava import AvaTable
from seal_transfer.evaluation.frame_map import frame_map


@dataclass
class PRCurve:
    """One class's detections in ranking order: precision/recall after each, and the VOC AP of the curve."""

    class_id: int
    precision: np.ndarray  # (D,)
    recall: np.ndarray  # (D,)
    scores: np.ndarray  # (D,) descending
    num_gt: int
    ap: float  # NaN without GT, 0 without detections (as frame_map)


def precision_recall_curves(
    gt: AvaTable,
    detections: AvaTable,
    class_ids: Sequence[int],
    *,
    exclusions: Iterable[tuple[str, float]] = (),
    negative_keyframes: Iterable[tuple[str, float]] = (),
    iou_threshold: float = 0.5,
    protocol: str = "2020",
    top_k: int = 50,
) -> dict[int, PRCurve]:
    """PR curve of every class in `class_ids` (the evaluated label map), from the detections `frame_map` ranks."""
    result = frame_map(gt, detections, class_ids, exclusions=exclusions, negative_keyframes=negative_keyframes,
                       iou_threshold=iou_threshold, protocol=protocol, top_k=top_k, keep_ranking=True)
    assert result.ranking is not None
    curves: dict[int, PRCurve] = {}
    for cid, (scores, hits) in result.ranking.items():
        num_gt = result.num_gt_per_class[cid]
        tp_cum = np.cumsum(hits, dtype=np.int64)
        curves[cid] = PRCurve(
            class_id=cid,
            precision=tp_cum / np.arange(1, hits.size + 1, dtype=np.float64),
            recall=(tp_cum / num_gt if num_gt > 0 else np.zeros(hits.size)).astype(np.float64),
            scores=np.asarray(scores, dtype=np.float64),
            num_gt=int(num_gt),
            ap=result.per_class[cid],
        )
    return curves
