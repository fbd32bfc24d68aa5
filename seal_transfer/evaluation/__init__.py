"""Metrics with the official evaluators' numbers: AVA frame-mAP, SEAL Clips buckets, temporal detection mAP.

`FrameMAP` (torchmetrics) is imported lazily so that the numpy-only evaluators load without torch.
"""

from __future__ import annotations

from typing import Any

from seal_transfer.evaluation.clip_map import bucket_classes, bucketed_map, clip_bucket_map
from seal_transfer.evaluation.config import BucketConfig
from seal_transfer.evaluation.frame_map import FrameMapResult, evaluate_keyed, frame_map
from seal_transfer.evaluation.pr import PRCurve, precision_recall_curves
from seal_transfer.evaluation.temporal_map import (
    TadResult,
    average_map,
    average_map_per_tube,
)

__all__ = [
    "BucketConfig", "FrameMAP", "FrameMapResult", "PRCurve", "TadResult",
    "average_map", "average_map_per_tube", "bucket_classes", "bucketed_map", "clip_bucket_map", "evaluate_keyed",
    "frame_map", "precision_recall_curves",
]


def __getattr__(name: str) -> Any:
    if name == "FrameMAP":
        from seal_transfer.evaluation.metric import FrameMAP

        return FrameMAP
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
