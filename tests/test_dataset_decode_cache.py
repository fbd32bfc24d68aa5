"""KeyframeDataset's decode speed-ups (per-worker frame cache, decoding at the needed size) change no pixel."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from seal_transfer.data.datasets import ClipSpec, KeyframeDataset, build_keyframe_index
from seal_transfer.data.formats.ava import AvaTable, VideoTiming
from seal_transfer.data.transforms import AugmentConfig, ClipTransform
from seal_transfer.data.video import write_video


class _CountingSource:
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


def test_decodes_at_the_transform_short_side_without_upscaling(tmp_path: Path) -> None:
    ds = _dataset(tmp_path)
    assert ds.decode(0).shape[1:3] == (32, 43)  # eval short side 32 from 48x64
    ds.transform.cfg.eval_short_side = 96
    assert ds._decode_short_side(ds._source("v")) is None  # never upscaled at decode time
