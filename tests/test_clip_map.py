"""SEAL Clips class buckets (paper Table 3): ranking rule, naming, configurability, bucket means."""

from __future__ import annotations

import math

import pytest
from omegaconf import OmegaConf

from seal_transfer.evaluation.clip_map import (
    BucketConfig,
    bucket_classes,
    bucket_name,
    bucketed_map,
    clip_bucket_map,
    rank_classes,
)
from seal_transfer.evaluation.frame_map import FrameMapResult


def test_rank_by_frequency_then_class_id():
    assert rank_classes({5: 10, 3: 10, 9: 50, 1: 0}) == [9, 3, 5, 1]


def test_default_buckets_are_the_paper_ranges():
    counts = {cid: 1000 - cid for cid in range(1, 173)}  # class 1 most frequent
    buckets = bucket_classes(counts)
    assert list(buckets) == ["top50", "top50-100", "top150"]
    assert buckets["top50"] == list(range(1, 51))
    assert buckets["top50-100"] == list(range(51, 101))
    assert buckets["top150"] == list(range(1, 151))


def test_buckets_are_configurable_and_omegaconf_compatible():
    config = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(BucketConfig),
                                                 {"ranges": [[0, 2], [2, 4]], "names": ["head", "tail"]}))
    assert isinstance(config, BucketConfig)
    buckets = bucket_classes({1: 9, 2: 8, 3: 7, 4: 6, 5: 5}, config)
    assert buckets == {"head": [1, 2], "tail": [3, 4]}
    assert bucket_classes({1: 1}, [[0, 10]]) == {"top10": [1]}
    assert bucket_name(10, 20) == "top10-20"
    with pytest.raises(ValueError):
        bucket_classes({1: 1}, [[5, 5]])
    with pytest.raises(ValueError):
        BucketConfig(ranges=[[0, 1]], names=["a", "b"]).bucket_names()


def test_bucket_mean_skips_classes_without_ap():
    aps = {1: 0.5, 2: math.nan, 3: 0.1, 4: 0.3}
    out = bucketed_map(aps, {"a": [1, 2, 3], "b": [2], "c": [4, 99]})
    assert out["a"] == pytest.approx(0.3) and math.isnan(out["b"]) and out["c"] == pytest.approx(0.3)


def test_clip_bucket_map_from_a_frame_map_result():
    result = FrameMapResult(
        mAP=0.4, per_class={1: 0.6, 2: 0.2}, num_gt_per_class={}, num_detections_per_class={},
        num_true_positives_per_class={}, num_gt_boxes=0, num_keyframes=0, num_detection_keyframes=0,
        num_detections=0, num_detections_evaluated=0, num_ignored_class=0, num_dropped_excluded=0,
        num_dropped_unscored=0, num_dropped_top_k=0, num_dropped_invalid_box=0, num_excluded_keyframes=0,
    )
    out = clip_bucket_map(result, {1: 5, 2: 9}, BucketConfig(ranges=[[0, 1], [1, 2]]))
    assert out == {"all": 0.4, "top1": 0.2, "top1-2": 0.6}
