"""SEAL Clips frame-mAP by class bucket (paper Table 3): classes ranked by training frequency, mAP per rank range.

The paper reports top50, top50-100 and top150 of the 172 atomic classes. Ranking rule (the paper does not give
one): training count descending, ties by class id ascending; classes absent from the counts are not ranked.
A bucket's mAP is the mean AP of its classes that have an AP (classes without evaluation GT have NaN and are
left out, like the overall mean); a bucket with no such class is NaN.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from seal_transfer.evaluation.config import BucketConfig, bucket_name
from seal_transfer.evaluation.frame_map import FrameMapResult


def _as_ranges(buckets: BucketConfig | Sequence[Sequence[int]]) -> tuple[list[tuple[int, int]], list[str]]:
    if isinstance(buckets, BucketConfig):
        ranges, names = [(int(s), int(e)) for s, e in buckets.ranges], buckets.bucket_names()
    else:
        ranges = [(int(s), int(e)) for s, e in buckets]
        names = [bucket_name(s, e) for s, e in ranges]
    for start, end in ranges:
        if start < 0 or end <= start:
            raise ValueError(f"bucket range [{start}, {end}) is empty or negative")
    return ranges, names


def rank_classes(train_counts: Mapping[int, int]) -> list[int]:
    """Class ids by training count, most frequent first; ties by class id."""
    return [cid for cid, _ in sorted(train_counts.items(), key=lambda kv: (-int(kv[1]), int(kv[0])))]


def bucket_classes(
    train_counts: Mapping[int, int], buckets: BucketConfig | Sequence[Sequence[int]] = ((0, 50), (50, 100), (0, 150))
) -> dict[str, list[int]]:
    """Bucket name → class ids (in rank order) whose frequency rank falls in the bucket's [start, end)."""
    ranked = rank_classes(train_counts)
    ranges, names = _as_ranges(buckets)
    return {name: ranked[start:end] for name, (start, end) in zip(names, ranges)}


def bucketed_map(per_class_ap: Mapping[int, float], buckets: Mapping[str, Sequence[int]]) -> dict[str, float]:
    """Mean AP per bucket over its classes that have a (non-NaN) AP; NaN for a bucket without any."""
    out: dict[str, float] = {}
    for name, classes in buckets.items():
        values = np.asarray([per_class_ap[c] for c in classes if c in per_class_ap], dtype=np.float64)
        values = values[~np.isnan(values)]
        out[name] = float(values.mean()) if values.size else math.nan
    return out


def clip_bucket_map(
    result: FrameMapResult, train_counts: Mapping[int, int], config: BucketConfig | None = None
) -> dict[str, float]:
    """Table 3 numbers from a frame-mAP result: {'all': mAP, 'top50': ..., 'top50-100': ..., 'top150': ...}."""
    buckets = bucket_classes(train_counts, config or BucketConfig())
    return {"all": result.mAP, **bucketed_map(result.per_class, buckets)}
