"""KeyframeDataset's decode speed-ups (per-worker frame cache, decoding at the needed size) change no pixel."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from seal_transfer.data.clip import ClipSpec
from seal_transfer.data.config import AugmentConfig
from seal_transfer.data.datasets import KeyframeDataset, build_keyframe_index
from seal_transfer.data.formats.ava import AvaTable, VideoTiming
from seal_transfer.data.transforms import ClipTransform
from seal_transfer.data.video import FrameSource, write_video


class _CountingSource(FrameSource):
    def __init__(self, inner: object) -> None:
        self.inner, self.frames_read = inner, 0
        self.info = inner.info  # type: ignore[attr-defined]

    def read(self, indices: np.ndarray, *, short_side: object = None) -> np.ndarray:
        self.frames_read += len(indices)
        return self.inner.read(indices, short_side=short_side)  # type: ignore[attr-defined]


def _dataset(tmp_path: Path, **kw: object) -> KeyframeDataset:
    path = tmp_path / "v.mp4"
    if not path.exists():
        rng = np.random.default_rng(0)
        write_video(path, rng.integers(0, 255, (90, 48, 64, 3), dtype=np.uint8), 10, gop_size=10)
    table = AvaTable.from_columns(["v"] * 5, [2.0, 3.0, 4.0, 5.0, 6.0], [[0.1, 0.1, 0.9, 0.9]] * 5, action_ids=[1] * 5)
    aug = AugmentConfig(min_short_side=24, max_short_side=32, crop_size=24, eval_short_side=32)
    return KeyframeDataset(
        build_keyframe_index(table, None), {"v": path}, {"v": VideoTiming(fps=10.0, time_offset=0.0)},
        ClipSpec(num_frames=8, sample_rate=2, alpha=4), ClipTransform(aug, train=False), **kw,  # type: ignore[arg-type]
    )


def test_frame_cache_returns_identical_clips_and_decodes_shared_frames_once(tmp_path: Path) -> None:
    cached, plain = _dataset(tmp_path), _dataset(tmp_path, cache_frames=0)
    counter = _CountingSource(cached._source("v"))
    cached._sources["v"] = counter
    for i in range(len(cached)):
        np.testing.assert_array_equal(cached.decode(i), plain.decode(i))
    # 5 clips x 8 frames, neighbours 1 s = 10 frames apart with 16-frame spans: shared frames are read once.
    assert counter.frames_read < 5 * 8
    assert len(cached._frames) <= cached.cache_frames


def test_decodes_at_the_transform_short_side_only_for_much_larger_videos(tmp_path: Path) -> None:
    ds = _dataset(tmp_path)
    # 48x64 source: short side 48 is within FULL_SIZE_RATIO (2.5) of eval short side 32 -> full-size frames
    # (unscaled RGB conversion is the cheap one; the transform's resize shrinks the frames)
    assert ds._decode_short_side(ds._source("v")) is None
    assert ds.decode(0).shape[1:3] == (48, 64)
    ds.transform.cfg.eval_short_side = 16  # 48 > 2.5 * 16: decoded straight to short side 16
    assert ds._decode_short_side(ds._source("v")) == 16
    assert ds.decode(0).shape[1:3] == (16, 21)
    ds.transform.cfg.eval_short_side = 96
    assert ds._decode_short_side(ds._source("v")) is None  # never upscaled at decode time


def test_items_from_cached_frame_lists_match_stacked_clips(tmp_path: Path) -> None:
    """__getitem__ hands the transform the cache's frame list; the result equals transforming the stacked clip."""
    cached, plain = _dataset(tmp_path), _dataset(tmp_path, cache_frames=0)
    for i in range(len(cached)):
        (slow, fast), boxes = cached[i]["views"][0]
        expected, expected_boxes = plain.transform(plain.decode(i), plain.index.boxes[plain.index.boxes_of(i)])
        assert torch.equal(fast, expected) and torch.equal(boxes, expected_boxes)


def test_decoders_use_one_thread_inside_dataloader_workers(tmp_path: Path, monkeypatch: object) -> None:
    import seal_transfer.data.datasets as datasets

    assert _dataset(tmp_path)._source("v").threads is None  # main process: FFmpeg's choice
    monkeypatch.setattr(datasets, "get_worker_info", lambda: object())  # type: ignore[attr-defined]
    assert _dataset(tmp_path)._source("v").threads == 1
    assert _dataset(tmp_path, decoder_threads=3)._source("v").threads == 3


def test_worker_setup_keeps_freed_memory_and_is_wired_into_the_loaders() -> None:
    import sys

    from seal_transfer.data.datamodules import KeyframeDataModule
    from seal_transfer.data.workers import decode_worker_init, keep_freed_memory

    if sys.platform.startswith("linux"):
        assert keep_freed_memory() is True  # glibc's mallopt accepted both thresholds
    loader = KeyframeDataModule(None, None, batch_size=2, num_workers=2)._loader(list(range(4)), shuffle=False)
    assert loader.worker_init_fn is decode_worker_init


def test_preload_holds_every_frame_once_and_changes_no_pixel(tmp_path: Path) -> None:
    """data.preload: all frames decoded up front (each shared frame once), then no decoding; same clips as before."""
    import pickle

    loaded, plain = _dataset(tmp_path), _dataset(tmp_path, cache_frames=0)
    held = loaded.preload(max_bytes=1 << 30, progress=False)
    frames = len(loaded._frames)
    assert held == frames * 48 * 64 * 3 and frames < 5 * 8  # neighbours share frames: stored once
    counter = _CountingSource(plain._source("v"))
    loaded._sources["v"] = counter
    for i in range(len(loaded)):
        np.testing.assert_array_equal(loaded.decode(i), plain.decode(i))
    assert counter.frames_read == 0 and len(loaded._frames) == frames  # nothing decoded, nothing evicted
    assert len(pickle.loads(pickle.dumps(loaded))._frames) == frames  # the store travels to spawned workers


def test_preload_over_budget_falls_back_to_the_bounded_cache(tmp_path: Path) -> None:
    ds = _dataset(tmp_path)
    assert ds.preload(max_bytes=48 * 64 * 3 * 4, progress=False) is None  # room for 4 frames only
    assert len(ds._frames) == 0 and ds.cache_frames == 2 * ds.clip.num_frames and not ds._preloaded
    np.testing.assert_array_equal(ds.decode(1), _dataset(tmp_path, cache_frames=0).decode(1))
