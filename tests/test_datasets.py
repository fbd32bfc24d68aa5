from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from seal_transfer.data.datasets import (
    ClipSpec,
    KeyframeDataset,
    build_keyframe_index,
    check_videos,
    collate_keyframes,
    find_video,
)
from seal_transfer.data.formats.ava import AvaTable, LabelMap, VideoTiming
from seal_transfer.data.transforms import AugmentConfig, ClipTransform
from seal_transfer.data.video import write_video
from seal_transfer.errors import UserError

LABELS = LabelMap([2, 5, 9], {2: "a", 5: "b", 9: "c"})


def _table() -> AvaTable:
    # keyframe (v1, 902): person 0 has actions 2 and 9 (two rows, one box); person 1 has 5.
    # keyframe (v1, 903): person 0 has 5. An unknown action (7) is ignored.
    return AvaTable.from_columns(
        ["v1", "v1", "v1", "v1", "v1"],
        [902, 902, 902, 903, 903],
        [[0.1, 0.1, 0.5, 0.9], [0.1, 0.1, 0.5, 0.9], [0.5, 0.2, 0.9, 0.8], [0.2, 0.1, 0.6, 0.9], [0.2, 0.1, 0.6, 0.9]],
        [2, 9, 5, 5, 7],
        [0, 0, 1, 0, 0],
    )


def test_index_groups_rows_into_boxes_with_multi_hot_labels() -> None:
    index = build_keyframe_index(_table(), LABELS)
    assert index.video_ids == ["v1", "v1"] and index.timestamps.tolist() == [902, 903]
    assert index.box_start.tolist() == [0, 2, 3]
    assert index.labels.tolist() == [[1, 0, 1], [0, 1, 0], [0, 1, 0]]
    assert index.person_ids.tolist() == [0, 1, 0]
    unlabeled = build_keyframe_index(_table(), None)
    assert unlabeled.labels.shape == (3, 0)
    kept = build_keyframe_index(_table(), LABELS, keep=lambda vid, ts: ts != 902)
    assert len(kept) == 1 and kept.num_boxes == 1


@pytest.fixture()
def video_dir(tmp_path: Path) -> Path:
    frames = np.zeros((60, 48, 64, 3), np.uint8)
    frames[:, 10:40, 10:30] = 200
    write_video(tmp_path / "v1.mp4", frames, fps=15)
    return tmp_path


def _dataset(video_dir: Path, views: int = 1, train: bool = True) -> KeyframeDataset:
    aug = AugmentConfig(min_short_side=48, max_short_side=56, crop_size=40, eval_short_side=48)
    timing = {"v1": VideoTiming(fps=15, time_offset=900, first_keyframe=902, last_keyframe=903)}
    return KeyframeDataset(
        build_keyframe_index(_table(), LABELS),
        {"v1": video_dir / "v1.mp4"},
        timing,
        ClipSpec(num_frames=8, sample_rate=2, alpha=4),
        ClipTransform(aug, train=train),
        seed=3,
        views=views,
    )


def test_item_and_collate_shapes(video_dir: Path) -> None:
    ds = _dataset(video_dir)
    item = ds[0]
    (slow, fast), boxes = item["views"][0]
    assert fast.shape == (3, 8, 40, 40) and slow.shape == (3, 2, 40, 40)
    assert boxes.shape == (2, 4) and item["labels"].shape == (2, 3)
    batch = collate_keyframes([ds[0], ds[1]])
    (bslow, bfast), bboxes = batch["views"][0]
    assert bfast.shape == (2, 3, 8, 40, 40)
    assert bboxes[:, 0].tolist() == [0.0, 0.0, 1.0]
    assert batch["box_ids"].tolist() == [0, 1, 2]
    assert batch["boxes_per_item"].tolist() == [2, 1]


def test_views_are_deterministic_and_differ(video_dir: Path) -> None:
    ds = _dataset(video_dir, views=2)
    a = ds[0]["views"]
    b = ds[0]["views"]
    assert torch.equal(a[0][0][1], b[0][0][1])
    assert not torch.equal(a[0][0][1], a[1][0][1])
    ds.set_epoch(1)
    assert not torch.equal(ds[0]["views"][0][0][1], a[0][0][1])


def test_eval_sizes_pad_in_collate(video_dir: Path) -> None:
    ds = _dataset(video_dir, train=False)
    batch = collate_keyframes([ds[0], ds[1]])
    assert batch["views"][0][0][1].shape[-2:] == (48, 64)


def test_video_ids_cannot_escape(tmp_path: Path) -> None:
    for bad in ("../etc/passwd", "/abs", "a/b", ".."):
        with pytest.raises(UserError, match="not a plain name"):
            find_video(tmp_path, bad)


def test_check_videos_counts_broken(tmp_path: Path, video_dir: Path) -> None:
    (tmp_path / "empty.mp4").write_bytes(b"")
    paths = {"v1": video_dir / "v1.mp4", "empty": tmp_path / "empty.mp4"}
    with pytest.raises(UserError, match="1 of 2 videos are unreadable"):
        check_videos(paths, 0.01, "test set")
    good, broken = check_videos(paths, 0.5, "test set")
    assert list(good) == ["v1"] and len(broken) == 1 and "empty.mp4" in broken[0]
