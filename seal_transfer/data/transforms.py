"""Box-aware clip transforms (scale jitter, crop, flip, colour jitter, normalise) written on plain torch.

pytorchvideo's transforms break on current torchvision, and the adaptation stage needs the boxes to move with
the pixels (two random views of one clip must be compared box by box), so the geometry lives here.

Conventions: input clip `(T, H, W, 3)` uint8 (numpy or torch), input boxes `(K, 4)` normalised x1,y1,x2,y2 of
the input frames; output clip `(3, T, h, w)` float32 normalised, output boxes in PIXEL coordinates of the output
clip (pixel-edge convention: a box covering the whole output is `0, 0, w, h`), which is what RoIAlign wants.

Speed decision (train): the crop window is chosen in the scaled frame, mapped back to the source frame and cut
out BEFORE the resize, so only `crop_size x crop_size` output pixels are ever interpolated (the scaled full frame
is never materialised). The source window is an integer pixel rectangle, so the effective scale is
`crop_size / window_side` (within one source pixel of the drawn scale); boxes use that exact factor, so they stay
consistent with the pixels. The whole clip is resized in one `F.interpolate` call (frames as the batch axis).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Union

import numpy as np
import torch
import torch.nn.functional as F

from seal_transfer.errors import UserError

ClipArray = Union[np.ndarray, torch.Tensor]
TransformedClip = tuple[torch.Tensor, torch.Tensor]

# ITU-R BT.601 luma weights, the same ones torchvision's rgb_to_grayscale uses.
_LUMA = (0.299, 0.587, 0.114)


@dataclass
class AugmentConfig:
    """Clip augmentation knobs; defaults follow PySlowFast's AVA recipe (scale jitter [256, 320], crop 224)."""

    min_short_side: int = 256
    max_short_side: int = 320
    crop_size: int = 224
    flip_prob: float = 0.5
    color_jitter: float = 0.4  # brightness/contrast/saturation strength; 0 disables
    mean: list[float] = field(default_factory=lambda: [0.45, 0.45, 0.45])
    std: list[float] = field(default_factory=lambda: [0.225, 0.225, 0.225])
    eval_short_side: int = 256
    antialias: bool = False  # antialiased resize is slower; decoders already shrink large videos

    def validate(self) -> None:
        """Reject settings that would make the crop impossible or the normalisation meaningless."""
        if not 0 < self.min_short_side <= self.max_short_side:
            raise UserError(
                f"augment.min_short_side/max_short_side: need 0 < min <= max, got "
                f"{self.min_short_side}, {self.max_short_side}"
            )
        if not 0 < self.crop_size <= self.min_short_side:
            raise UserError(
                f"augment.crop_size: must be in (0, min_short_side={self.min_short_side}], got {self.crop_size}"
            )
        if self.eval_short_side <= 0:
            raise UserError(f"augment.eval_short_side: must be positive, got {self.eval_short_side}")
        if not 0.0 <= self.flip_prob <= 1.0:
            raise UserError(f"augment.flip_prob: must be in [0, 1], got {self.flip_prob}")
        if self.color_jitter < 0:
            raise UserError(f"augment.color_jitter: must be >= 0, got {self.color_jitter}")
        if len(self.mean) != 3 or len(self.std) != 3:
            raise UserError(f"augment.mean/std: need 3 values each, got {list(self.mean)}, {list(self.std)}")
        if any(s <= 0 for s in self.std):
            raise UserError(f"augment.std: values must be positive, got {list(self.std)}")


def _clip_to_tchw(frames: ClipArray) -> torch.Tensor:
    """View `(T,H,W,3)` uint8 as `(T,3,H,W)` without copying (the copy happens at the float conversion)."""
    clip = torch.from_numpy(np.ascontiguousarray(frames)) if isinstance(frames, np.ndarray) else frames
    if clip.ndim != 4 or clip.shape[-1] != 3:
        raise ValueError(f"expected a clip of shape (T, H, W, 3), got {tuple(clip.shape)}")
    return clip.permute(0, 3, 1, 2)


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


def _to_unit_float(clip_tchw: torch.Tensor) -> torch.Tensor:
    """A fresh contiguous float copy in [0, 1] (later steps work in place; the caller's frames stay untouched).

    Making the uint8 view contiguous first is about 2x faster than converting the channels-last view directly,
    and the contiguous float layout halves the interpolate time.
    """
    if clip_tchw.dtype == torch.uint8:
        return clip_tchw.contiguous().to(torch.float32).div_(255.0)
    return clip_tchw.to(torch.float32, memory_format=torch.contiguous_format, copy=True)


def _resize(clip_tchw: torch.Tensor, size: tuple[int, int], antialias: bool) -> torch.Tensor:
    if tuple(clip_tchw.shape[-2:]) == tuple(size):
        return clip_tchw
    return F.interpolate(clip_tchw, size=size, mode="bilinear", align_corners=False, antialias=antialias)


def _grayscale(clip_tchw: torch.Tensor) -> torch.Tensor:
    r, g, b = clip_tchw.unbind(dim=1)
    return (_LUMA[0] * r + _LUMA[1] * g + _LUMA[2] * b).unsqueeze(1)


def _color_jitter(clip_tchw: torch.Tensor, strength: float, rng: np.random.Generator) -> torch.Tensor:
    """Brightness, contrast, saturation in a random order, ONE draw for the whole clip (torchvision semantics).

    One draw per clip keeps the clip temporally coherent: per-frame jitter would be a flicker the model sees as
    motion.
    """
    low = max(0.0, 1.0 - strength)
    factors = rng.uniform(low, 1.0 + strength, size=3)
    for op in rng.permutation(3):
        factor = float(factors[op])
        if op == 0:  # brightness
            clip_tchw.mul_(factor)
        elif op == 1:  # contrast: blend with each frame's mean grey level
            mean_grey = _grayscale(clip_tchw).mean(dim=(1, 2, 3), keepdim=True)
            clip_tchw.mul_(factor).add_(mean_grey * (1.0 - factor))
        else:  # saturation: blend with the grey image
            grey = _grayscale(clip_tchw)
            clip_tchw.mul_(factor).add_(grey.mul_(1.0 - factor))
        clip_tchw.clamp_(0.0, 1.0)
    return clip_tchw


class ClipTransform:
    """Train (random scale/crop/flip/colour) or eval (short-side resize, full frame) transform of a clip + boxes."""

    def __init__(self, cfg: AugmentConfig, train: bool) -> None:
        cfg.validate()
        self.cfg = cfg
        self.train = train
        # Shaped for the (T, 3, H, W) working layout.
        self._mean = torch.tensor(cfg.mean, dtype=torch.float32).view(1, 3, 1, 1)
        self._inv_std = 1.0 / torch.tensor(cfg.std, dtype=torch.float32).view(1, 3, 1, 1)

    def __call__(
        self, frames: ClipArray, boxes: Optional[ClipArray], rng: Optional[np.random.Generator] = None
    ) -> TransformedClip:
        """Return `(clip (3,T,h,w) float32 normalised, boxes (K,4) float32 in output pixels)`.

        `rng` is the only source of randomness (required for train), so a seed reproduces a view exactly and two
        generators give two independent views. Boxes falling wholly outside the crop come back with zero area.
        """
        clip = _clip_to_tchw(frames)
        box_array = _boxes_array(boxes)
        if self.train:
            if rng is None:
                raise ValueError("ClipTransform(train=True) needs an np.random.Generator")
            clip, box_px = self._train_geometry(clip, box_array, rng)
            if self.cfg.color_jitter > 0:
                clip = _color_jitter(clip, self.cfg.color_jitter, rng)
        else:
            clip, box_px = self._eval_geometry(clip, box_array)
        clip.sub_(self._mean).mul_(self._inv_std)  # in place: `clip` is this call's own float copy
        return clip.permute(1, 0, 2, 3).contiguous(), torch.from_numpy(box_px.astype(np.float32))

    def _eval_geometry(self, clip: torch.Tensor, boxes: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
        height, width = clip.shape[-2:]
        out_h, out_w = _short_side_size(height, width, self.cfg.eval_short_side)
        resized = _resize(_to_unit_float(clip), (out_h, out_w), self.cfg.antialias)
        box_px = boxes * np.array([out_w, out_h, out_w, out_h], dtype=np.float64)
        return resized, np.clip(box_px, 0.0, [out_w, out_h, out_w, out_h])

    def _train_geometry(
        self, clip: torch.Tensor, boxes: np.ndarray, rng: np.random.Generator
    ) -> tuple[torch.Tensor, np.ndarray]:
        cfg = self.cfg
        height, width = clip.shape[-2:]
        short_side = int(rng.integers(cfg.min_short_side, cfg.max_short_side + 1))
        # Side of the square source window that becomes the crop after scaling by short_side / min(H, W).
        window = int(round(cfg.crop_size * min(height, width) / short_side))
        window = min(max(window, 1), height, width)
        y0 = int(rng.integers(0, height - window + 1))
        x0 = int(rng.integers(0, width - window + 1))
        flip = bool(rng.random() < cfg.flip_prob)

        cropped = _to_unit_float(clip[:, :, y0 : y0 + window, x0 : x0 + window])
        out = _resize(cropped, (cfg.crop_size, cfg.crop_size), cfg.antialias)
        if flip:
            out = out.flip(-1)

        scale = cfg.crop_size / window
        box_px = (boxes * np.array([width, height, width, height]) - np.array([x0, y0, x0, y0])) * scale
        box_px = np.clip(box_px, 0.0, float(cfg.crop_size))
        if flip:
            box_px = np.stack(
                [cfg.crop_size - box_px[:, 2], box_px[:, 1], cfg.crop_size - box_px[:, 0], box_px[:, 3]], axis=1
            )
        return out, box_px


def two_views(
    transform: ClipTransform, frames: ClipArray, boxes: Optional[ClipArray], rng: np.random.Generator
) -> tuple[TransformedClip, TransformedClip]:
    """Two independent augmentations of one decoded clip, for the adaptation stage's two-view agreement test.

    Both draws come from `rng` in sequence, so one seed reproduces the pair and the views differ from each other.
    """
    clip = _clip_to_tchw(frames).permute(0, 2, 3, 1)  # convert once; both views share the source memory
    return transform(clip, boxes, rng), transform(clip, boxes, rng)
