"""Box-aware clip transforms (scale jitter, crop, flip, colour jitter, normalise) written on plain torch.

pytorchvideo's transforms break on current torchvision, and the adaptation stage needs the boxes to move with
the pixels (two random views of one clip must be compared box by box), so the geometry lives here.

Conventions: input clip `(T, H, W, 3)` uint8 (numpy or torch) or a sequence of `(H, W, 3)` uint8 frames, input
boxes `(K, 4)` normalised x1,y1,x2,y2 of the input frames; output clip `(3, T, h, w)` float32 normalised, output
boxes in PIXEL coordinates of the output clip (pixel-edge convention: a box covering the whole output is
`0, 0, w, h`), which is what RoIAlign wants.

Speed decisions (measured in results/perf.md, "Data pipeline"):
- train: the crop window is chosen in the scaled frame, mapped back to the source frame and cut out BEFORE the
  resize, so only `crop_size x crop_size` output pixels are ever interpolated (the scaled full frame is never
  materialised). The source window is an integer pixel rectangle, so the effective scale is
  `crop_size / window_side` (within one source pixel of the drawn scale); boxes use that exact factor, so they
  stay consistent with the pixels.
- the resize runs on uint8, channels-last, the whole clip in one `F.interpolate` call (frames as the batch axis);
  only its output is converted to float, straight into the `(3, T, h, w)` output layout, and colour jitter and
  normalisation then work in place on that one copy, on the 0..255 scale (the /255 is part of the
  normalisation). Brightness and contrast are kept as a pending per-frame affine map folded into the
  normalisation (see `_Affine`), so the jitter touches the clip only for saturation and the clamps that can bite.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional, Union

import numpy as np
import torch
import torch.nn.functional as F

from seal_transfer.data.config import AugmentConfig

__all__ = ["AugmentConfig", "ClipTransform"]

ClipArray = Union[np.ndarray, torch.Tensor]
ClipInput = Union[np.ndarray, torch.Tensor, Sequence[np.ndarray]]
TransformedClip = tuple[torch.Tensor, torch.Tensor]

# ITU-R BT.601 luma weights, the same ones torchvision's rgb_to_grayscale uses.
_LUMA = (0.299, 0.587, 0.114)


class _Frames:
    """A clip as given, `(T, H, W, 3)` numpy/torch or a sequence of `(H, W, 3)` arrays (a dataset's frame cache),
    read without copying whole frames: only the crop window (or, for eval, the frames) is ever copied out."""

    def __init__(self, frames: ClipInput) -> None:
        if isinstance(frames, (np.ndarray, torch.Tensor)):
            if frames.ndim != 4 or frames.shape[-1] != 3:
                raise ValueError(f"expected a clip of shape (T, H, W, 3), got {tuple(frames.shape)}")
            self.frames: Union[np.ndarray, torch.Tensor, list[np.ndarray]] = frames
            self.count, self.height, self.width = (int(v) for v in frames.shape[:3])
        else:
            arrays = [np.asarray(frame) for frame in frames]
            if not arrays or any(a.ndim != 3 or a.shape[-1] != 3 or a.shape != arrays[0].shape for a in arrays):
                shapes = sorted({tuple(a.shape) for a in arrays})
                raise ValueError(f"expected frames of one shape (H, W, 3), got {shapes}")
            self.frames = arrays
            self.count, self.height, self.width = len(arrays), int(arrays[0].shape[0]), int(arrays[0].shape[1])

    def window(self, y0: int, y1: int, x0: int, x1: int) -> torch.Tensor:
        """A fresh contiguous `(T, h, w, 3)` copy of one rectangle of every frame."""
        frames = self.frames
        if isinstance(frames, torch.Tensor):
            return frames[:, y0:y1, x0:x1].contiguous()
        if isinstance(frames, np.ndarray):
            return torch.from_numpy(np.ascontiguousarray(frames[:, y0:y1, x0:x1]))
        return torch.from_numpy(np.stack([frame[y0:y1, x0:x1] for frame in frames]))

    def whole(self) -> torch.Tensor:
        """`(T, H, W, 3)` as a tensor, without a copy where the input already is one block."""
        frames = self.frames
        if isinstance(frames, torch.Tensor):
            return frames
        if isinstance(frames, np.ndarray):
            return torch.from_numpy(np.ascontiguousarray(frames)) if frames.flags.writeable else self.window(
                0, self.height, 0, self.width
            )
        return torch.from_numpy(np.stack(frames))


def _boxes_array(boxes: Optional[ClipArray]) -> np.ndarray:
    if boxes is None:
        return np.zeros((0, 4), dtype=np.float64)
    array = boxes.detach().cpu().numpy() if isinstance(boxes, torch.Tensor) else np.asarray(boxes)
    array = array.astype(np.float64, copy=False).reshape(-1, 4) if array.size else np.zeros((0, 4))
    return array


def _short_side_size(height: int, width: int, short_side: int) -> tuple[int, int]:
    """Output (h, w) with the short side set to `short_side` and the aspect ratio kept."""
    scale = short_side / min(height, width)
    return max(1, int(round(height * scale))), max(1, int(round(width * scale)))


def _resize(clip_thwc: torch.Tensor, size: tuple[int, int], antialias: bool) -> torch.Tensor:
    """Bilinear resize of `(T, H, W, 3)` frames, returned in the same layout (a channels-last view).

    uint8 stays uint8: torch's channels-last uint8 kernel is about 10x faster than resizing the float clip in
    (T, 3, H, W) layout and antialiases at almost no extra cost; rounding to uint8 loses < 0.5 grey levels.
    """
    if tuple(clip_thwc.shape[1:3]) == tuple(size):
        return clip_thwc
    channels_last = clip_thwc.permute(0, 3, 1, 2)  # (T, 3, H, W) view, channels-last in memory
    if channels_last.dtype != torch.uint8:
        channels_last = channels_last.to(torch.float32)
    out = F.interpolate(channels_last, size=size, mode="bilinear", align_corners=False, antialias=antialias)
    return out.permute(0, 2, 3, 1)


def _planar_float(clip_thwc: torch.Tensor) -> tuple[torch.Tensor, float]:
    """A fresh contiguous float32 `(3, T, h, w)` copy (later steps work in place) and its value range.

    uint8 stays on the 0..255 scale (the /255 is folded into the normalisation); other dtypes are taken to be
    in [0, 1] already.
    """
    planar = clip_thwc.permute(3, 0, 1, 2)
    out = planar.to(torch.float32, memory_format=torch.contiguous_format, copy=True)
    return out, 255.0 if clip_thwc.dtype == torch.uint8 else 1.0


def _grayscale(clip_ctHW: torch.Tensor) -> torch.Tensor:
    """BT.601 luma of a `(3, T, H, W)` clip as `(T, H, W)`."""
    return clip_ctHW[0].mul(_LUMA[0]).add_(clip_ctHW[1], alpha=_LUMA[1]).add_(clip_ctHW[2], alpha=_LUMA[2])


class _Affine:
    """The clip's values as `scale * x + shift[t]` (one scale, one shift per frame, the same for all channels) of
    a raw float clip `x`: brightness and contrast only change `scale`/`shift`, so they cost no pass over the clip.

    Saturation commutes with such an affine map (grey is linear and the luma weights sum to 1), so it is applied
    to `x` directly; a clamp of the values to [0, top] is a clamp of `x` to per-frame bounds.
    """

    def __init__(self, clip_ctHW: torch.Tensor) -> None:
        self.x = clip_ctHW
        self.scale = 1.0
        self.shift = torch.zeros(clip_ctHW.shape[1], dtype=torch.float64)

    def brightness(self, factor: float) -> None:
        self.scale *= factor
        self.shift *= factor

    def contrast(self, factor: float) -> None:
        """Blend with each frame's mean grey level (from the channel means: grey is linear in the channels)."""
        means = self.x.mean(dim=(2, 3)).double()  # (3, T); a float64 reduction would be ~20x slower
        mean_grey = self.scale * (means[0] * _LUMA[0] + means[1] * _LUMA[1] + means[2] * _LUMA[2]) + self.shift
        self.scale *= factor
        self.shift = factor * self.shift + (1.0 - factor) * mean_grey

    def saturation(self, factor: float) -> None:
        """Blend with the grey image, one pass: lerp(grey, x, f) = f * x + (1 - f) * grey."""
        torch.lerp(_grayscale(self.x), self.x, factor, out=self.x)

    def clamp(self, top: float) -> None:
        if self.scale == 0.0:  # every value is its frame's shift: make x carry it
            self.x.zero_()
            self.scale = 1.0
        low = (-self.shift / self.scale).tolist()
        high = ((top - self.shift) / self.scale).tolist()
        if len(set(low)) == 1 and len(set(high)) == 1:  # no per-frame shift (yet): one clamp
            self.x.clamp_(low[0], high[0])
            return
        for frame, (lo, hi) in enumerate(zip(low, high)):  # scalar bounds per frame: ~5x faster than tensor bounds
            self.x[:, frame].clamp_(lo, hi)


def _color_jitter(clip: _Affine, strength: float, rng: np.random.Generator, top: float) -> None:
    """Brightness, contrast, saturation in a random order, ONE draw for the whole clip (torchvision semantics).

    One draw per clip keeps the clip temporally coherent: per-frame jitter would be a flicker the model sees as
    motion. Values stay in [0, top]: each op is clamped like torchvision's, but only when its factor exceeds 1 -
    with a factor <= 1 every op is a convex blend of values already in range (the image, its grey, its mean
    grey), so that clamp would change nothing.
    """
    low = max(0.0, 1.0 - strength)
    factors = rng.uniform(low, 1.0 + strength, size=3)
    ops = (clip.brightness, clip.contrast, clip.saturation)
    for op in rng.permutation(3):
        factor = float(factors[op])
        ops[op](factor)
        if factor > 1.0:
            clip.clamp(top)


class ClipTransform:
    """Train (random scale/crop/flip/colour) or eval (short-side resize, full frame) transform of a clip + boxes."""

    def __init__(self, cfg: AugmentConfig, train: bool) -> None:
        cfg.validate()
        self.cfg = cfg
        self.train = train
        # Shaped for the (3, T, H, W) working layout.
        self._mean = torch.tensor(cfg.mean, dtype=torch.float64).view(3, 1, 1, 1)
        self._std = torch.tensor(cfg.std, dtype=torch.float64).view(3, 1, 1, 1)

    def __call__(
        self, frames: ClipInput, boxes: Optional[ClipArray], rng: Optional[np.random.Generator] = None
    ) -> TransformedClip:
        """Return `(clip (3,T,h,w) float32 normalised, boxes (K,4) float32 in output pixels)`.

        `frames`: uint8 `(T, H, W, 3)` (numpy or torch; float tensors are taken to be in [0, 1]) or a sequence of
        `(H, W, 3)` uint8 arrays; never modified. `rng` is the only source of randomness (required for train), so a
        seed reproduces a view exactly and two generators give two independent views. Boxes falling wholly
        outside the crop come back with zero area.
        """
        clip = _Frames(frames)
        box_array = _boxes_array(boxes)
        if self.train:
            if rng is None:
                raise ValueError("ClipTransform(train=True) needs an np.random.Generator")
            pixels, box_px = self._train_geometry(clip, box_array, rng)
        else:
            pixels, box_px = self._eval_geometry(clip, box_array)
        out, top = _planar_float(pixels)
        values = _Affine(out)
        if self.train and self.cfg.color_jitter > 0:
            _color_jitter(values, self.cfg.color_jitter, rng, top)
        # (values / top - mean) / std = x * (scale / (top * std)) + (shift / top - mean) / std: two in-place passes
        # over this call's own float copy, whatever the jitter did.
        out.mul_((values.scale / (top * self._std)).float())
        out.add_(((values.shift.view(1, -1, 1, 1) / top - self._mean) / self._std).float())
        return out, torch.from_numpy(box_px.astype(np.float32))

    def _eval_geometry(self, clip: _Frames, boxes: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
        out_h, out_w = _short_side_size(clip.height, clip.width, self.cfg.eval_short_side)
        resized = _resize(clip.whole(), (out_h, out_w), self.cfg.antialias)
        box_px = boxes * np.array([out_w, out_h, out_w, out_h], dtype=np.float64)
        return resized, np.clip(box_px, 0.0, [out_w, out_h, out_w, out_h])

    def _train_geometry(
        self, clip: _Frames, boxes: np.ndarray, rng: np.random.Generator
    ) -> tuple[torch.Tensor, np.ndarray]:
        cfg = self.cfg
        height, width = clip.height, clip.width
        short_side = int(rng.integers(cfg.min_short_side, cfg.max_short_side + 1))
        # Side of the square source window that becomes the crop after scaling by short_side / min(H, W).
        window = int(round(cfg.crop_size * min(height, width) / short_side))
        window = min(max(window, 1), height, width)
        y0 = int(rng.integers(0, height - window + 1))
        x0 = int(rng.integers(0, width - window + 1))
        flip = bool(rng.random() < cfg.flip_prob)

        cropped = clip.window(y0, y0 + window, x0, x0 + window)
        out = _resize(cropped, (cfg.crop_size, cfg.crop_size), cfg.antialias)
        if flip:  # on the small uint8 result (mirroring while copying the window out is ~10x slower in numpy)
            out = out.flip(2)

        scale = cfg.crop_size / window
        box_px = (boxes * np.array([width, height, width, height]) - np.array([x0, y0, x0, y0])) * scale
        box_px = np.clip(box_px, 0.0, float(cfg.crop_size))
        if flip:
            box_px = np.stack(
                [cfg.crop_size - box_px[:, 2], box_px[:, 1], cfg.crop_size - box_px[:, 0], box_px[:, 3]], axis=1
            )
        return out, box_px


def two_views(
    transform: ClipTransform, frames: ClipInput, boxes: Optional[ClipArray], rng: np.random.Generator
) -> tuple[TransformedClip, TransformedClip]:
    """Two independent augmentations of one decoded clip, for the adaptation stage's two-view agreement test.

    Both draws come from `rng` in sequence, so one seed reproduces the pair and the views differ from each other.
    Each view copies only its own crop window out of the shared frames.
    """
    return transform(frames, boxes, rng), transform(frames, boxes, rng)
