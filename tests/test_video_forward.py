"""Reads that continue forward from the previous read must return exactly what a fresh seek returns."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from seal_transfer.data.video import VideoSource, write_video


def _video(tmp_path: Path) -> Path:
    frames = np.zeros((150, 48, 64, 3), np.uint8)
    for i in range(150):
        frames[i, :, : (i % 60) + 2] = 40 + (i * 7) % 200  # width and level change with the index
    path = tmp_path / "v.mp4"
    write_video(path, frames, fps=15, gop_size=50)
    return path


def test_forward_reads_match_fresh_seeks(tmp_path: Path) -> None:
    path = _video(tmp_path)
    continuing = VideoSource(path)
    reads = [np.arange(0, 16), np.arange(16, 32), np.arange(40, 56, 2), np.arange(57, 60), np.arange(10, 20),
             np.arange(125, 149), np.arange(149, 160)]
    kept_decoder = []
    for indices in reads:
        before = continuing._decoder
        got = continuing.read(indices)
        kept_decoder.append(before is not None and continuing._decoder is before)
        fresh = VideoSource(path).read(indices)
        np.testing.assert_array_equal(got, fresh)
    # reads 2-4 continue forward (no seek); the backward read (10..20) and the jump to 125 (gap > FORWARD_GAP) seek
    assert kept_decoder[1:4] == [True, True, True] and kept_decoder[4] is False and kept_decoder[5] is False


def test_forward_state_survives_pickling(tmp_path: Path) -> None:
    import pickle

    path = _video(tmp_path)
    source = VideoSource(path)
    source.read(np.arange(0, 8))
    clone = pickle.loads(pickle.dumps(source))
    np.testing.assert_array_equal(clone.read(np.arange(8, 16)), VideoSource(path).read(np.arange(8, 16)))
