"""The `adapt.*` config section: semi-supervised adaptation rounds and the sample-selection rule (torch-free)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

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

    def validate(self, key: str = "adapt") -> None:
        if not 0 < self.lambda_c <= 1:
            raise UserError(f"config key '{key}.lambda_c': must be in (0, 1], got {self.lambda_c}")
        if self.rounds < 1:
            raise UserError(f"config key '{key}.rounds': must be >= 1, got {self.rounds}")
        if self.epochs_per_round < 1:
            raise UserError(f"config key '{key}.epochs_per_round': must be >= 1, got {self.epochs_per_round}")
        if self.score_views not in SCORE_VIEWS:
            raise UserError(
                f"config key '{key}.score_views': '{self.score_views}' is not one of {', '.join(SCORE_VIEWS)}"
            )
        if self.pool not in POOLS:
            raise UserError(f"config key '{key}.pool': '{self.pool}' is not one of {', '.join(POOLS)}")
        if self.boxes not in BOX_SOURCES:
            raise UserError(f"config key '{key}.boxes': '{self.boxes}' is not one of {', '.join(BOX_SOURCES)}")
        if self.boxes == "detector" and self.pool != "unlabeled":
            raise UserError(
                f"config key '{key}.boxes': detector boxes exist for the unlabeled pool only; "
                "use adapt.pool=unlabeled or adapt.boxes=gt"
            )
        if self.labels not in LABEL_SOURCES:
            raise UserError(f"config key '{key}.labels': '{self.labels}' is not one of {', '.join(LABEL_SOURCES)}")
        if self.source_mix_ratio < 0:
            raise UserError(f"config key '{key}.source_mix_ratio': must be >= 0, got {self.source_mix_ratio}")
        if not 0 <= self.detector_threshold <= 1:
            raise UserError(f"config key '{key}.detector_threshold': must be in [0, 1], got {self.detector_threshold}")
