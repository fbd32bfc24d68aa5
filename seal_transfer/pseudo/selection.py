"""The paper's sample-selection rule (§5.1) as pure tensor functions, with every open choice a config key.

A target sample (one person box at one keyframe) is kept iff (1) its maximum class score is larger than the
credible threshold λ_c and (2) its predicted class is the same under two different random transforms. The
pseudo label is that class, in the source (SEAL) label space.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from seal_transfer.errors import UserError

SCORE_VIEWS = ("both", "first", "either", "mean")
BOX_SOURCES = ("gt", "detector")
POOLS = ("train", "unlabeled", "train+unlabeled")
LABEL_SOURCES = ("rule", "oracle", "random")


@dataclass
class AdaptConfig:
    """Semi-supervised adaptation (paper §5.1). Defaults: the paper's λ_c; DESIGN.md's choices elsewhere."""

    rounds: int = 2  # alternations of {pseudo-label, train}
    lambda_c: float = 0.3  # credible threshold: keep only if max class score > lambda_c (paper: 0.3)
    score_views: str = "both"  # view(s) whose max score must exceed lambda_c: both | first | either | mean
    multi_label: bool = False  # keep every class above lambda_c in both views, not only the agreeing argmax
    epochs_per_round: int = 2  # training epochs on the kept samples per round
    pool: str = "train"  # target samples to label: train | unlabeled | train+unlabeled
    boxes: str = "gt"  # person boxes of the train pool: gt (labels hidden) | detector
    detector_threshold: float = 0.5  # min detector score of a box to be pseudo-labelled
    source_mix_ratio: float = 0.0  # source keyframes added per kept target keyframe (0 = target only)
    restart_each_round: bool = False  # each round starts from the pretrain weights instead of the last round
    label_batch_size: Optional[int] = None  # keyframes per pseudo-labelling batch (null = data.batch_size)
    # What the rounds train on (docs/stages.md, "Headroom controls"); oracle and random need the hidden truth.
    labels: str = "rule"  # rule (paper) | oracle (true labels of all pool boxes) | random (rule's boxes, random class)

    def validate(self) -> None:
        if not 0 < self.lambda_c <= 1:
            raise UserError(f"config key 'adapt.lambda_c': must be in (0, 1], got {self.lambda_c}")
        if self.rounds < 1:
            raise UserError(f"config key 'adapt.rounds': must be >= 1, got {self.rounds}")
        if self.epochs_per_round < 1:
            raise UserError(f"config key 'adapt.epochs_per_round': must be >= 1, got {self.epochs_per_round}")
        if self.score_views not in SCORE_VIEWS:
            raise UserError(
                f"config key 'adapt.score_views': '{self.score_views}' is not one of {', '.join(SCORE_VIEWS)}"
            )
        if self.pool not in POOLS:
            raise UserError(f"config key 'adapt.pool': '{self.pool}' is not one of {', '.join(POOLS)}")
        if self.boxes not in BOX_SOURCES:
            raise UserError(f"config key 'adapt.boxes': '{self.boxes}' is not one of {', '.join(BOX_SOURCES)}")
        if self.boxes == "detector" and self.pool != "unlabeled":
            raise UserError(
                "config key 'adapt.boxes': detector boxes exist for the unlabeled pool only; "
                "use adapt.pool=unlabeled or adapt.boxes=gt"
            )
        if self.labels not in LABEL_SOURCES:
            raise UserError(f"config key 'adapt.labels': '{self.labels}' is not one of {', '.join(LABEL_SOURCES)}")
        if self.source_mix_ratio < 0:
            raise UserError(f"config key 'adapt.source_mix_ratio': must be >= 0, got {self.source_mix_ratio}")
        if not 0 <= self.detector_threshold <= 1:
            raise UserError(f"config key 'adapt.detector_threshold': must be in [0, 1], got {self.detector_threshold}")


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
