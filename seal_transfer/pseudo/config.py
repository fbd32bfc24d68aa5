"""The `adapt.*` config section: semi-supervised adaptation rounds and the sample-selection rule (torch-free)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from seal_transfer.errors import UserError

SCORE_VIEWS = ("both", "first", "either", "mean")
BOX_SOURCES = ("gt", "detector")
POOLS = ("train", "unlabeled", "train+unlabeled")
LABEL_SOURCES = ("rule", "oracle", "random")
SELECTION_RULES = ("paper", "class_balanced", "adaptive", "debiased")
TEACHERS = ("current", "ema")
LOSS_WEIGHTS = ("hard", "score")
NEGATIVES = ("all", "confident")


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
    # Selection rules beyond the paper (docs/stages.md, "Selection rules"; seal_transfer/pseudo/rules.py).
    selection: str = "paper"  # paper | class_balanced (CBST quota) | adaptive (FlexMatch) | debiased (DebiasPL)
    require_agreement: bool = True  # two-view argmax agreement, a filter composed with every rule
    class_fraction_start: float = 0.2  # class_balanced: share of each predicted class's boxes kept in round 1
    class_fraction_step: float = 0.1  # class_balanced: added to the share every round
    class_fraction_max: float = 0.5  # class_balanced: the share stops growing here
    class_min_score: float = 0.0  # class_balanced: a box must also score above this (0 = no floor)
    adaptive_warmup: bool = True  # adaptive: FlexMatch's threshold warm-up (unconfident boxes count as unlearned)
    debias_tau: float = 0.5  # debiased: strength of the -tau * log(class marginal) logit adjustment
    debias_momentum: float = 0.5  # debiased: weight of the previous rounds' marginal in the running estimate
    teacher: str = "current"  # weights that label the next round: current (paper: last round's) | ema
    ema_momentum: float = 0.99  # teacher=ema: per training step, ema = m * ema + (1 - m) * student
    loss_weight: str = "hard"  # hard (paper: every kept label weighs 1) | score (each box's loss times its score)
    # Which unlabelled classes of a kept box train as negatives: all (paper) | confident (UPS negative labels: only
    # those scoring below negative_threshold in both views; the rest are left out of the loss).
    negatives: str = "all"
    negative_threshold: float = 0.05  # negatives=confident: a class below this in both views is a negative

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
        for name, allowed in (("selection", SELECTION_RULES), ("teacher", TEACHERS), ("loss_weight", LOSS_WEIGHTS),
                              ("negatives", NEGATIVES)):
            if getattr(self, name) not in allowed:
                raise UserError(
                    f"config key '{key}.{name}': '{getattr(self, name)}' is not one of {', '.join(allowed)}"
                )
        for name in ("class_fraction_start", "class_fraction_max"):
            if not 0 < getattr(self, name) <= 1:
                raise UserError(f"config key '{key}.{name}': must be in (0, 1], got {getattr(self, name)}")
        if self.class_fraction_step < 0:
            raise UserError(f"config key '{key}.class_fraction_step': must be >= 0, got {self.class_fraction_step}")
        if self.class_fraction_max < self.class_fraction_start:
            raise UserError(f"config key '{key}.class_fraction_max': must be >= class_fraction_start "
                            f"({self.class_fraction_start}), got {self.class_fraction_max}")
        if not 0 <= self.class_min_score < 1:
            raise UserError(f"config key '{key}.class_min_score': must be in [0, 1), got {self.class_min_score}")
        if not 0 < self.negative_threshold < 1:
            raise UserError(f"config key '{key}.negative_threshold': must be in (0, 1), got {self.negative_threshold}")
        if self.debias_tau < 0:
            raise UserError(f"config key '{key}.debias_tau': must be >= 0, got {self.debias_tau}")
        for name in ("debias_momentum", "ema_momentum"):
            if not 0 <= getattr(self, name) < 1:
                raise UserError(f"config key '{key}.{name}': must be in [0, 1), got {getattr(self, name)}")
        if self.selection != "paper" and (self.multi_label or self.score_views != "both"):
            raise UserError(f"config key '{key}.selection': {self.selection} is single-label with both views scored; "
                            "adapt.multi_label and adapt.score_views apply to selection=paper only")
        if self.source_mix_ratio < 0:
            raise UserError(f"config key '{key}.source_mix_ratio': must be >= 0, got {self.source_mix_ratio}")
        if not 0 <= self.detector_threshold <= 1:
            raise UserError(f"config key '{key}.detector_threshold': must be in [0, 1], got {self.detector_threshold}")
