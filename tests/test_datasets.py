from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from seal_transfer.data.clip import ClipSpec
from seal_transfer.data.config import AugmentConfig
from seal_transfer.data.datasets import (
    KeyframeDataset,
    build_keyframe_index,
    check_keyframes,
    check_videos,
    collate_keyframes,
    find_video,
)
from seal_transfer.data.formats.ava import AvaTable, LabelMap, VideoTiming
from seal_transfer.data.transforms import ClipTransform
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


def test_index_select_keeps_keyframes_with_their_boxes() -> None:
    index = build_keyframe_index(_table(), LABELS)
    second = index.select(np.array([False, True]))
    assert second.video_ids == ["v1"] and second.timestamps.tolist() == [903]
    assert second.box_start.tolist() == [0, 1] and second.labels.tolist() == [[0, 1, 0]]
    assert len(index.select(np.array([False, False]))) == 0


def _rows(video: str, stamps: list[float]) -> AvaTable:
    n = len(stamps)
    return AvaTable.from_columns([video] * n, stamps, [[0.1, 0.1, 0.5, 0.9]] * n, [2] * n, [0] * n)


SPEC = ClipSpec(num_frames=8, sample_rate=2, alpha=4)  # frames centre-8 .. centre+6


def test_check_keyframes_skips_timestamps_outside_the_video(video_dir: Path) -> None:
    index = build_keyframe_index(_rows("v1", [899, 901.9, 902, 903, 904]), LABELS)
    timing = {"v1": VideoTiming(fps=15, time_offset=900, first_keyframe=902, last_keyframe=906)}
    checked = check_keyframes(index, {"v1": video_dir / "v1.mp4"}, timing, SPEC, annotations="gt.csv")
    assert checked.keep.tolist() == [False, True, True, True, False]  # frames -15, 28, 30, 45, 60 of 0..59
    assert checked.video_frames == {"v1": 60} and not checked.broken
    before, after = checked.skipped
    assert "v1.mp4: keyframe 0899 is frame -15, before the video's first frame" in before
    assert "v1.mp4: keyframe 0904 is frame 60, outside the video (frames 0..59, seconds 900..904)" in after
    assert "(timestamps from gt.csv)" in after
    ranged = check_keyframes(index, {"v1": video_dir / "v1.mp4"}, timing, SPEC, check_range=True)
    assert ranged.keep.tolist() == [False, False, True, True, False]
    assert "keyframe 901.900 is outside the keyframe range 902..906" in ranged.skipped[1]


def test_check_keyframes_skips_gaps_and_truncated_ends(tmp_path: Path, video_dir: Path) -> None:
    from torchvision.io import write_jpeg

    folder = tmp_path / "frames" / "v2"
    folder.mkdir(parents=True)
    for i in range(60):
        if i != 30:  # frame 30, the keyframe 902 itself, is lost
            image = torch.full((3, 24, 32), 4 * i, dtype=torch.uint8)
            write_jpeg(image, str(folder / f"v2_{i + 1:06d}.jpg"))
    index = build_keyframe_index(_rows("v2", [902, 903, 903.9, 904]), LABELS)
    timing = {"v2": VideoTiming(fps=15, time_offset=900, first_keyframe=902, last_keyframe=906)}
    checked = check_keyframes(index, {"v2": folder}, timing, SPEC, promised_frames={"v2": 120},
                              promised_by="nframes in tubes.json")
    assert checked.keep.tolist() == [False, True, False, False]
    gap, needs, outside = checked.skipped
    assert gap.endswith("v2: keyframe 0902 needs frame 30, but v2_000031.jpg is missing (a gap)")
    assert "keyframe 903.900 needs frame 60, past the last decodable frame 59: the video is truncated " \
           "(nframes in tubes.json promises 120 frames)" in needs
    assert "keyframe 0904 is frame 60, past the last decodable frame 59" in outside
    ds = KeyframeDataset(index.select(checked.keep), {"v2": folder}, timing, SPEC,
                         ClipTransform(AugmentConfig(crop_size=16, eval_short_side=24), train=False),
                         video_frames=checked.video_frames)
    frames = ds.decode(0)  # keyframe 903: frames 37..51, all present
    assert (frames[:, 0, 0, 0] // 4).tolist() == list(range(37, 52, 2))


def test_check_keyframes_reports_a_folder_without_frames_as_broken(tmp_path: Path) -> None:
    folder = tmp_path / "v3"
    folder.mkdir()
    (folder / "frame_1.png").write_bytes(b"")
    index = build_keyframe_index(_rows("v3", [902]), LABELS)
    timing = {"v3": VideoTiming(fps=15, time_offset=900)}
    checked = check_keyframes(index, {"v3": folder}, timing, SPEC)
    assert not checked.keep.any() and not checked.skipped
    assert "v3: no frames named like v3_000001.jpg" in checked.broken["v3"]


def test_find_video_names_the_frame_folder(tmp_path: Path) -> None:
    assert find_video(tmp_path, "vid", frame_folders=True) == tmp_path / "vid"
    good, broken = check_videos({"vid": tmp_path / "vid"}, 1.0, "test set")
    assert not good and broken == [f"{tmp_path / 'vid'}: frame folder does not exist"]
