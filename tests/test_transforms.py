"""Box-aware clip transforms: boxes must move exactly with the pixels through scale, crop and flip."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seal_transfer.data.config import AugmentConfig
from seal_transfer.data.transforms import ClipTransform, two_views
from seal_transfer.errors import UserError

MEAN, STD = 0.45, 0.225
HEIGHT, WIDTH, FRAMES = 120, 160, 4


def rectangle_clip(box: tuple[float, float, float, float]) -> np.ndarray:
    """Black frames with a white filled rectangle at the normalised `box` (edge convention)."""
    frames = np.zeros((FRAMES, HEIGHT, WIDTH, 3), dtype=np.uint8)
    x1, y1, x2, y2 = box
    frames[:, round(y1 * HEIGHT) : round(y2 * HEIGHT), round(x1 * WIDTH) : round(x2 * WIDTH)] = 255
    return frames


def bright_region(clip: torch.Tensor) -> np.ndarray | None:
    """Pixel-edge bounding box of the bright pixels of the first frame, or None when nothing is bright."""
    grey = clip[:, 0].mean(dim=0) * STD + MEAN  # undo normalisation, back to [0, 1]
    ys, xs = np.nonzero((grey > 0.5).numpy())
    if ys.size == 0:
        return None
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=np.float64)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    inter_w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    inter_h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = inter_w * inter_h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


def small_config(**overrides: object) -> AugmentConfig:
    # Scaled-down PySlowFast recipe so the test clip is small: short side jitter [96, 128], crop 80.
    values = dict(min_short_side=96, max_short_side=128, crop_size=80, eval_short_side=96, color_jitter=0.0)
    values.update(overrides)
    return AugmentConfig(**values)


def test_defaults_follow_pyslowfast_ava() -> None:
    cfg = AugmentConfig()
    assert (cfg.min_short_side, cfg.max_short_side, cfg.crop_size, cfg.eval_short_side) == (256, 320, 224, 256)
    assert cfg.mean == [0.45] * 3 and cfg.std == [0.225] * 3


@pytest.mark.parametrize("flip_prob", [0.0, 1.0, 0.5])
@pytest.mark.parametrize("box", [(0.30, 0.25, 0.55, 0.70), (0.05, 0.10, 0.40, 0.90), (0.60, 0.05, 0.95, 0.35)])
def test_train_boxes_follow_pixels_through_scale_crop_flip(
    box: tuple[float, float, float, float], flip_prob: float
) -> None:
    transform = ClipTransform(small_config(flip_prob=flip_prob), train=True)
    frames = rectangle_clip(box)
    checked = 0
    for seed in range(40):
        clip, boxes = transform(frames, np.array([box]), np.random.default_rng(seed))
        assert clip.shape == (3, FRAMES, 80, 80) and clip.dtype == torch.float32
        assert boxes.shape == (1, 4) and boxes.dtype == torch.float32
        out_box = boxes[0].numpy().astype(np.float64)
        assert (out_box >= 0).all() and (out_box <= 80).all()
        region = bright_region(clip)
        if region is None:  # the rectangle fell outside the crop: the box must have collapsed too
            assert (out_box[2] - out_box[0]) * (out_box[3] - out_box[1]) == pytest.approx(0.0, abs=1.0)
            continue
        assert iou(out_box, region) > 0.9, (seed, out_box, region)
        checked += 1
    assert checked >= 20


def test_flip_mirrors_boxes_and_pixels() -> None:
    box = (0.10, 0.20, 0.30, 0.80)  # left part of the frame
    frames = rectangle_clip(box)
    kept = ClipTransform(small_config(flip_prob=0.0, min_short_side=80, max_short_side=80), train=True)
    flipped = ClipTransform(small_config(flip_prob=1.0, min_short_side=80, max_short_side=80), train=True)
    clip_a, boxes_a = kept(frames, np.array([box]), np.random.default_rng(3))
    clip_b, boxes_b = flipped(frames, np.array([box]), np.random.default_rng(3))
    assert torch.allclose(clip_b, clip_a.flip(-1))
    a, b = boxes_a[0].numpy(), boxes_b[0].numpy()
    assert np.allclose([b[0], b[2]], [80 - a[2], 80 - a[0]]) and np.allclose([b[1], b[3]], [a[1], a[3]])


def test_eval_is_deterministic_full_frame_resize() -> None:
    box = (0.25, 0.25, 0.75, 0.5)
    frames = rectangle_clip(box)
    transform = ClipTransform(small_config(), train=False)
    clip, boxes = transform(frames, np.array([box]))
    clip_again, boxes_again = transform(frames, np.array([box]), np.random.default_rng(99))
    assert torch.equal(clip, clip_again) and torch.equal(boxes, boxes_again)
    assert clip.shape == (3, FRAMES, 96, 128)  # short side 120 -> 96, aspect 4:3 kept, no crop
    assert np.allclose(boxes[0].numpy(), [32, 24, 96, 48])
    assert iou(boxes[0].numpy(), bright_region(clip)) > 0.9


def test_normalisation_statistics() -> None:
    transform = ClipTransform(small_config(mean=[0.1, 0.5, 0.9], std=[0.5, 0.25, 0.1]), train=False)
    grey = np.full((2, HEIGHT, WIDTH, 3), 128, dtype=np.uint8)
    clip, _ = transform(grey, None)
    expected = (128 / 255 - np.array([0.1, 0.5, 0.9])) / np.array([0.5, 0.25, 0.1])
    assert np.allclose(clip.mean(dim=(1, 2, 3)).numpy(), expected, atol=1e-5)
    assert clip.std(dim=(1, 2, 3)).max() < 1e-5


def test_color_jitter_same_for_every_frame_and_reproducible() -> None:
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, size=(1, HEIGHT, WIDTH, 3), dtype=np.uint8)
    frames = np.repeat(frame, FRAMES, axis=0)
    transform = ClipTransform(small_config(color_jitter=0.4), train=True)
    clip, _ = transform(frames, None, np.random.default_rng(5))
    plain, _ = ClipTransform(small_config(color_jitter=0.0), train=True)(frames, None, np.random.default_rng(5))
    assert not torch.allclose(clip, plain, atol=1e-3)  # the jitter did something
    assert torch.allclose(clip[:, 0], clip[:, -1])  # ...and the same thing to every frame
    again, _ = transform(frames, None, np.random.default_rng(5))
    assert torch.equal(clip, again)


def test_two_views_differ_and_are_reproducible() -> None:
    box = (0.3, 0.3, 0.6, 0.7)
    frames = rectangle_clip(box)
    transform = ClipTransform(small_config(color_jitter=0.4), train=True)
    (clip_1, boxes_1), (clip_2, boxes_2) = two_views(transform, frames, np.array([box]), np.random.default_rng(1))
    assert clip_1.shape == clip_2.shape == (3, FRAMES, 80, 80)
    assert not torch.equal(clip_1, clip_2)
    (again_1, again_boxes_1), (again_2, _) = two_views(transform, frames, np.array([box]), np.random.default_rng(1))
    assert torch.equal(clip_1, again_1) and torch.equal(clip_2, again_2) and torch.equal(boxes_1, again_boxes_1)
    (other_1, _), _ = two_views(transform, frames, np.array([box]), np.random.default_rng(2))
    assert not torch.equal(clip_1, other_1)
    assert boxes_2.shape == (1, 4)


def test_accepts_tensor_input_and_no_boxes() -> None:
    frames = torch.from_numpy(rectangle_clip((0.1, 0.1, 0.2, 0.2)))
    original = frames.clone()
    clip, boxes = ClipTransform(small_config(), train=True)(frames, np.zeros((0, 4)), np.random.default_rng(0))
    assert clip.shape == (3, FRAMES, 80, 80) and boxes.shape == (0, 4)
    assert torch.equal(frames, original)  # transforms work in place only on their own copies


def test_train_needs_rng_and_config_is_validated() -> None:
    with pytest.raises(ValueError):
        ClipTransform(small_config(), train=True)(rectangle_clip((0, 0, 1, 1)), None)
    with pytest.raises(UserError, match="crop_size"):
        ClipTransform(small_config(crop_size=200), train=True)
    with pytest.raises(UserError, match="min_short_side"):
        ClipTransform(small_config(min_short_side=200, max_short_side=100), train=True)


def _reference_jitter(clip01: torch.Tensor, strength: float, rng: np.random.Generator) -> torch.Tensor:
    """torchvision-style colour jitter on a (3, T, H, W) [0, 1] clip: clamp after EVERY op, grey mean per frame."""
    luma = torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1, 1)
    factors = rng.uniform(max(0.0, 1.0 - strength), 1.0 + strength, size=3)
    x = clip01.clone()
    for op in rng.permutation(3):
        f = float(factors[op])
        grey = (x * luma).sum(dim=0, keepdim=True)
        if op == 0:
            x = x * f
        elif op == 1:
            x = x * f + grey.mean(dim=(2, 3), keepdim=True) * (1 - f)
        else:
            x = x * f + grey * (1 - f)
        x = x.clamp(0.0, 1.0)
    return x


@pytest.mark.parametrize("strength", [0.4, 1.0, 1.5])
@pytest.mark.parametrize("seed", range(8))
def test_color_jitter_matches_clamp_after_every_op_reference(seed: int, strength: float) -> None:
    """Brightness/contrast as a pending affine map, clamps skipped where they cannot bite (factor <= 1) and the
    0..255 scale change no value beyond float rounding."""
    frames = np.random.default_rng(100 + seed).integers(0, 256, size=(FRAMES, HEIGHT, WIDTH, 3), dtype=np.uint8)
    jittered = ClipTransform(small_config(color_jitter=strength), train=True)
    plain = ClipTransform(small_config(color_jitter=0.0), train=True)
    got, _ = jittered(frames, None, np.random.default_rng(seed))
    rng = np.random.default_rng(seed)
    base, _ = plain(frames, None, rng)  # same geometry draws; `rng` is left where the jitter draws start
    expected = (_reference_jitter(base * STD + MEAN, strength, rng) - MEAN) / STD
    assert torch.allclose(got, expected, atol=1e-4), (got - expected).abs().max()


def test_frame_sequence_input_matches_stacked_clip() -> None:
    """A dataset hands over its cached frames as a list; the result must equal the stacked clip's, train and eval."""
    frames = np.random.default_rng(0).integers(0, 256, size=(FRAMES, HEIGHT, WIDTH, 3), dtype=np.uint8)
    box = np.array([[0.2, 0.1, 0.7, 0.9]])
    for train in (True, False):
        transform = ClipTransform(small_config(color_jitter=0.4, flip_prob=0.5), train=train)
        for seed in range(6):
            clip_a, boxes_a = transform(frames, box, np.random.default_rng(seed))
            clip_b, boxes_b = transform(list(frames), box, np.random.default_rng(seed))
            clip_c, _ = transform(torch.from_numpy(frames), box, np.random.default_rng(seed))
            assert torch.equal(clip_a, clip_b) and torch.equal(boxes_a, boxes_b) and torch.equal(clip_a, clip_c)
    with pytest.raises(ValueError, match="one shape"):
        transform([frames[0], frames[1, :10]], None)


def test_uint8_resize_stays_within_a_grey_level_of_float_resize() -> None:
    """The resize runs on uint8 (fast); it may differ from a float resize only by its final rounding."""
    frames = np.random.default_rng(1).integers(0, 256, size=(FRAMES, HEIGHT, WIDTH, 3), dtype=np.uint8)
    for antialias in (False, True):
        clip, _ = ClipTransform(small_config(antialias=antialias), train=False)(frames, None)
        as_float = torch.from_numpy(frames).permute(0, 3, 1, 2).float()
        expected = torch.nn.functional.interpolate(
            as_float, size=(96, 128), mode="bilinear", align_corners=False, antialias=antialias
        ).permute(1, 0, 2, 3)
        got = clip * STD + MEAN
        assert (got * 255 - expected).abs().max() <= 1.0 + 1e-3  # uint8 kernel: fixed-point weights, rounding


def test_color_jitter_survives_a_zero_factor() -> None:
    """A factor of exactly 0 (possible with strength >= 1) makes the pending scale 0; a later clamp must cope."""
    from seal_transfer.data.transforms import _Affine

    x = torch.rand(3, 2, 4, 4) * 255
    expected = (x.double().mean(dim=(2, 3)) * torch.tensor([[0.299], [0.587], [0.114]])).sum(0) * 1.5
    values = _Affine(x)  # works on x in place
    values.contrast(0.0)  # every pixel becomes its frame's mean grey
    values.brightness(1.5)
    values.clamp(255.0)
    result = values.scale * x.double() + values.shift.view(1, -1, 1, 1)
    assert torch.allclose(result, expected.clamp(max=255).view(1, -1, 1, 1).expand_as(result), atol=1e-3)
