"""Tubelet feature extraction (engine/tube_features.py): time grid, window frames, boxes, files, skip, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from seal_transfer.data.config import AugmentConfig
from seal_transfer.errors import UserError
from seal_transfer.models.config import ModelConfig, clip_spec
from seal_transfer.models.slowfast import build_detector
from seal_transfer.tad.features import (
    StreamConfig,
    TimeGrid,
    TubeFeatures,
    TubeletEncoder,
    TubeRef,
    concat_streams,
    extract_stream,
    load_tube_features,
    resample_to_grid,
    tube_grid,
    window_boxes,
    window_frames,
)

TINY = ModelConfig(preset="tiny")
AUGMENT = AugmentConfig(min_short_side=48, max_short_side=48, crop_size=48, eval_short_side=48)


def test_tube_grid_tiles_the_tube_with_stride_steps():
    stream = StreamConfig(fps=30, window=32, stride=4)
    grid = tube_grid((30, 89), native_fps=30.0, stream=stream)  # 2 s tube starting at 1 s
    assert grid.start == pytest.approx(1.0)
    assert grid.step == pytest.approx(4 / 30)
    assert grid.num == 15  # ceil(2 / (4/30))
    assert grid.to_seconds(grid.to_steps(np.array([1.5, 2.7]))) == pytest.approx([1.5, 2.7])
    assert grid.centres[0] == pytest.approx(1.0 + 2 / 30)


def test_window_frames_are_centred_sampled_and_clamped_to_the_tube():
    stream = StreamConfig(fps=30, window=32, stride=4)
    grid = tube_grid((100, 399), 30.0, stream)
    index = window_frames(grid, (100, 399), 30.0, stream, model_frames=32)
    assert index.shape == (grid.num, 32)
    assert index.min() >= 100 and index.max() <= 399
    middle = index[30]  # a window well inside the tube: 32 consecutive frames around its centre
    assert np.array_equal(np.diff(middle), np.ones(31))
    centre_frame = grid.centres[30] * 30
    assert middle[15] <= centre_frame <= middle[16] + 1
    assert index[0, 0] == 100  # the first window starts before the tube: clamped to its first frame
    # A 15 fps stream over a 30 fps video takes every other native frame; 16 model frames from a 16-frame window.
    slow = StreamConfig(fps=15, window=16, stride=2)
    sgrid = tube_grid((100, 399), 30.0, slow)
    sindex = window_frames(sgrid, (100, 399), 30.0, slow, model_frames=16)
    assert set(np.diff(sindex[20]).tolist()) == {2}
    # Fewer model frames than window frames: spread evenly over the window.
    thin = window_frames(grid, (100, 399), 30.0, stream, model_frames=8)
    assert set(np.diff(thin[30]).tolist()) == {4}


def test_window_boxes_thin_to_box_fps_then_take_the_nearest():
    frames = np.arange(0, 60)  # a box on every frame of a 2 s tube at 30 fps; x1 encodes the frame
    boxes = np.stack([frames, frames / 100, np.zeros(60), frames / 100 + 0.1, np.ones(60)], 1).astype(np.float32)
    grid = TimeGrid(0.0, 0.1, 20)
    every = window_boxes(boxes, grid, 30.0, None)
    thinned = window_boxes(boxes, grid, 30.0, 2.0)
    assert every.shape == (20, 4)
    # Every box: the frame whose centre is nearest each feature centre (0.05 s → frame 1).
    assert every[0, 0] == pytest.approx(0.01)
    # 2 fps: only the boxes nearest 0.0, 0.5, 1.0, 1.5, 2.0 s exist (frames 0, 14/15, 29/30, 44/45, 59).
    used_frames = set(np.round(thinned[:, 0] * 100).astype(int).tolist())
    assert len(used_frames) <= 5
    assert all(f in {0, 14, 15, 29, 30, 44, 45, 59} for f in used_frames)


def test_resample_and_concat_streams_align_grids():
    a = TubeFeatures(np.arange(10, dtype=np.float32)[:, None], TimeGrid(0.0, 0.2, 10))
    b = TubeFeatures(np.arange(5, dtype=np.float32)[:, None] * 10, TimeGrid(0.0, 0.4, 5))
    on_a = resample_to_grid(b.features, b.grid, a.grid)
    assert on_a.shape == (10, 1)
    # a's centre 0.3 s lies halfway between b's centres 0.2 (value 0) and 0.6 (10): 2.5; edges are held.
    assert on_a[1, 0] == pytest.approx(2.5)
    assert on_a[0, 0] == pytest.approx(0.0)
    both = concat_streams([a, b])
    assert both.features.shape == (10, 2)
    assert np.array_equal(both.features[:, 0], a.features[:, 0])
    assert resample_to_grid(a.features, a.grid, a.grid) is a.features


def test_encoder_returns_the_heads_pooled_feature():
    torch.manual_seed(0)
    detector = build_detector(TINY, num_classes=3).eval()
    encoder = TubeletEncoder(detector, alpha=4)
    fast = torch.randn(2, 3, clip_spec(TINY).num_frames, 48, 64)
    boxes = torch.tensor([[4.0, 4.0, 40.0, 44.0], [10.0, 0.0, 60.0, 48.0]])
    features = encoder(fast, boxes)
    assert features.shape == (2, encoder.out_channels)
    with torch.no_grad():
        from seal_transfer.data.clip import pack_pathways

        logits = detector(pack_pathways(fast, 4), torch.cat([torch.arange(2.0)[:, None], boxes], 1))
        assert torch.allclose(detector.detection_head.proj(features), logits, atol=1e-5)


@pytest.fixture()
def one_video(tmp_path):
    from seal_transfer.data.video import write_video

    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, size=(40, 48, 64, 3), dtype=np.uint8)
    path = tmp_path / "vid.mp4"
    write_video(path, frames, fps=20.0)
    boxes = np.stack([np.arange(5, 35), np.full(30, 0.1), np.full(30, 0.1), np.full(30, 0.6), np.full(30, 0.9)],
                     1).astype(np.float32)
    good = TubeRef("vid", "0", path, 20.0, (5, 34), boxes)
    missing = TubeRef("gone", "1", tmp_path / "gone.mp4", 20.0, (0, 9), boxes[:10] * [0, 1, 1, 1, 1])
    return good, missing


def _extract(tubes, out_dir, **kwargs):
    torch.manual_seed(0)
    encoder = TubeletEncoder(build_detector(TINY, 1), alpha=4)
    stream = StreamConfig(fps=20, window=8, stride=4, box_fps=4)
    args = dict(signature={"weights": "random:0"}, model_frames=clip_spec(TINY).num_frames, batch_windows=3,
                chunk_windows=4, progress=False)
    args.update(kwargs)
    return extract_stream(tubes, encoder, stream, out_dir, AUGMENT, **args)


def test_extract_writes_features_with_grid_and_skips_done_tubes(one_video, tmp_path):
    good, missing = one_video
    out = tmp_path / "features"
    report = _extract([good, missing], out)
    assert report.written == 1 and report.skipped == 0
    assert len(report.failed) == 1 and "gone" in report.failed[0]  # a broken video is reported, not fatal
    loaded = load_tube_features(out, "vid", "0")
    assert loaded is not None
    assert loaded.grid.num == 8  # 30 frames at 20 fps = 1.5 s, step 0.2 s → 8 windows (3 chunks of ≤ 4)
    assert loaded.grid.start == pytest.approx(0.25)
    assert loaded.features.shape == (8, report.channels)
    assert np.isfinite(loaded.features).all() and loaded.features.std() > 0
    meta = json.loads((out / "vid__0.json").read_text())
    assert meta["step"] == pytest.approx(0.2) and meta["window_seconds"] == pytest.approx(0.4)
    assert np.load(out / "vid__0.npy").dtype == np.float16
    # Chunking does not change the numbers: one chunk per tube gives the same features.
    again = _extract([good], tmp_path / "one_chunk", chunk_windows=100, batch_windows=100, dtype="float32")
    assert again.written == 1
    single = load_tube_features(tmp_path / "one_chunk", "vid", "0")
    np.testing.assert_allclose(single.features, loaded.features, rtol=2e-2, atol=2e-2)
    # Second run: nothing recomputed.
    rerun = _extract([good], out)
    assert rerun.written == 0 and rerun.skipped == 1
    # Other settings into the same folder are refused instead of mixed.
    with pytest.raises(UserError, match="other settings"):
        _extract([good], out, signature={"weights": "random:1"})


def test_stream_config_validation():
    with pytest.raises(UserError, match="tubes.second.fps"):
        StreamConfig(fps=0).validate("tubes.second")
    with pytest.raises(UserError, match="box_fps"):
        StreamConfig(box_fps=-1).validate("tubes.slowfast")
