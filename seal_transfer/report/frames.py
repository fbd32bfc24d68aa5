"""Annotated video frames: person boxes with their top labels drawn on frames, and a small GIF preview."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

COLOURS = ((0, 114, 178), (230, 159, 0), (0, 158, 115), (213, 94, 0), (204, 121, 167), (86, 180, 233),
           (240, 228, 66), (255, 255, 255))


def label_font(size: int) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: fixed-size bitmap font
        return ImageFont.load_default()


def draw_detections(frame: np.ndarray, boxes: np.ndarray, labels: Sequence[Sequence[tuple[str, float]]],
                    font: Any, line_width: int = 2) -> np.ndarray:
    """Draw normalised `boxes` and, above each, its (name, score) lines onto a copy of an RGB uint8 frame."""
    from PIL import Image, ImageDraw

    image = Image.fromarray(frame)
    draw = ImageDraw.Draw(image)
    height, width = frame.shape[:2]
    for i, (box, lines) in enumerate(zip(boxes, labels)):
        colour = COLOURS[i % len(COLOURS)]
        x1, y1, x2, y2 = (float(v) for v in box * np.array([width, height, width, height]))
        draw.rectangle([x1, y1, x2, y2], outline=colour, width=line_width)
        texts = [f"{name} {score:.2f}" for name, score in lines]
        if not texts:
            continue
        line_boxes = [draw.textbbox((0, 0), t, font=font) for t in texts]
        line_h = max(b[3] - b[1] for b in line_boxes) + 2
        block_w = max(b[2] - b[0] for b in line_boxes) + 4
        block_h = line_h * len(texts) + 2
        tx = min(max(x1, 0.0), max(width - block_w, 0))
        ty = y1 - block_h if y1 - block_h >= 0 else min(y1 + line_width, max(height - block_h, 0))
        draw.rectangle([tx, ty, tx + block_w, ty + block_h], fill=colour)
        ink = (0, 0, 0) if sum(colour) > 450 else (255, 255, 255)
        for j, text in enumerate(texts):
            draw.text((tx + 2, ty + 1 + j * line_h - line_boxes[j][1]), text, fill=ink, font=font)
    return np.asarray(image)


def display_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """Output (w, h): short side raised to `short_side` when smaller (0 keeps it), both even (yuv420)."""
    scale = max(1.0, short_side / min(width, height)) if short_side > 0 else 1.0
    return 2 * max(1, round(width * scale / 2)), 2 * max(1, round(height * scale / 2))


def resize_frames(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if (frames.shape[2], frames.shape[1]) == size:
        return frames
    import torch.nn.functional as F

    tensor = torch.from_numpy(frames).permute(0, 3, 1, 2).float()
    out = F.interpolate(tensor, size=(size[1], size[0]), mode="bilinear", align_corners=False)
    return out.clamp_(0, 255).round_().to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


def write_gif(path: Path, frames: np.ndarray, fps: float, *, max_width: int = 320, max_seconds: float = 8.0,
              gif_fps: float = 8.0) -> Path:
    """A small looping preview: the first `max_seconds`, at most `gif_fps` frames per second, `max_width` wide."""
    from PIL import Image

    from seal_transfer.utils.fileio import atomic_path

    step = max(1, round(fps / gif_fps))
    chosen = frames[: max(1, int(max_seconds * fps)) : step]
    height, width = chosen.shape[1:3]
    scale = min(1.0, max_width / width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    images = [Image.fromarray(f).resize(size, Image.Resampling.BILINEAR) if scale < 1 else Image.fromarray(f)
              for f in chosen]
    # Octree palettes per frame: ~50x faster than the GIF writer's default median cut, and as good for a preview.
    images = [im.quantize(colors=256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE) for im in images]
    with atomic_path(path) as tmp:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:],
                       duration=max(20, round(1000 * step / fps)), loop=0)
    return path
