"""The paper's sample-selection rule (§5.1) as pure tensor functions, with every open choice a config key.

A target sample (one person box at one keyframe) is kept iff (1) its maximum class score is larger than the
credible threshold λ_c and (2) its predicted class is the same under two different random transforms. The
pseudo label is that class, in the source (SEAL) label space.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Selection:
    """Per-sample outcome of the rule for N samples and C source classes."""

    keep: torch.Tensor  # (N,) bool
    labels: torch.Tensor  # (N, C) bool: the pseudo label(s) of kept samples (all False where dropped)
    predicted: torch.Tensor  # (N,) long: argmax of view 1
    score: torch.Tensor  # (N,) float: mean of the two views' scores for the predicted class
    agree: torch.Tensor  # (N,) bool: argmax(view 1) == argmax(view 2)
    confident: torch.Tensor  # (N,) bool: the threshold part of the rule


def select(
    view1: torch.Tensor, view2: torch.Tensor, lambda_c: float, score_views: str = "both", multi_label: bool = False
) -> Selection:
    """Apply the keep/drop rule to per-class scores of two views, (N, C) each, in [0, 1].

    "Larger than λ_c" is strict: a max score equal to λ_c is dropped. Ties in argmax go to the lowest class index
    (torch.argmax's rule), identically in both views, so equal score rows always agree.
    """
    if view1.shape != view2.shape or view1.ndim != 2:
        raise ValueError(f"views must both be (N, C); got {tuple(view1.shape)} and {tuple(view2.shape)}")
    max1, pred1 = view1.max(dim=1)
    max2, pred2 = view2.max(dim=1)
    agree = pred1 == pred2
    if score_views == "both":
        confident = (max1 > lambda_c) & (max2 > lambda_c)
    elif score_views == "first":
        confident = max1 > lambda_c
    elif score_views == "either":
        confident = (max1 > lambda_c) | (max2 > lambda_c)
    elif score_views == "mean":
        confident = (max1 + max2) / 2 > lambda_c
    else:
        raise ValueError(f"unknown score_views {score_views!r}")
    score = (view1.gather(1, pred1[:, None]) + view2.gather(1, pred1[:, None]))[:, 0] / 2
    if multi_label:
        labels = (view1 > lambda_c) & (view2 > lambda_c)
        keep = labels.any(dim=1)
    else:
        keep = agree & confident
        labels = torch.zeros_like(view1, dtype=torch.bool)
        labels[torch.arange(len(pred1)), pred1] = True
        labels &= keep[:, None]
    return Selection(keep=keep, labels=labels, predicted=pred1, score=score, agree=agree, confident=confident)
