"""A decoded clip handed to a SlowFast model: `pack_pathways` splits its frames into the two pathways.

What to decode per clip is `ClipSpec` (torch-free, in `data/config.py`), derived from a model config by
`seal_transfer.models.config.clip_spec`; the data layer never imports the models.
"""

from __future__ import annotations

import torch

from seal_transfer.data.config import ClipSpec

__all__ = ["ClipSpec", "pack_pathways"]


def pack_pathways(frames: torch.Tensor, alpha: int) -> list[torch.Tensor]:
    """Split fast-pathway frames (..., C, T_fast, H, W) into [slow, fast].

    Uses the same linspace frame choice as PySlowFast/pytorchvideo `PackPathway`, so zoo weights see the
    slow input they were trained on (evenly spaced, not exactly every alpha-th frame).
    """
    if frames.ndim < 4:
        raise ValueError(f"pack_pathways wants (..., C, T, H, W), got {tuple(frames.shape)}")
    if alpha <= 0:
        raise ValueError(f"alpha must be positive, got {alpha}")
    num_fast = frames.shape[-3]
    if num_fast // alpha == 0:
        raise ValueError(f"clip of {num_fast} frames is shorter than alpha={alpha}: slow pathway would be empty")
    index = torch.linspace(0, num_fast - 1, num_fast // alpha, device=frames.device).long()
    slow = torch.index_select(frames, -3, index)
    return [slow, frames]
